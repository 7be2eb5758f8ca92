"""Benchmark of single actions through the API, served by gunicorn, on the
realistic history (SPEC §8: ≥ 200 requests/s, p95 ≤ 100 ms on 2 cores,
gunicorn and PostgreSQL).

    python bench/actions.py [--orders 1000] [--concurrency 8] [--workers 2] [--verbose]

The database is ``bench/surfaces.py``'s (``bench/durations.py``'s history of
1,000,000 orders, built on first use). The script starts gunicorn itself, as
the ``Procfile``'s ``web`` runs it (``--workers 2``, sync workers,
``--timeout 60``, the access log written), on a free local port, with
production settings: ``DEBUG=0``, a secret key, ``ALLOWED_HOSTS``, the cache
(so the rate limits) in Redis, HTTPS as the TLS proxy reports it
(``X-Forwarded-Proto``); the rate limits ``API_RATE`` and ``CARRIER_RATE``
raised to 1,000,000 a minute, because eight clients of one key would pass
its budget of 1,200 a minute within seconds.

The work is what a provider's integration does with a parcel: ``POST
/api/v1/orders/<order_no>/sign-in/`` then ``POST …/appraise/`` with
``{"result": "pass"}``, each with the order's provider's API key, for
``--orders`` open orders picked at random among those ``inbound`` or
``arrived`` (not blocked, not in a split group, whose appraisal would be a
group's), every provider's. ``--concurrency`` client threads (8) each take
the next order and send its two requests, one after the other, each on a new
connection (gunicorn's sync workers close it after the answer). Every
answer is checked (200, the order in the state the step leads to). The
figures: requests per second over the whole run, and each request's latency
as the client sees it (p50, p95). A few orders go first, untimed, to warm
both workers. The client threads run on the same two cores as gunicorn and
PostgreSQL.

The floor, measured right after with the same gunicorn, the same threads,
keys and order numbers, as many requests: ``POST /bench/api/step/<order_no>/``,
a DRF view with the same authentication, permission and throttle that
fetches the order by its number in the caller's scope and answers its number
and version, writing nothing. The queries of one sign-in and one appraisal
are counted in-process (``CaptureQueriesContext``, the test ``Client`` with
the same key) on orders put back afterwards; ``--verbose`` prints them.

Afterwards gunicorn is stopped and the orders, their events and the risk
cases the steps resolved are put back as they were (``surfaces.held``).
"""

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import (  # noqa: E402
    HOST,
    PROXY_HEADERS,
    ROOT,
    VAR_DIR,
    api_key,
    held,
    key_client,
    load_average,
    production_environment,
    queries_of,
    start,
)

TARGET_RPS = 200
TARGET_P95_MS = 100
WARM_ORDERS = 16
STEPS = (("sign-in", {}, "signed_in"), ("appraise", {"result": "pass"}, "appraised"))


def picked(count, seed):
    """``count`` open orders ``inbound`` or ``arrived``, not blocked, alone in
    their trade and SKU: (order_no, provider id)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute(
            "SELECT o.order_no, o.provider_id FROM orders_order o "
            "WHERE o.state IN ('inbound', 'arrived') AND NOT o.flow_blocked "
            "AND NOT EXISTS (SELECT 1 FROM orders_order g WHERE g.trade_no = o.trade_no AND g.sku = o.sku "
            "AND g.id <> o.id) ORDER BY random() LIMIT %s",
            [count],
        )
        return cursor.fetchall()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_gunicorn(port, workers):
    """gunicorn as the Procfile runs it, serving ``surfaces_wsgi`` (the portal
    and the floor views) with production settings; returns the process once
    it answers."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    log = open(VAR_DIR / "gunicorn.log", "ab")  # noqa: SIM115  (kept open for the server's life)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "surfaces_wsgi:application",
            "--pythonpath",
            f"{ROOT},{ROOT / 'bench'}",
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
            "--access-logfile",
            str(VAR_DIR / "gunicorn-access.log"),
        ],
        cwd=ROOT,
        env={**os.environ, **production_environment()},
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn stopped at start; see {VAR_DIR / 'gunicorn.log'}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/", headers=PROXY_HEADERS)
            connection.getresponse().read()
            connection.close()
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer within 60 s")


def stop_gunicorn(server):
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def send(port, path, key, body):
    """One POST on a new connection; (status, milliseconds, parsed answer)."""
    payload = json.dumps(body).encode()
    headers = {
        **PROXY_HEADERS,
        "Host": HOST,
        "Authorization": f"Token {key}",
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
    }
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    connection.request("POST", path, payload, headers)
    response = connection.getresponse()
    data = response.read()
    took = (time.perf_counter() - started) * 1000
    connection.close()
    return response.status, took, data


