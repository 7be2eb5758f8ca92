"""Benchmark of order search and the scan station on PostgreSQL against the floor
of the stack (SPEC §8: 1,000,000 orders, search by the last 6 characters
≤ 20 ms, one scan p95 ≤ 50 ms server time).

    python bench/floor.py [--orders 1000000] [--runs 200] [--rebuild] [--verbose]

Builds the orders with ``bench/sweep.py``'s ``build()`` (reused when the count
matches), in its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench), then gives the trade,
tracking and waybill numbers the shape of real ones (see ``renumber``).

Each measurement is a function that takes the ``Context`` and returns ``Runs``:
one call per run, timed one by one in-process with its queries counted, and
the orders the calls are about. Beside each, the floor: the same number of
bare primary-key lookups of those orders, measured right after it, which is
what any query costs before it does anything. To add a measurement, write
such a function and list it in ``MEASUREMENTS``.

The scan station's measurements are whole requests: ``POST
/worklists/pending-sign-in/scan/`` through Django's test ``Client``,
in-process, as the provider's person, with every middleware of the settings
and ``DEBUG`` off. Their floor is a request too: the same POST through the same
middleware to a view that only fetches the order by its key in the person's
scope (``bare_request``). Each scan is a real sign-in of an order waiting for
it, committed as the station commits it; the orders are restored afterwards
(``Parcels``). ``--verbose`` prints the queries of one call of each.
"""

import argparse
import dataclasses
import datetime
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sweep import QueryCounter, start  # noqa: E402

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
    """What measurements share: the person searching or scanning, how many runs
    each gets, and a test ``Client`` signed in as that person."""

    user: object
    runs: int
    client: object = None

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
    """One measurement: a label, one call per run, and the orders the calls are about.

    ``check`` turns a call's result into the rows it counts, after the call is
    timed, and raises if the result is wrong. ``floor`` makes the floor's calls
    for the same orders (bare primary-key lookups unless said otherwise).
    ``cleanup`` undoes what the calls changed."""

    label: str
    calls: list[Callable[[], object]]
    pks: list[int]
    check: Callable[[object], object] | None = None
    floor: Callable[[list[int]], list[Callable[[], object]]] | None = None
    cleanup: Callable[[], None] | None = None


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


# --- the scan station ----------------------------------------------------------

STATION = "pending-sign-in"  # the worklist whose station signs parcels in
SAVED = "bench_scan_saved"  # the picked orders as they were, until restored
OUTCOME = re.compile(r'data-outcome="(\w+)"')
# The SF tracking numbers ``renumber`` gives, for an order that had none.
TRACKING = "'SF1' || lpad(((id * 7368787) %% 1000000000000)::text, 12, '0')"


class Parcels:
    """Orders of the person's provider waiting to be signed in, and their restoration.

    The station's worklist takes orders ``arrived`` or ``inbound`` (a parcel in
    the provider's hands before the carrier's delivery scan says so); those
    with a tracking number are picked at random, ``arrived`` first. If the
    database has too few, orders still awaiting shipment are made ``arrived``
    in SQL with an SF tracking number, as the carrier's scans would leave them.
    Their ``version`` is left as it is: the sign-in's event takes the next
    sequence number, which no event of the order has yet.

    Every picked row is first copied into the table ``bench_scan_saved``;
    ``restore`` puts the rows back as they were, deletes the events written
    since, and drops the table. A run that died before restoring is restored
    when the next one starts (``restore_leftovers``).
    """

    def __init__(self, user, count):
        from django.db import connection

        provider = user.organisation_id
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {SAVED} AS SELECT * FROM orders_order WHERE false")
            cursor.execute(
                "SELECT id FROM orders_order WHERE provider_id = %s AND state IN ('arrived', 'inbound') "
                "AND inbound_tracking_no <> '' AND NOT flow_blocked "
                "ORDER BY state = 'inbound', random() LIMIT %s",
                [provider, count],
            )
            waiting = [pk for (pk,) in cursor.fetchall()]
            cursor.execute(
                "SELECT id FROM orders_order WHERE provider_id = %s AND state = 'awaiting_shipment' "
                "AND NOT flow_blocked ORDER BY random() LIMIT %s",
                [provider, count - len(waiting)],
            )
            made = [pk for (pk,) in cursor.fetchall()]
            cursor.execute(f"INSERT INTO {SAVED} SELECT * FROM orders_order WHERE id = ANY(%s)", [waiting + made])
            if made:
                cursor.execute(
                    "UPDATE orders_order SET state = 'arrived', inbound_carrier = 'SF', "
                    f"inbound_tracking_no = {TRACKING}, inbound_delivered_at = now() - interval '2 hours', "
                    "state_changed_at = now() - interval '2 hours' "
                    "WHERE id = ANY(%s)",
                    [made],
                )
            cursor.execute(
                "SELECT id, inbound_tracking_no FROM orders_order WHERE id = ANY(%s) "
                "ORDER BY array_position(%s::bigint[], id)",
                [waiting + made, waiting + made],
            )
            self.rows = cursor.fetchall()
        self.made = len(made)

    @staticmethod
    def restore():
        from django.db import connection, transaction

        from orders.models import Order

        columns = [f.column for f in Order._meta.concrete_fields if f.column != "id"]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE orders_order o SET {', '.join(f'{c} = s.{c}' for c in columns)} "
                f"FROM {SAVED} s WHERE o.id = s.id"
            )
            cursor.execute(
                f"DELETE FROM orders_orderevent e USING {SAVED} s WHERE e.order_id = s.id AND e.seq > s.version"
            )
            cursor.execute(f"DROP TABLE {SAVED}")


