"""Benchmark of the carrier webhook on the realistic history (SPEC §8:
≥ 1,000 scans/s in batches of 100 on 2 cores), in batches of 100 and of 500.

    python bench/carrier.py [--scans 3000] [--batch 100 --batch 500] [--verbose]

The database is ``bench/surfaces.py``'s (``bench/durations.py``'s history of
1,000,000 orders, built on first use), with one carrier integration signing
for every carrier of the history. The scans are real ones that move orders:
for open orders with an online waybill picked at random, the carrier's
pickup of the parcel of an order ``waybill_printed`` (to ``outbound``, a
logistics fee charged) and its delivery of one ``outbound`` (to
``delivered``), each by the order's waybill number, each order scanned once,
the carrier one of the history's five.

For each batch size, ``--scans`` scans (at most as many as there are such
orders) are sent as ``POST /api/v1/carrier-events/`` bodies of that many
events, signed (``X-Signature``: HMAC-SHA256 of the raw body with the
integration's secret), one request after the other, in-process through
Django's test ``Client`` with every middleware and production settings
(``DEBUG=0``, the cache in Redis, the carrier rate limit raised). Each answer
is checked: every scan stored and applied. The figure is scans per second
over the time spent in the requests; beside it each batch's p50 and p95.
A batch sent first, untimed, warms the caches; its queries are counted
(``CaptureQueriesContext``; ``--verbose`` prints them).

The floor, measured right after in the same run: the same rows (carrier,
number, status, time) written with a plain ``COPY`` into a table of the
scans' columns, batch by batch, each committed: what storing the scans costs
before anything checks, matches or applies them.

Afterwards the orders, their events, fees and scans are put back as they
were (``surfaces.held``), so every run scans the same kind of orders. Each
batch size starts with a ``CHECKPOINT``, so that the writing of the run
before is not paid for by this one.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import (  # noqa: E402
    CARRIER_SECRET,
    PROXY_HEADERS,
    Series,
    carrier_integration,
    held,
    load_average,
    queries_of,
    start,
    utcnow,
)

TARGET = 1000  # scans per second
COPY_TABLE = "bench_surfaces_scan_copy"
SCAN_COLUMNS = ("carrier", "tracking_no", "status", "occurred_at", "order_no", "outcome", "received_at")


def carriers():
    """The history's carriers to the buyer, and every carrier it names."""
    from durations import CARRIERS, INBOUND_CARRIERS

    outbound = [name for name, *_ in CARRIERS]
    return outbound, {*outbound, *(name for name, *_ in INBOUND_CARRIERS)}


