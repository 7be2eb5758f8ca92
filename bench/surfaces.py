"""What the benchmarks of the request surfaces share (``bench/worklists.py``,
``bench/lists.py``, ``bench/carrier.py``, ``bench/actions.py``,
``bench/quiet_sweep.py``): the database, the people and credentials they act
as, production settings, the floors, putting back what a run changed, and
the figures.

**The database** is ``bench/durations.py``'s realistic history (1,000,000
orders paid over 365 days, about 10,000,000 events, 12 providers at their
own pace, 40 merchants, the last days' orders open in every state) in a
database of its own (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_surfaces), built on first use
(4 to 15 minutes) and reused while its size and recipe match. On every
start, what beat would have done is done once: the stage durations and the
dashboard tallies refreshed, and, the first time, one risk sweep at the
history's hour, so the lists show their orders' live cases and a step
resolves the cases it clears, as in production.

**Production settings**: ``DEBUG=0`` with a secret key, ``VAR_DIR`` outside
the repository, static files collected with their manifest (``collected_static_files``),
the cache (and so the rate limits) in Redis (``BENCH_REDIS_URL``, default database 13 of the
local Redis), requests made as HTTPS behind the TLS proxy. The rate limits
``API_RATE`` and ``CARRIER_RATE`` are raised to 1,000,000 a minute: a
benchmark sends more than one client's budget, and a 429 measures nothing.

**People and credentials** are made by the scripts: a person of each
organisation a script acts for (``bench-<code>``, no usable password; the
in-process client signs in with ``force_login``), an API key per
organisation (derived from its code, so the same on every run) and one
carrier integration signing for every carrier of the history.

**Putting back** (``Held``): before a run that writes, every open order, every
risk case, escalation and split group is copied aside and the last id of each
table rows are only added to is noted; afterwards the changed rows are
written back, the added rows deleted and the touched tables vacuumed (the
reference server runs without autovacuum). A run that died before that is
put back when the next script starts.
"""

import contextlib
import datetime
import hashlib
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_surfaces"
ORDERS = 1_000_000
DAYS = 365
RATE = "1000000/min"
VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR", "/tmp/portal-bench-surfaces"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET_KEY = "bench-surfaces-" + "s" * 50
CARRIER_SECRET = "bench-carrier-secret-" + "c" * 24
CARRIER_NAME = "bench-carriers"
HOST = "127.0.0.1"
# What the TLS proxy in front of the portal adds to every request.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
PAGE = 50  # rows of a list page (SPEC §8: 50 rows)


def production_environment() -> dict:
    """The environment a production web process runs with, pointed at the
    benchmark's database; the rate limits raised for the benchmark."""
    return {
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": f"{HOST},localhost,testserver",
        "VAR_DIR": str(VAR_DIR),
        "REDIS_URL": REDIS_URL,
        "API_RATE": RATE,
        "CARRIER_RATE": RATE,
        "LOG_LEVEL": "WARNING",
    }


def start():
    """Production settings, the database (built or reused), what beat keeps
    fresh, static files, the floor views, and the process then loaded as a
    web process is (``portal.wsgi``: what it loaded kept out of the garbage
    collector's full collections); answers the history's hour."""
    os.environ.update(production_environment())
    from durations import ensure_history, open_database

    started = time.perf_counter()
    open_database(DEFAULT_URL)
    found = ensure_history(ORDERS, DAYS)
    collected_static_files()
    install_floor_views()
    put_back_leftovers()
    as_beat_would(found["now"])
    import portal.wsgi  # noqa: F401

    print(
        f"{found['orders']:,} orders, {found['events']:,} events over {found['days']} days to "
        f"{found['now']:%Y-%m-%d %H:%M} UTC (ready in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return found["now"]


def collected_static_files():
    """Static files as production serves them: collected, with whitenoise's
    manifest of hashed names (``collectstatic``; only what changed is copied
    again), so a page's ``{% static %}`` costs what it costs in production."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


SWEPT = "bench_surfaces_swept"


def as_beat_would(now):
    """The stage durations and the dashboard tallies refreshed, as beat keeps
    them; once, a risk sweep at the history's hour (its cases stay)."""
    from django.db import connection

    from orders.tasks import refresh_stage_durations
    from portal.tasks import refresh_dashboard_tallies

    refresh_stage_durations()
    refresh_dashboard_tallies()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [SWEPT])
        swept = cursor.fetchone()[0] is not None
    if not swept:
        from risks.sweep import run_sweep

        summary = run_sweep(now)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {SWEPT} AS SELECT %s::timestamptz AS now", [now])
        print(f"first sweep at the history's hour: {summary.line()}", flush=True)


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