def restore_leftovers():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [SAVED])
        leftover = cursor.fetchone()[0] is not None
    if leftover:
        Parcels.restore()
        print(f"restored the orders a previous run left signed in ({SAVED})")


def scan_url():
    from django.urls import reverse

    return reverse("orders:station", args=[STATION])


def post_scan(client, url, code):
    from orders.views.station import SCRIPT_HEADER

    return client.post(url, {"code": code}, headers={"X-Requested-With": SCRIPT_HEADER})


def answered(expected):
    """A check: the station answered 200 with lines, each of them ``expected``."""

    def check(response):
        outcomes = OUTCOME.findall(response.content.decode()) if response.status_code == 200 else []
        if not outcomes or any(o != expected for o in outcomes):
            content = response.content[:600]
            raise SystemExit(f"scan answered {response.status_code} {outcomes}, not {expected!r}:\n{content}")
        return outcomes

    return check


def scans(repeat):
    """A measurement: scan the inbound tracking numbers of waiting orders, typed
    lower-case, one request each; with ``repeat``, numbers signed in already
    (signed in first, untimed), which the station answers without writing."""

    def measurement(ctx):
        parcels = Parcels(ctx.user, ctx.runs)
        url = scan_url()
        codes = [number.lower() for _, number in parcels.rows]
        if repeat:
            check = answered("done")
            for code in codes:
                check(post_scan(ctx.client, url, code))
        calls = [lambda code=code: post_scan(ctx.client, url, code) for code in codes]
        label = "scan again: already in" if repeat else "scan: sign in"
        if parcels.made:
            label += f" ({parcels.made} made arrived)"
        return Runs(
            label,
            calls,
            [pk for pk, _ in parcels.rows],
            check=answered("already" if repeat else "done"),
            floor=lambda pks: request_floor(ctx.client, pks),
            cleanup=Parcels.restore,
        )

    measurement.__name__ = "scan_again" if repeat else "scan"
    return measurement


FLOOR_URL = "bench/order/<int:pk>/"


def bare_request(request, pk):
    """The floor of a request: the person signed in, one order fetched by its key in their scope."""
    from django.http import HttpResponse

    from orders.models import Order

    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    order = Order.objects.visible_to(request.user).filter(pk=pk).first()
    return HttpResponse(order.order_no if order else "", content_type="text/plain")


def install_floor_view():
    """Serve ``bare_request`` beside the portal's own URLs (after them, so
    none of theirs resolves differently)."""
    import types

    from django.conf import settings
    from django.urls import clear_url_caches, path

    portal_urls = __import__(settings.ROOT_URLCONF, fromlist=["urlpatterns"])
    module = types.ModuleType("bench_urls")
    module.urlpatterns = [*portal_urls.urlpatterns, path(FLOOR_URL, bare_request, name="bench-floor")]
    for name in ("handler400", "handler403", "handler404", "handler500"):
        if hasattr(portal_urls, name):
            setattr(module, name, getattr(portal_urls, name))
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


def request_floor(client, pks):
    """The bare stack for a request: the same POST through the same middleware,
    answered by ``bare_request`` for each order."""
    from django.urls import reverse

    from orders.views.station import SCRIPT_HEADER

    urls = [reverse("bench-floor", args=[pk]) for pk in pks]
    return [
        lambda url=url: client.post(url, {"code": "x"}, headers={"X-Requested-With": SCRIPT_HEADER}) for url in urls
    ]


