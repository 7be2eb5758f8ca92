"""Benchmark of the risk sweep on PostgreSQL (SPEC §8: 1,000,000 orders, 1 % stuck).

    python bench/sweep.py [--orders 1000000] [--stuck-percent 1] [--rebuild] [--checkpoint]

Builds the orders straight in SQL (a minute for a million), in its own
database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/portal_bench),
then runs the sweep twice and prints, for each run, the wall time, the
queries it issued (statements through Django; a ``COPY`` is not one) and the
process's peak resident memory:

- first: every stuck order is new, cases are opened, finished split groups
  are closed;
- steady: the next sweep, with the same hits and nothing to open or close;
With ``--stuck-percent 0`` nothing is due at all: every split group is
finished too, so the steady run measures a sweep with no hits.

When the orders are there already, the cases and what they caused are
emptied and every split group reopened (then vacuumed, as autovacuum would
after such a change) before the first run. ``--checkpoint`` starts the first
run right after a checkpoint: every page it changes (each case's order is
locked by its foreign key) is then written to the WAL whole, as in a sweep
that follows a checkpoint, rather than whatever the last runs left.

Between runs the clock is held still, so each run sees the same orders.
"""

import argparse
import datetime
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"


def prepare_database(url):
    """Create the benchmark database if it does not exist."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    server = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def start(orders, rebuild, stuck_percent, now):
    """Open the benchmark database (created and migrated on first use) and make
    Django ready on it; build ``orders`` orders unless that many are there
    already. Answers whether it built them."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    prepare_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from orders.models import Order

    call_command("migrate", verbosity=0)
    if not rebuild and Order.objects.count() == orders:
        return False
    started = time.perf_counter()
    build(orders, stuck_percent, now)
    print(f"built {orders:,} orders in {time.perf_counter() - started:.1f} s")
    return True