# --- people and credentials -----------------------------------------------------


def organisation(code):
    from portal.models import Organisation

    return Organisation.objects.get(code=code)


def person(org):
    """The benchmark's person of ``org`` (made once; no usable password)."""
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(
        username=f"bench-{org.code.lower()}", defaults={"organisation": org}
    )
    if created:
        user.set_unusable_password()
        user.save()
    return get_user_model().objects.select_related("organisation").get(pk=user.pk)


def api_key(org) -> str:
    """The raw API key of ``org`` (installed as an active key; the same on every run)."""
    from portal import apikeys
    from portal.models import ApiKey

    digest = hashlib.sha256(f"bench-surfaces:{org.code}".encode()).hexdigest()
    raw = f"{apikeys.KEY_PREFIX}_{digest[: ApiKey.PREFIX_LENGTH]}_{digest[ApiKey.PREFIX_LENGTH :]}"
    apikeys.install(org, "bench key", raw)
    return raw


def carrier_integration(codes):
    """The carrier integration signing for ``codes``; its secret is ``CARRIER_SECRET``."""
    from portal.models import CarrierIntegration

    integration, _created = CarrierIntegration.objects.get_or_create(
        name=CARRIER_NAME, defaults={"secret": CARRIER_SECRET, "carrier_codes": ", ".join(sorted(codes))}
    )
    integration.secret = CARRIER_SECRET
    integration.carrier_codes = ", ".join(sorted(codes))
    integration.is_active = True
    integration.save()
    return integration


def busiest(kind):
    """The organisation of ``kind`` (``provider`` or ``merchant``) with the most open orders."""
    from django.db.models import Count

    from orders.models import Order

    column = f"{kind}_id"
    top = Order.objects.open().values(column).annotate(n=Count("pk")).order_by("-n").first()
    from portal.models import Organisation

    return Organisation.objects.get(pk=top[column]), top["n"]


def signed_in_client(user):
    """A test ``Client`` signed in as ``user``, making its requests as HTTPS behind the proxy."""
    from django.test import Client

    client = Client(headers=PROXY_HEADERS, secure=True)
    client.force_login(user)
    return client


def key_client(raw):
    """A test ``Client`` sending ``Authorization: Token <raw>``, as HTTPS behind the proxy."""
    from django.test import Client

    return Client(headers={**PROXY_HEADERS, "Authorization": f"Token {raw}"}, secure=True)


# --- the floors -------------------------------------------------------------------

# The columns the order tables show, as plain values.
PLAIN_COLUMNS = (
    "order_no",
    "auto_confirm_at",
    "state",
    "inbound_tracking_no",
    "waybill_no",
    "trade_no",
    "merchant__name",
    "provider__name",
    "item_title",
    "state_changed_at",
    "amount",
)
PLAIN_TABLE = (
    "<!doctype html><title>{{ title }}</title><table>{% for row in rows %}<tr>"
    "{% for value in row %}<td>{{ value }}</td>{% endfor %}</tr>{% endfor %}</table>"
)


def _floor_rows(user, slug, ordering):
    """The same ``PAGE`` rows a list shows, as plain values, in one query:
    the worklist ``slug`` (``""``: every order in scope, ``"open"``: the open
    ones) in ``user``'s scope, sorted by ``ordering``."""
    from orders import worklists
    from orders.models import Order

    orders = Order.objects.visible_to(user)
    if slug == "open":
        orders = orders.open()
    elif slug:
        orders = orders.filter(worklists.BY_SLUG[slug].condition)
    return list(orders.order_by(*ordering).values_list(*PLAIN_COLUMNS)[:PAGE])