def load(port, work, concurrency, floor):
    """Each client thread takes the next order and sends its two requests
    (or, for the floor, two bare ones); returns (seconds, latencies, failures)."""
    todo = queue.Queue()
    for item in work:
        todo.put(item)
    latencies, failures = [], []
    lock = threading.Lock()

    def client():
        mine, wrong = [], []
        while True:
            try:
                order_no, key = todo.get_nowait()
            except queue.Empty:
                break
            for step, body, state in STEPS:
                path = f"/bench/api/step/{order_no}/" if floor else f"/api/v1/orders/{order_no}/{step}/"
                status, took, data = send(port, path, key, body)
                mine.append(took)
                answer = json.loads(data) if data else {}
                if status != 200 or (not floor and answer.get("state") != state):
                    wrong.append(f"{order_no} {step}: {status} {data[:200]!r}")
                elif floor and answer.get("order_no") != order_no:
                    wrong.append(f"{order_no} floor: {status} {data[:200]!r}")
        with lock:
            latencies.extend(mine)
            failures.extend(wrong)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures


def count_queries(order_no, key, verbose):
    """The queries of one sign-in and one appraisal, in-process with the same key."""
    client = key_client(key)
    counts = []
    for step, body, state in STEPS:
        queries, response = queries_of(
            lambda step=step, body=body: client.post(
                f"/api/v1/orders/{order_no}/{step}/", body, content_type="application/json"
            ),
            verbose,
            step,
        )
        if response.status_code != 200 or response.json().get("state") != state:
            raise SystemExit(f"{step} answered {response.status_code}: {response.content[:300]}")
        counts.append(queries)
    queries, response = queries_of(
        lambda: client.post(f"/bench/api/step/{order_no}/", {}, content_type="application/json")
    )
    return counts, queries


def percentile(values, n):
    return statistics.quantiles(values, n=100, method="inclusive")[n - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders signed in and appraised (2 requests each)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn's sync workers")
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL's setseed() for picking the orders")
    parser.add_argument("--verbose", action="store_true", help="print the queries of one request of each step")
    args = parser.parse_args()

    start()
    from portal.models import Organisation

    keys = {org.pk: api_key(org) for org in Organisation.objects.filter(kind="provider")}
    with held():
        orders = picked(args.orders + WARM_ORDERS + 1, args.seed)
        if len(orders) < args.orders + WARM_ORDERS + 1:
            raise SystemExit(f"only {len(orders)} orders inbound or arrived to sign in")
        work = [(order_no, keys[provider]) for order_no, provider in orders]
        counted, warm, work = work[0], work[1 : WARM_ORDERS + 1], work[WARM_ORDERS + 1 :]
        queries, floor_queries = count_queries(*counted, args.verbose)

        port = free_port()
        server = start_gunicorn(port, args.workers)
        try:
            load(port, warm, args.concurrency, floor=False)
            load(port, warm, args.concurrency, floor=True)
            wall, latencies, failures = load(port, work, args.concurrency, floor=False)
            load_then = load_average()
            floor_wall, floor_latencies, floor_failures = load(port, work, args.concurrency, floor=True)
            floor_load = load_average()
        finally:
            stop_gunicorn(server)
    if failures or floor_failures:
        raise SystemExit("wrong answers:\n" + "\n".join((failures + floor_failures)[:20]))

    rate, floor_rate = len(latencies) / wall, len(floor_latencies) / floor_wall
    header = (
        f"{'through gunicorn':<30} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
        f"{'queries':>8}   {'target':<26} load average"
    )
    print(f"\n{header}")
    print("-" * len(header))
    print(
        f"{'sign-in + appraise':<30} {len(latencies):>8} {rate:>7.0f} {statistics.median(latencies):>7.1f} "
        f"{percentile(latencies, 95):>7.1f} {max(latencies):>7.1f} {'/'.join(map(str, queries)):>8}   "
        f"{f'≥ {TARGET_RPS} req/s, p95 ≤ {TARGET_P95_MS} ms':<26} {load_then}"
    )
    print(
        f"{'floor: bare DRF step':<30} {len(floor_latencies):>8} {floor_rate:>7.0f} "
        f"{statistics.median(floor_latencies):>7.1f} {percentile(floor_latencies, 95):>7.1f} "
        f"{max(floor_latencies):>7.1f} {floor_queries:>8}   {'':<26} {floor_load}"
    )
    print(
        f"\nratio: throughput floor/measured {floor_rate / rate:.1f}, "
        f"p95 measured/floor {percentile(latencies, 95) / percentile(floor_latencies, 95):.1f}"
    )
    print(
        f"{len(work):,} orders, each signed in then appraised by one of {args.concurrency} client threads; "
        f"gunicorn with {args.workers} sync workers; latency as the client sees it (a new connection each)."
    )
    print("queries: one sign-in / one appraisal, in-process with the same key (CaptureQueriesContext).")


if __name__ == "__main__":
    main()