def build(total, stuck_percent, now):
    """Organisations and ``total`` orders: 60 % finished, the rest open and fresh,
    ``stuck_percent`` % stuck across the rules, 2 % in split groups (half still open)."""
    from django.db import connection

    from portal.demo import seed_people

    seed_people()
    stuck_every = int(100 / stuck_percent) if stuck_percent else 0
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE risks_caseevent, risks_escalationentry, risks_escalation, risks_riskcase, portal_notification, "
            "orders_carrierscan, orders_feecharge, orders_orderevent, orders_splitgroup, orders_order "
            "RESTART IDENTITY CASCADE"
        )
        cur.execute("SELECT id FROM portal_organisation WHERE code IN ('M-DEMO-1', 'M-DEMO-2') ORDER BY code")
        m1, m2 = (r[0] for r in cur.fetchall())
        cur.execute("SELECT id FROM portal_organisation WHERE code IN ('P-DEMO-1', 'P-DEMO-2') ORDER BY code")
        p1, p2 = (r[0] for r in cur.fetchall())
        cur.execute(
            f"""
            WITH base AS (
              SELECT i,
                     (i %% 10 < 6) AS finished,
                     {f"(i %% {stuck_every} = 0)" if stuck_every else "false"} AS stuck,
                     (i / {stuck_every or 1}) %% 7 AS kind,
                     (i %% 100 IN ({"1, 2, 47, 48" if stuck_every else "1, 2"})) AS paired
              FROM generate_series(1, %(total)s) AS i
            ), shaped AS (
              SELECT i, paired,
                CASE
                  WHEN stuck AND kind = 0 THEN 'arrived'
                  WHEN stuck AND kind IN (1, 3) THEN 'signed_in'
                  WHEN stuck AND kind = 2 THEN 'awaiting_shipment'
                  WHEN stuck AND kind = 4 THEN 'outbound'
                  WHEN stuck AND kind = 5 THEN 'awaiting_shipment'
                  WHEN stuck AND kind = 6 THEN 'packed'
                  WHEN finished THEN 'completed'
                  ELSE (ARRAY['awaiting_shipment','inbound','signed_in','appraised','inspected','packed',
                              'waybill_printed','outbound','delivered'])[1 + i %% 9]
                END AS state,
                CASE
                  WHEN stuck AND kind = 0 THEN interval '30 hours'
                  WHEN stuck AND kind IN (1, 3) THEN interval '30 hours'
                  WHEN stuck AND kind = 4 THEN interval '130 hours'
                  WHEN stuck AND kind = 5 THEN interval '60 hours'
                  WHEN stuck AND kind = 6 THEN interval '20 hours'
                  ELSE interval '1 hour'
                END AS age,
                CASE WHEN stuck AND kind = 2 THEN interval '20 hours'
                     WHEN finished AND NOT stuck THEN interval '-5 days'
                     ELSE interval '10 days' END AS deadline_in,
                (stuck AND kind = 3) AS blocked
              FROM base
            )
            INSERT INTO orders_order (
              order_no, trade_no, merchant_id, provider_id, sku, item_title, quantity, amount,
              buyer_name, buyer_phone, buyer_address, paid_at, auto_confirm_at, state, appraisal_result,
              flow_blocked, blocked_stage, blocked_reason, inbound_carrier, inbound_tracking_no,
              inbound_delivered_at, waybill_no, waybill_printed_at, picked_up_at, delivered_at, confirmed_at,
              state_changed_at, version, created_at)
            SELECT
              'B' || lpad(i::text, 8, '0'),
              CASE WHEN paired THEN 'TG' || (i - i %% 100 + CASE WHEN i %% 100 < 40 THEN 1 ELSE 47 END)
                   ELSE 'T' || i END,
              CASE WHEN i %% 2 = 0 THEN {m1} ELSE {m2} END,
              CASE WHEN i %% 3 = 0 THEN {p2} ELSE {p1} END,
              'SKU-' || (CASE WHEN paired THEN 0 ELSE i %% 50 END),
              'item ' || i, 1, 100 + (i %% 900),
              '', '', '',
              %(now)s - age - interval '1 day',
              %(now)s + deadline_in,
              state,
              CASE WHEN state IN ('appraised','inspected','packed','waybill_printed','outbound','delivered','completed')
                   THEN CASE WHEN paired AND i %% 100 IN (2, 48) THEN 'not_required' ELSE 'pass' END ELSE '' END,
              blocked, CASE WHEN blocked THEN 'entry' ELSE '' END, '',
              CASE WHEN state <> 'awaiting_shipment' THEN 'SF' ELSE '' END,
              CASE WHEN state <> 'awaiting_shipment' THEN 'SF' || i ELSE '' END,
              CASE WHEN state NOT IN ('awaiting_shipment', 'inbound') THEN %(now)s - age ELSE NULL END,
              CASE WHEN state IN ('waybill_printed','outbound','delivered','completed') THEN 'AXJ' || i ELSE '' END,
              CASE WHEN state IN ('waybill_printed','outbound','delivered','completed')
                   THEN %(now)s - age ELSE NULL END,
              CASE WHEN state IN ('outbound','delivered','completed') THEN %(now)s - age ELSE NULL END,
              CASE WHEN state IN ('delivered','completed') THEN %(now)s - age ELSE NULL END,
              CASE WHEN state = 'completed' THEN %(now)s - age ELSE NULL END,
              %(now)s - age, 1, %(now)s
            FROM shaped
            """,
            {"total": total, "now": now},
        )
        cur.execute(
            "INSERT INTO orders_splitgroup (trade_no, sku, choice) "
            "SELECT trade_no, sku, '' FROM orders_order WHERE trade_no LIKE 'TG%%' GROUP BY trade_no, sku"
        )
        cur.execute("ANALYZE")


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def measure(label, now):
    from django.db import connection

    from risks.sweep import run_sweep

    counter = QueryCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        summary = run_sweep(now)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{label:<7} wall {wall * 1000:8.1f} ms   queries {counter.count:4d}   "
        f"peak RSS {peak_mb:6.1f} MB   {summary.line()}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--stuck-percent", type=float, default=1.0)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the orders even if the count matches")
    parser.add_argument("--checkpoint", action="store_true", help="start the first sweep right after a checkpoint")
    args = parser.parse_args()

    now = datetime.datetime.now(datetime.UTC)
    if not start(args.orders, args.rebuild, args.stuck_percent, now):
        from django.db import connection

        with connection.cursor() as cursor:  # the cases and what they caused, not the orders
            cursor.execute(
                "TRUNCATE risks_caseevent, risks_escalationentry, risks_escalation, risks_riskcase, "
                "portal_notification RESTART IDENTITY CASCADE"
            )
            cursor.execute("UPDATE orders_splitgroup SET closed_at = NULL")
            # Reopening every group leaves as many dead rows; clear them as
            # autovacuum would (the benchmark's server may run without it).
            cursor.execute("VACUUM ANALYZE orders_splitgroup")
    if args.checkpoint:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    measure("first", now)
    # The first sweep closes thousands of finished split groups; refresh the
    # planner's statistics as autovacuum would after such a change.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_splitgroup")
    measure("steady", now)


if __name__ == "__main__":
    main()
