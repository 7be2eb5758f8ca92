"""Benchmark of order search on PostgreSQL against the floor of the stack (SPEC §8:
1,000,000 orders, search by the last 6 characters ≤ 20 ms).

    python bench/floor.py [--orders 1000000] [--runs 200] [--rebuild]

Builds the orders with ``bench/sweep.py``'s ``build()`` (reused when the count
matches), in its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench), then gives the trade,
tracking and waybill numbers the shape of real ones (see ``renumber``).

Each measurement is a function that takes the ``Context`` and returns ``Runs``:
one call per run, timed one by one in-process with its queries counted, and
the orders the calls are about. Beside each, the floor: the same number of
bare primary-key lookups of those orders, measured right after it, which is
what any request costs before it does anything. To add a measurement (say one
scan request through Django's test Client), write such a function and list it
in ``MEASUREMENTS``.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sweep import DEFAULT_URL, QueryCounter, build, prepare_database  # noqa: E402

SUFFIX = 6  # characters typed: the tail of a number printed on a parcel label
PROVIDER = "provider1"  # a provider's person (P-DEMO-1, two thirds of the orders)

# The trade, tracking and waybill numbers built by ``bench/sweep.py`` are
# distinct but short and sequential ('T17', 'SF17', 'AXJ17'). Real ones are
# long, and their tails are spread: trade numbers are 17 digits, SF tracking
# numbers 'SF1' and 12 digits, waybills as the workflow prints them (the order
# id in 10 digits, then 6 random ones). Multiplying by a number prime to 10
# modulo a power of 10 spreads the tails and keeps every number distinct;
# orders that share a trade number (split groups) still share it.
TRADE = "'3' || lpad(((({key}) * 792606829) % 10000000000000000)::text, 16, '0')"
RENUMBER = f"""
UPDATE orders_order SET
  trade_no = CASE WHEN trade_no LIKE 'TG%%' THEN {TRADE.format(key="substr(trade_no, 3)::bigint")}
                  ELSE {TRADE.format(key="substr(trade_no, 2)::bigint")} END,
  inbound_tracking_no = CASE WHEN inbound_tracking_no = '' THEN ''
       ELSE 'SF1' || lpad(((substr(inbound_tracking_no, 3)::bigint * 7368787) % 1000000000000)::text, 12, '0') END,
  waybill_no = CASE WHEN waybill_no = '' THEN ''
       ELSE 'AXJ' || lpad(substr(waybill_no, 4), 10, '0') || lpad(floor(random() * 1000000)::int::text, 6, '0') END
"""
RENUMBER_GROUPS = f"""
UPDATE orders_splitgroup SET trade_no = {TRADE.format(key="substr(trade_no, 3)::bigint")} WHERE trade_no LIKE 'TG%%'
"""


def renumber():
    """Give the built orders realistic numbers, and tidy the table after rewriting every row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(RENUMBER)
        cursor.execute(RENUMBER_GROUPS)
        cursor.execute("VACUUM FULL orders_order")
        cursor.execute("VACUUM FULL orders_splitgroup")
        cursor.execute("ANALYZE")


def needs_renumbering():
    from orders.models import Order

    return Order.objects.filter(trade_no__startswith="T").exists()


@dataclass
class Context:
    """What measurements share: the person searching and how many runs each gets."""

    user: object
    runs: int

    def sample(self, column):
        """``runs`` random orders in the person's scope with ``column`` set: (pk, value) pairs."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {column} FROM orders_order WHERE provider_id = %s AND {column} <> '' "
                "ORDER BY random() LIMIT %s",
                [self.user.organisation_id, self.runs],
            )
            return cursor.fetchall()


@dataclass
class Runs:
    """One measurement: a label, one call per run, and the orders the calls are about."""

    label: str
    calls: list[Callable[[], object]]
    pks: list[int]


def search_by_suffix(column, label):
    """A measurement: search for the last ``SUFFIX`` characters of ``column`` of random orders in scope."""

    def measurement(ctx):
        from orders.filtersets import search
        from orders.models import Order

        scoped = Order.objects.visible_to(ctx.user)
        sample = ctx.sample(column)
        # What the search box fetches at most: a page of the order list.
        calls = [lambda value=value: list(search(scoped, value[-SUFFIX:])[:50]) for _, value in sample]
        return Runs(f"search: last {SUFFIX} of {label}", calls, [pk for pk, _ in sample])

    measurement.__name__ = f"search_{column}"
    return measurement


MEASUREMENTS = [
    search_by_suffix("waybill_no", "waybill"),
    search_by_suffix("inbound_tracking_no", "tracking no"),
    search_by_suffix("order_no", "order no"),
]


@dataclass
class Figures:
    p50: float
    p95: float
    queries: float
    rows: float


def timed(calls):
    """Run each call once, timing it alone; milliseconds, queries and rows per call."""
    from django.db import connection

    timings, queries, rows = [], 0, 0
    for call in calls:
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            result = call()
            timings.append((time.perf_counter() - started) * 1000)
        queries += counter.count
        rows += len(result) if isinstance(result, list) else result is not None
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return Figures(statistics.median(timings), cuts[94], queries / len(calls), rows / len(calls))


def floor(pks):
    """The bare stack: one primary-key lookup per run."""
    from orders.models import Order

    return [lambda pk=pk: Order.objects.filter(pk=pk).first() for pk in pks]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the orders even if the count matches")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    prepare_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from orders.models import Order

    call_command("migrate", verbosity=0)
    if args.rebuild or Order.objects.count() != args.orders:
        started = time.perf_counter()
        build(args.orders, 1.0, timezone.now())
        print(f"built {args.orders:,} orders in {time.perf_counter() - started:.1f} s")
    if needs_renumbering():
        started = time.perf_counter()
        renumber()
        print(f"renumbered in {time.perf_counter() - started:.1f} s")

    ctx = Context(user=get_user_model().objects.select_related("organisation").get(username=PROVIDER), runs=args.runs)
    # Warm the connection, Django's caches and PostgreSQL's buffers the same
    # way for every measurement, so the first one is not charged for it.
    for measurement in MEASUREMENTS:
        warm = measurement(Context(ctx.user, 20))
        timed(warm.calls)
        timed(floor(warm.pks))

    header = f"{'measurement':<30} {'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'rows':>6}"
    print(f"\n{header}   {'floor p50':>9} {'floor p95':>9} {'queries':>8}")
    print("-" * (len(header) + 31))
    for measurement in MEASUREMENTS:
        runs = measurement(ctx)
        got = timed(runs.calls)
        base = timed(floor(runs.pks))
        print(
            f"{runs.label:<30} {len(runs.calls):>5} {got.p50:>8.2f} {got.p95:>8.2f} {got.queries:>8.1f}"
            f" {got.rows:>6.1f}   {base.p50:>9.2f} {base.p95:>9.2f} {base.queries:>8.1f}"
        )
    print(f"\n{Order.objects.count():,} orders; searching as {PROVIDER} ({ctx.user.organisation.code}).")


if __name__ == "__main__":
    main()