def bare_answer(response):
    if response.status_code != 200 or not response.content:
        raise SystemExit(f"the floor request answered {response.status_code} {response.content[:200]}")
    return [response.content]


MEASUREMENTS = [
    search_by_suffix("waybill_no", "waybill"),
    search_by_suffix("inbound_tracking_no", "tracking no"),
    search_by_suffix("order_no", "order no"),
    scans(repeat=False),
    scans(repeat=True),
]


@dataclass
class Figures:
    p50: float
    p95: float
    max: float
    queries: float
    rows: float


def timed(calls, check=None):
    """Run each call once, timing it alone; milliseconds, queries and rows per
    call (``check`` reads the rows from a result, untimed)."""
    from django.db import connection

    timings, queries, rows = [], 0, 0
    for call in calls:
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            result = call()
            timings.append((time.perf_counter() - started) * 1000)
        queries += counter.count
        if check is not None:
            result = check(result)
        rows += len(result) if isinstance(result, list) else result is not None
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return Figures(statistics.median(timings), cuts[94], max(timings), queries / len(calls), rows / len(calls))


def floor(pks):
    """The bare stack: one primary-key lookup per run."""
    from orders.models import Order

    return [lambda pk=pk: Order.objects.filter(pk=pk).first() for pk in pks]


def measure(runs):
    """The measurement's figures and its floor's, measured right after it."""
    if runs.floor is None:
        return timed(runs.calls, runs.check), timed(floor(runs.pks))
    return timed(runs.calls, runs.check), timed(runs.floor(runs.pks), bare_answer)


def show_queries(runs):
    """Print the SQL of the first call of ``runs`` (made, and checked, here)
    and leave the other calls to be timed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = runs.calls[0]()
    if runs.check is not None:
        runs.check(result)
    print(f"\n{runs.label}: {len(captured)} queries")
    for query in captured:
        sql = re.sub(r"^SELECT .+? FROM", "SELECT … FROM", query["sql"], count=1)
        print(f"  {float(query['time']) * 1000:6.2f} ms  {sql[:400]}")
    return dataclasses.replace(runs, calls=runs.calls[1:], pks=runs.pks[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the orders even if the count matches")
    parser.add_argument("--verbose", action="store_true", help="print the queries of one call of each measurement")
    args = parser.parse_args()

    start(args.orders, args.rebuild, 1.0, datetime.datetime.now(datetime.UTC))
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from orders.models import Order

    # As served: no query log, no debug templates. The test Client's host
    # must be allowed; nothing else of the settings changes.
    settings.DEBUG = False
    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    install_floor_view()
    restore_leftovers()
    if needs_renumbering():
        started = time.perf_counter()
        renumber()
        print(f"renumbered in {time.perf_counter() - started:.1f} s")

    user = get_user_model().objects.select_related("organisation").get(username=PROVIDER)
    client = Client()
    client.force_login(user)
    ctx = Context(user=user, runs=args.runs, client=client)
    # Warm the connection, Django's caches and PostgreSQL's buffers the same
    # way for every measurement, so the first one is not charged for it.
    for measurement in MEASUREMENTS:
        warm = measurement(Context(ctx.user, 20, client))
        try:
            measure(show_queries(warm) if args.verbose else warm)
        finally:
            if warm.cleanup is not None:
                warm.cleanup()

    header = f"{'measurement':<30} {'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8} {'rows':>6}"
    floor_header = f"{'floor':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}"
    print(f"\n{header}   {floor_header}")
    print("-" * (len(header) + len(floor_header) + 3))
    for measurement in MEASUREMENTS:
        runs = measurement(ctx)
        try:
            got, base = measure(runs)
        finally:
            if runs.cleanup is not None:
                runs.cleanup()
        print(
            f"{runs.label:<30} {len(runs.calls):>5} {got.p50:>8.2f} {got.p95:>8.2f} {got.max:>8.2f}"
            f" {got.queries:>8.1f} {got.rows:>6.1f}   {'pk' if runs.floor is None else 'request':>8}"
            f" {base.p50:>8.2f} {base.p95:>8.2f} {base.max:>8.2f} {base.queries:>8.1f}"
        )
    print(f"\n{Order.objects.count():,} orders; searching and scanning as {PROVIDER} ({ctx.user.organisation.code}).")
    print("floor pk: Order.objects.filter(pk=...).first() in-process, no request.")
    print(
        "floor request: the same POST through the same middleware to a view that fetches the order"
        " by its key in the person's scope (bare_request)."
    )
    print("rows: orders found by a search; answer lines of a scan (each checked: 'done', 'already').")
    client.logout()  # its session row goes with it


if __name__ == "__main__":
    main()