def plain_rows(request, slug):
    """HTML floor: the person signed in (session, middleware), the list's
    ``PAGE`` rows in one query, rendered by a plain template (no table
    classes, no base page, no per-row work)."""
    from django.http import HttpResponse
    from django.template import engines

    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    rows = _floor_rows(request.user, "" if slug == "all" else slug, ("auto_confirm_at", "pk"))
    template = engines["django"].from_string(PLAIN_TABLE)
    return HttpResponse(template.render({"title": slug, "rows": rows}, request))


def _drf_floor_views():
    """The DRF floors: the same authentication, permission and throttle as
    every API endpoint (the settings' defaults), then the least the endpoint
    could do."""
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from orders.models import Order

    class BareList(APIView):
        """JSON floor of a list: the same ``PAGE`` rows (by id, as the API
        pages) as plain values, in one query."""

        def get(self, request, slug):
            rows = _floor_rows(request.user, "" if slug == "all" else slug, ("pk",))
            return Response([dict(zip(PLAIN_COLUMNS, row, strict=True)) for row in rows])

    class BareStep(APIView):
        """Floor of a single action: the order fetched by its number in the
        caller's scope, its number and version answered; nothing written."""

        def post(self, request, order_no):
            found = Order.objects.visible_to(request.user).filter(order_no=order_no).values("order_no", "version")
            return Response(found.first() or {})

    return BareList.as_view(), BareStep.as_view()


def install_floor_views():
    """Serve the floors beside the portal's own URLs (after them, so none of
    theirs resolves differently): ``bench/floor.py``'s ``bare_request`` and
    the views above."""
    import types

    from django.conf import settings
    from django.urls import clear_url_caches, path
    from floor import FLOOR_URL, bare_request

    if settings.ROOT_URLCONF == "bench_surfaces_urls":
        return
    bare_list, bare_step = _drf_floor_views()
    portal_urls = __import__(settings.ROOT_URLCONF, fromlist=["urlpatterns"])
    module = types.ModuleType("bench_surfaces_urls")
    module.urlpatterns = [
        *portal_urls.urlpatterns,
        path(FLOOR_URL, bare_request, name="bench-floor"),
        path("bench/plain/<str:slug>/", plain_rows, name="bench-plain"),
        path("bench/api/list/<str:slug>/", bare_list, name="bench-api-list"),
        path("bench/api/step/<str:order_no>/", bare_step, name="bench-api-step"),
    ]
    for name in ("handler400", "handler403", "handler404", "handler500"):
        if hasattr(portal_urls, name):
            setattr(module, name, getattr(portal_urls, name))
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


# --- putting back what a run changed ---------------------------------------------------

# Tables a run only adds rows to (deleted past the noted id afterwards).
APPENDED = (
    "orders_orderevent",
    "orders_feecharge",
    "orders_carrierscan",
    "risks_riskcase",
    "risks_caseevent",
    "risks_escalation",
    "risks_escalationentry",
    "portal_notification",
    "portal_idempotencyrecord",
)
# Tables whose rows a run may change, and which of their rows: copied aside,
# written back where they differ (of the orders, the open ones: only those can
# move).
UPDATED = {
    "orders_order": "{open}",
    "risks_riskcase": "true",
    "risks_escalation": "true",
    "orders_splitgroup": "true",
}
MARKS = "bench_surfaces_marks"


def _saved(table):
    return f"bench_surfaces_saved_{table}"


