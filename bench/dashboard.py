"""Benchmark of the dashboard on PostgreSQL (SPEC §8: 1,000,000 orders,
≤ 12 queries, p95 ≤ 300 ms), and of the stage-duration refresh it reads
(1,000,000 orders / 10,000,000 events ≤ 30 s).

    python bench/dashboard.py [--orders 1000000] [--runs 50] [--rebuild] [--explain]

Builds the orders with ``bench/sweep.py``'s ``build()`` in a database of its
own (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/portal_bench_dashboard),
then gives them a history once (``add_history``): finished orders spread over
the last 60 days, one in two hundred of them auto-refunded at its deadline,
an event for every step each order took (with stage times that differ by
order and by provider), the fees those steps charged (split groups charged
twice), a sweep's risk cases and escalations (its finished split groups
closed when their last order finished), and answers to half of the
escalations. The orders and their history are reused when the count matches.

Then it times the two refreshes beat runs for the dashboard (the stage
durations, every 15 minutes, and the tallies of open orders and duplicate
fees, every minute) and, in-process through Django's test ``Client`` with
every middleware of the settings and ``DEBUG`` off, ``--runs`` requests of
the dashboard page as an operator (the whole platform), as a provider's
person (P-DEMO-1, two thirds of the orders) and as a merchant's (M-DEMO-1,
half of them), each beside its floor measured in the same run: as many bare
requests through the same middleware to a view that only fetches one order by
its key in the person's scope (``bench/floor.py``'s ``bare_request``). Each
dashboard answer is checked (200, every chart there) and its queries counted.
``--explain`` prints the plan and time of each query of one dashboard request.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_dashboard")

from sweep import QueryCounter, start  # noqa: E402

OPERATOR = "operator"
PROVIDER = "provider1"  # P-DEMO-1
MERCHANT = "merchant1"  # M-DEMO-1
QUERY_BUDGET = 12

# The online flow, as ``orders.choices.FLOW_ORDER``, then completion.
FLOW = (
    "ARRAY['awaiting_shipment','inbound','arrived','signed_in','appraised','inspected','packed',"
    "'waybill_printed','outbound','delivered','completed']"
)

# 1. Finished orders finished at any hour of the last 60 days, paid 3 to 10
#    days before; one in 200 of them was never delivered and was refunded at
#    its deadline.
SPREAD = """
UPDATE orders_order SET
  state = CASE WHEN id %% 200 = 3 THEN 'auto_refunded' ELSE state END,
  state_changed_at = %(now)s - make_interval(hours => ((id * 7919) %% 1440)::int, mins => (id %% 60)::int),
  paid_at = %(now)s - make_interval(hours => ((id * 7919) %% 1440)::int + 72 + (id %% 168)::int)
WHERE state = 'completed'
"""
SPREAD_FIELDS = """
UPDATE orders_order SET
  auto_confirm_at = CASE WHEN state = 'auto_refunded' THEN state_changed_at
                         ELSE state_changed_at + interval '1 day' END,
  confirmed_at = CASE WHEN state = 'completed' THEN state_changed_at END,
  delivered_at = CASE WHEN state = 'completed' THEN state_changed_at - interval '2 days' END,
  picked_up_at = CASE WHEN state = 'completed' THEN state_changed_at - interval '4 days' END,
  waybill_printed_at = CASE WHEN state = 'completed' THEN state_changed_at - interval '5 days' END,
  inbound_delivered_at = CASE WHEN state = 'auto_refunded' THEN NULL ELSE inbound_delivered_at END
WHERE state IN ('completed', 'auto_refunded')
"""
# 2. One event per step: the order's path is the flow up to its state (an
#    auto-refunded order got as far as its waybill, then expired). Step k of
#    n happens at paid_at + span * (k + jitter) / (n + 2), the jitter under
#    one, the last step at state_changed_at: the steps keep their order and
#    each stage's time varies; provider P-DEMO-2 is slower to inspect and to pack.
EVENTS = f"""
WITH flow AS (SELECT {FLOW} AS states),
paths AS (
  SELECT o.id, o.paid_at, o.state_changed_at, o.provider_id = %(slow)s AS slow,
         CASE o.state WHEN 'auto_refunded' THEN f.states[2:8] || ARRAY['auto_refunded']
                      ELSE f.states[2:array_position(f.states, o.state)] END AS path
  FROM orders_order o, flow f
),
steps AS (
  SELECT p.id, p.paid_at, p.state_changed_at, p.slow, p.path, k, cardinality(p.path) AS n
  FROM paths p, generate_subscripts(p.path, 1) AS k
)
INSERT INTO orders_orderevent
  (order_id, seq, action, source, from_state, to_state, payload, occurred_at, recorded_at)