def parcels(count, seed):
    """``count`` open orders with an online waybill, ``waybill_printed`` or
    ``outbound``, at random: (order id, waybill, state)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute(
            "SELECT id, waybill_no, state FROM orders_order "
            "WHERE state IN ('waybill_printed', 'outbound') AND waybill_no <> '' "
            "ORDER BY random() LIMIT %s",
            [count],
        )
        return cursor.fetchall()


def scans_for(rows, outbound):
    """One scan per order: the pickup of a printed waybill, the delivery of an outbound parcel."""
    when = (utcnow() - datetime.timedelta(minutes=1)).isoformat()
    return [
        {
            "tracking_no": waybill,
            "carrier": outbound[pk % len(outbound)],
            "status": "picked_up" if state == "waybill_printed" else "delivered",
            "occurred_at": when,
        }
        for pk, waybill, state in rows
    ]


def post(client, events):
    from django.urls import reverse

    raw = json.dumps({"events": events}).encode()
    signature = hmac.new(CARRIER_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return client.generic(
        "POST",
        reverse("api:carrier-events"),
        raw,
        content_type="application/json",
        headers={**PROXY_HEADERS, "X-Signature": signature},
        secure=True,
    )


def check(response, size):
    if response.status_code != 200:
        raise SystemExit(f"the webhook answered {response.status_code}: {response.content[:600]}")
    body = json.loads(response.content)
    outcomes = {r["outcome"] for r in body["results"]}
    if body["received"] != size or body["stored"] != size or outcomes != {"applied"}:
        raise SystemExit(f"not every scan was stored and applied: stored {body['stored']} of {size}, {outcomes}")


def copy_floor(batches):
    """The same rows written by a plain ``COPY``, a batch per transaction; seconds per batch."""
    from django.db import connection
    from durations import _copy_from

    timings = []
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        cursor.execute(
            f"CREATE TABLE {COPY_TABLE} (carrier varchar(64), tracking_no varchar(64), status varchar(16), "
            "occurred_at timestamptz, order_no varchar(64), outcome varchar(16), received_at timestamptz)"
        )
        for events in batches:
            received = utcnow().isoformat()
            lines = [
                f"{e['carrier']}\t{e['tracking_no']}\t{e['status']}\t{e['occurred_at']}\t\tpending\t{received}\n"
                for e in events
            ]
            started = time.perf_counter()
            _copy_from(cursor, f"COPY {COPY_TABLE} ({', '.join(SCAN_COLUMNS)}) FROM STDIN", lines)
            timings.append(time.perf_counter() - started)
        cursor.execute(f"DROP TABLE {COPY_TABLE}")
    return timings


def run(client, size, scans, outbound, seed, verbose):
    """One batch size: a warm-up batch, then the timed batches, then the floor; all put back after."""
    from django.db import connection

    with held():
        rows = parcels(size + scans, seed)
        if len(rows) < 2 * size:
            raise SystemExit(f"only {len(rows)} orders waybill_printed or outbound: too few for batches of {size}")
        events = scans_for(rows, outbound)
        warm, rest = events[:size], events[size:]
        batches = [rest[i : i + size] for i in range(0, len(rest) - size + 1, size)]
        if len(batches) < 2:
            raise SystemExit(f"--scans {scans} makes fewer than two batches of {size}")
        with connection.cursor() as cursor:
            # What the run before wrote (and put back) goes to disk now, not
            # during this run's batches: without it, runs in a row measured
            # fast and slow by turns.
            cursor.execute("CHECKPOINT")
        queries, response = queries_of(lambda: post(client, warm), verbose, f"a batch of {size}")
        check(response, size)
        pickups = sum(e["status"] == "picked_up" for batch in batches for e in batch)
        series = Series(f"batches of {size}")
        for batch in batches:
            started = time.perf_counter()
            response = post(client, batch)
            series.timings.append((time.perf_counter() - started) * 1000)
            check(response, size)
        series.load = load_average()
        series.queries = queries
        copied = copy_floor(batches)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM orders_orderevent WHERE id > (SELECT last FROM bench_surfaces_marks "
                "WHERE name = 'orders_orderevent')"
            )
            (written,) = cursor.fetchone()
    sent = len(batches) * size
    return series, sent, pickups, copied, written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3000, help="scans timed per batch size")
    parser.add_argument("--batch", type=int, action="append", help="events per request (repeatable; default 100, 500)")
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL's setseed() for picking the orders")
    parser.add_argument("--verbose", action="store_true", help="print the queries of one batch of each size")
    args = parser.parse_args()

    start()
    from django.test import Client

    outbound, every = carriers()
    carrier_integration(every)
    client = Client()
    sizes = args.batch or [100, 500]
    results = [(size, *run(client, size, args.scans, outbound, args.seed, args.verbose)) for size in sizes]

    header = (
        f"{'webhook':<16} {'scans':>6} {'scans/s':>8} {'batch p50 ms':>12} {'p95 ms':>8} {'max ms':>8} "
        f"{'queries/batch':>13}   {'floor COPY scans/s':>18}   {'ratio':>6}   {'target':<14} load average"
    )
    print(f"\n{header}")
    print("-" * len(header))
    for _size, series, sent, _pickups, copied, _written in results:
        rate = sent / (sum(series.timings) / 1000)
        floor_rate = sent / sum(copied)
        print(
            f"{series.label:<16} {sent:>6} {rate:>8,.0f} {series.p50:>12.1f} {series.p95:>8.1f} {series.max:>8.1f} "
            f"{series.queries:>13}   {floor_rate:>18,.0f}   {floor_rate / rate:>6.0f}   "
            f"{'≥ ' + format(TARGET, ',') + ' scans/s':<14} {series.load}"
        )
    for size, _series, sent, pickups, _copied, written in results:
        print(
            f"batches of {size}: {pickups:,} pickups (waybill_printed → outbound, a logistics fee each) and "
            f"{sent - pickups:,} deliveries (outbound → delivered); {written:,} order events written."
        )
    print("ratio: the floor's scans/s over the webhook's (how many times faster a bare COPY stores them).")
    print("times in-process (no network, no WSGI server), one request after the other; queries of the warm-up batch.")


if __name__ == "__main__":
    main()