class Held:
    """The database as it was before a run that writes; ``put_back`` restores it."""

    def __init__(self):
        from django.db import connection

        from orders.choices import TERMINAL_STATES

        finished = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATES))
        with connection.cursor() as cursor:
            for table, which in UPDATED.items():
                which = which.format(open=f"state NOT IN ({finished})")
                cursor.execute(f"DROP TABLE IF EXISTS {_saved(table)}")
                cursor.execute(f"CREATE TABLE {_saved(table)} AS SELECT * FROM {table} WHERE {which}")
            cursor.execute(f"DROP TABLE IF EXISTS {MARKS}")
            cursor.execute(
                f"CREATE TABLE {MARKS} AS "
                + " UNION ALL ".join(
                    f"SELECT '{table}'::text AS name, coalesce(max(id), 0) AS last FROM {table}" for table in APPENDED
                )
            )

    @staticmethod
    def put_back():
        from django.db import connection, transaction

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")  # no foreign-key trigger per row
            cursor.execute(f"SELECT name, last FROM {MARKS}")
            marks = dict(cursor.fetchall())
            for table in APPENDED:
                cursor.execute(f"DELETE FROM {table} WHERE id > %s", [marks[table]])
            for table in UPDATED:
                cursor.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = %s AND column_name <> 'id' ORDER BY ordinal_position",
                    [table],
                )
                columns = [name for (name,) in cursor.fetchall()]
                cursor.execute(
                    f"UPDATE {table} t SET {', '.join(f'{c} = s.{c}' for c in columns)} "
                    f"FROM {_saved(table)} s WHERE t.id = s.id AND ROW(t.*) IS DISTINCT FROM ROW(s.*)"
                )
                cursor.execute(f"DROP TABLE {_saved(table)}")
            cursor.execute(f"DROP TABLE {MARKS}")
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {', '.join(sorted({*APPENDED, *UPDATED}))}")


def put_back_leftovers():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [MARKS])
        leftover = cursor.fetchone()[0] is not None
    if leftover:
        Held.put_back()
        print("put back what a previous run left changed", flush=True)


@contextlib.contextmanager
def held():
    """Everything done inside is undone afterwards (``Held``)."""
    Held()
    try:
        yield
    finally:
        Held.put_back()


# --- the figures -----------------------------------------------------------------


@dataclass
class Series:
    """Timings in milliseconds of one measurement, and what was counted per call."""

    label: str
    timings: list = field(default_factory=list)
    queries: float | None = None
    rows: float | None = None
    load: str = ""

    @property
    def p50(self):
        return statistics.median(self.timings)

    @property
    def p95(self):
        return statistics.quantiles(self.timings, n=100, method="inclusive")[94]

    @property
    def max(self):
        return max(self.timings)


def timed(label, calls, check=None) -> Series:
    """Each call once, timed alone in-process; ``check`` (untimed) raises if
    an answer is wrong and returns the rows it holds."""
    series = Series(label)
    rows = 0
    for call in calls:
        started = time.perf_counter()
        result = call()
        series.timings.append((time.perf_counter() - started) * 1000)
        if check is not None:
            rows += check(result)
    series.rows = rows / len(calls) if check is not None else None
    series.load = load_average()
    return series


def queries_of(call, verbose=False, label=""):
    """The statements one call sends (``CaptureQueriesContext``); printed with ``verbose``."""
    from collections import deque

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Django keeps the last 9,000 statements; a batch of scans sends more.
    connection.queries_log = deque(connection.queries_log, maxlen=1_000_000)
    with CaptureQueriesContext(connection) as captured:
        result = call()
    if verbose:
        print(f"\n{label}: {len(captured)} queries")
        for query in captured:
            sql = re.sub(r"^SELECT .+? FROM", "SELECT … FROM", query["sql"], count=1)
            print(f"  {float(query['time']) * 1000:6.2f} ms  {sql[:300]}")
    return len(captured), result


def print_table(pairs, target):
    """One line per (measurement, floor) pair: p50, p95, queries, the floor's, the ratio of the p95s."""
    header = (
        f"{'measurement':<44} {'runs':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'queries':>7} {'rows':>5}"
        f"   {'floor p50':>9} {'p95':>6} {'queries':>7}   {'p95/floor':>9}   {'target':<14} load average"
    )
    print(f"\n{header}")
    print("-" * len(header))
    for got, base in pairs:
        rows = f"{got.rows:.0f}" if got.rows is not None else ""
        print(
            f"{got.label:<44} {len(got.timings):>5} {got.p50:>7.1f} {got.p95:>7.1f} {got.max:>7.1f}"
            f" {got.queries:>7} {rows:>5}   {base.p50:>9.1f} {base.p95:>6.1f} {base.queries:>7}"
            f"   {got.p95 / base.p95:>9.1f}   {target(got):<14} {got.load}"
        )


def history_now():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT now FROM bench_history")
        return cursor.fetchone()[0]


def utcnow():
    return datetime.datetime.now(datetime.UTC)