SELECT id, 1, 'create', 'platform', '', 'awaiting_shipment', '{{}}'::jsonb, paid_at, paid_at FROM orders_order
UNION ALL
SELECT id, k + 1,
  CASE path[k] WHEN 'inbound' THEN 'ship' WHEN 'arrived' THEN 'carrier_delivery' WHEN 'signed_in' THEN 'sign_in'
    WHEN 'appraised' THEN 'appraise' WHEN 'inspected' THEN 'inspect' WHEN 'packed' THEN 'pack'
    WHEN 'waybill_printed' THEN 'print_waybill' WHEN 'outbound' THEN 'carrier_pickup'
    WHEN 'delivered' THEN 'carrier_delivery' WHEN 'completed' THEN 'confirm' ELSE 'expire' END,
  CASE WHEN path[k] IN ('arrived', 'outbound', 'delivered') THEN 'carrier'
       WHEN path[k] = 'auto_refunded' THEN 'sweep' ELSE 'web' END,
  CASE WHEN k = 1 THEN 'awaiting_shipment' ELSE path[k - 1] END,
  path[k],
  '{{}}'::jsonb,
  t, t
FROM (
  SELECT *, CASE WHEN k = n THEN state_changed_at
    ELSE paid_at + (state_changed_at - paid_at)
         * ((k + ((id * 31 + k * 17) %% 50) / 100.0
             + CASE WHEN slow AND path[k] IN ('inspected', 'packed') THEN 0.49 ELSE 0 END) / (n + 2)) END AS t
  FROM steps
) timed
"""
VERSIONS = """
UPDATE orders_order o SET version = e.n FROM (
  SELECT order_id, count(*) AS n FROM orders_orderevent GROUP BY order_id
) e WHERE e.order_id = o.id AND o.version <> e.n
"""
# 3. The fees those steps charged: a logistics fee at each pickup, an
#    appraisal fee at each completion with pass or fail (split groups of two
#    thus pay twice).
FEES = """
INSERT INTO orders_feecharge (order_id, kind, amount, waybill_no, charged_at)
SELECT e.order_id, 'logistics', p.logistics_fee, o.waybill_no, e.occurred_at
FROM orders_orderevent e JOIN orders_order o ON o.id = e.order_id JOIN portal_organisation p ON p.id = o.provider_id
WHERE e.to_state = 'outbound'
UNION ALL
SELECT e.order_id, 'appraisal', p.appraisal_fee, '', e.occurred_at
FROM orders_orderevent e JOIN orders_order o ON o.id = e.order_id JOIN portal_organisation p ON p.id = o.provider_id
WHERE e.to_state = 'completed' AND o.appraisal_result IN ('pass', 'fail')
"""


# 4. A split group is closed by the sweep a few minutes after its last order
#    finished (the one sweep just run closed them all at once, "now").
CLOSED = """
UPDATE orders_splitgroup g SET closed_at = m.finished + interval '5 minutes'
FROM (
  SELECT o.trade_no, o.sku, max(o.state_changed_at) AS finished
  FROM orders_order o JOIN orders_splitgroup s ON s.trade_no = o.trade_no AND s.sku = o.sku
  GROUP BY o.trade_no, o.sku
) m
WHERE g.closed_at IS NOT NULL AND g.trade_no = m.trade_no AND g.sku = m.sku
"""


def add_history(now):
    """Give the built orders their history (see the module's docstring); once."""
    from django.db import connection, transaction

    from orders import durations
    from orders.models import OrderEvent
    from portal.models import Organisation
    from risks.sweep import run_sweep

    if OrderEvent.objects.exists():
        return
    started = time.perf_counter()
    slow = Organisation.objects.get(code="P-DEMO-2").pk
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(SPREAD, {"now": now})
        cursor.execute(SPREAD_FIELDS)
        cursor.execute(EVENTS, {"slow": slow})
        cursor.execute(VERSIONS)
        cursor.execute(FEES)
        cursor.execute("ANALYZE")
    print(f"history: events and fees in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    run_sweep(now)
    with connection.cursor() as cursor:
        cursor.execute(CLOSED)
    answer_escalations(now)
    print(f"history: sweep and escalations in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    rows = durations.refresh(now)
    print(f"history: stage durations ({rows} rows) in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def answer_escalations(now):
    """Half of the escalations taken by an operator, some of them late; a
    tenth more raised by merchants, some now overdue."""
    from django.contrib.auth import get_user_model

    from risks.choices import EscalationStatus
    from risks.models import EntryKind, Escalation, EscalationEntry

    operator = get_user_model().objects.get(username=OPERATOR)
    escalations = list(Escalation.objects.order_by("pk").values_list("pk", "first_response_due_at"))
    answered = escalations[::2]
    entries = []
    for n, (pk, due) in enumerate(answered):
        at = due + datetime.timedelta(hours=2) if n % 4 == 0 else due - datetime.timedelta(hours=1)
        entries.append(
            EscalationEntry(escalation_id=pk, kind=EntryKind.ASSIGNED, author=operator, body=OPERATOR, created_at=at)
        )
    EscalationEntry.objects.bulk_create(entries, batch_size=2000)
    Escalation.objects.filter(pk__in=[pk for pk, _ in answered]).update(
        assignee=operator, status=EscalationStatus.IN_PROGRESS
    )
    late = [pk for pk, _ in escalations[1::4]]
    Escalation.objects.filter(pk__in=late).update(first_response_due_at=now - datetime.timedelta(hours=1))


def dashboard_calls(client, runs):
    from django.urls import reverse

    url = reverse("dashboard")
    return [lambda: client.get(url) for _ in range(runs)]


def check_page(response):
    from portal.dashboard import CHARTS

    body = response.content.decode()
    if response.status_code != 200 or any(f'id="chart-{slug}-data"' not in body for slug in CHARTS):
        raise SystemExit(f"the dashboard answered {response.status_code}:\n{body[:600]}")


def floor_calls(client, user, runs):
    """The bare stack: GETs through the same middleware to ``bare_request``
    for random orders in the person's scope."""
    from django.db import connection
    from django.urls import reverse

    with connection.cursor() as cursor:
        sides = {"merchant": "WHERE merchant_id = %s", "provider": "WHERE provider_id = %s"}
        scope = sides.get(user.organisation.kind, "")
        cursor.execute(
            f"SELECT id FROM orders_order {scope} ORDER BY random() LIMIT %s",
            [user.organisation_id, runs] if scope else [runs],
        )
        pks = [pk for (pk,) in cursor.fetchall()]
    urls = [reverse("bench-floor", args=[pk]) for pk in pks]
    return [lambda url=url: client.get(url) for url in urls]


def check_floor(response):
    if response.status_code != 200 or not response.content:
        raise SystemExit(f"the floor request answered {response.status_code}")


def timed(calls, check):
    """Milliseconds of each call, timed alone, and the queries of each."""
    from django.db import connection

    timings, queries = [], []
    for call in calls:
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            response = call()
            timings.append((time.perf_counter() - started) * 1000)
        check(response)
        queries.append(counter.count)
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return {"p50": statistics.median(timings), "p95": cuts[94], "max": max(timings), "queries": queries}


def explain(client):
    """The plan and the time of every query of one dashboard request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("dashboard"))
    for query in captured.captured_queries:
        sql = query["sql"]
        print(f"\n{float(query['time']) * 1000:7.1f} ms  {sql[:300]}")
        if sql.lstrip().upper().startswith("SELECT"):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                for (line,) in cursor.fetchall():
                    print(f"      {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the orders even if the count matches")
    parser.add_argument("--explain", action="store_true", help="print the plan of each query of one request")
    args = parser.parse_args()

    now = datetime.datetime.now(datetime.UTC)
    start(args.orders, args.rebuild, 1.0, now)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from floor import install_floor_view

    from orders import durations
    from orders.models import Order, OrderEvent
    from portal import dashboard

    settings.DEBUG = False
    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    install_floor_view()
    add_history(now)

    started = time.perf_counter()
    rows = durations.refresh()
    refresh_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tallied = dashboard.refresh_tallies()
    tally_seconds = time.perf_counter() - started

    people = get_user_model().objects.select_related("organisation")
    results = []
    for username in (OPERATOR, PROVIDER, MERCHANT):
        user = people.get(username=username)
        client = Client()
        client.force_login(user)
        # Warm the connection, Django's caches and PostgreSQL's buffers alike for both.
        timed(dashboard_calls(client, 3), check_page)
        timed(floor_calls(client, user, 3), check_floor)
        if args.explain:
            explain(client)
        page = timed(dashboard_calls(client, args.runs), check_page)
        base = timed(floor_calls(client, user, args.runs), check_floor)
        results.append((username, user.organisation.code, page, base))
        client.logout()

    header = f"{'dashboard as':<22} {'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}"
    floor_header = f"{'floor p50':>10} {'p95 ms':>8} {'queries':>8}"
    print(f"\n{header}   {floor_header}")
    print("-" * (len(header) + len(floor_header) + 3))
    over = []
    for username, code, page, base in results:
        counts = sorted(set(page["queries"]))
        shown = "/".join(str(n) for n in counts)
        print(
            f"{username + ' (' + code + ')':<22} {args.runs:>5} {page['p50']:>8.1f} {page['p95']:>8.1f}"
            f" {page['max']:>8.1f} {shown:>8}   {base['p50']:>10.2f} {base['p95']:>8.2f}"
            f" {statistics.mean(base['queries']):>8.1f}"
        )
        if max(counts) > QUERY_BUDGET or len(counts) > 1:
            over.append(username)
    print(f"\n{Order.objects.count():,} orders, {OrderEvent.objects.count():,} events.")
    print(f"stage durations refresh: {refresh_seconds:.2f} s, {rows} provider stages.")
    print(
        f"dashboard tallies refresh: {tally_seconds:.2f} s, {tallied['open']} open-order rows, "
        f"{tallied['fees']} duplicate-fee rows."
    )
    with open("/proc/loadavg") as loadavg:
        print(f"load average: {loadavg.read().strip()}")
    print("floor: a GET through the same middleware to a view that fetches one order by its key in scope.")
    if over:
        raise SystemExit(f"more than {QUERY_BUDGET} queries, or a count that varies, for: {', '.join(over)}")


if __name__ == "__main__":
    main()
