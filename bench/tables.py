"""Benchmark of the order tables' rendering: a provider's worklist (ticks,
expected delivery) and an order list, 50 and 100 rows a page, in en and zh-hans.

    python bench/tables.py [--runs 30] [--orders 150]

Builds the orders through the workflow (``tests/factories.py``) in a
throwaway SQLite database; some share a trade (split groups), some are
blocked, and a sweep opens risk cases on those near their deadline. Each
table is built, paged and rendered with ``{% render_table %}`` and the lists'
template, as the pages do; timed is the render (``before_render``'s two
queries included), with the ``inspect.signature`` calls it made:

- ours: the project's tables (``portal.tables``: each column decided once,
  the rows of ``<tbody>`` printed by the table);
- stock: the same tables with django-tables2's own rows, printed by its own
  template (every cell decided again), the HTML checked to be the same as ours;
- floor: the same page's rows (the same two queries) put into the same cells
  by calling each column's render method directly and printed by a plain
  template loop, with none of django-tables2's bookkeeping.

Then the whole worklist page, as the provider's browser asks for it (the
view, its queries, the page template around the table), ours and stock.

The clock is held still during the renders (the HTML of ours and stock is
compared, and a countdown would otherwise tick between them).
"""

import argparse
import inspect
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.utils.html import format_html

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOOR = """{% for attrs, cells in rows %}<tr class="{{ attrs }}">{% for cell in cells %}<td>{{ cell }}</td>\
{% endfor %}</tr>{% endfor %}"""
# The order table's columns that are more than their value.
CELLS = {
    "select": lambda table, record, value: format_html('<input type="checkbox" name="select" value="{}">', value),
    "order_no": lambda table, record, value: table.render_order_no(record, value),
    "auto_confirm_at": lambda table, record, value: table.render_auto_confirm_at(record, value),
    "expected": lambda table, record, value: table.render_expected(record),
    "state": lambda table, record, value: record.get_state_display(),
    "age": lambda table, record, value: table.render_age(record, value),
    "amount": lambda table, record, value: table.render_amount(value),
}
TABLES = re.compile(r"<table\b.*?</table>", re.S)
TABLE = '{% load render_table from django_tables2 %}{% render_table table "orders/_table.html" %}'


def setup(directory):
    os.environ.update(DATABASE_URL=f"sqlite:///{directory}/bench.sqlite3", VAR_DIR=directory, LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(count):
    """``count`` orders of one merchant at one provider: two in three inspected
    (the to-pack worklist), the rest on their way in or completed; the
    provider's person who sees them."""
    from orders import workflow
    from orders.choices import Action, AppraisalResult, OrderState
    from portal.choices import OrganisationKind
    from risks.sweep import run_sweep
    from tests.factories import OrganisationFactory, UserFactory, advance, new_order

    OrganisationFactory(code="PLATFORM", name="Platform", kind=OrganisationKind.PLATFORM)
    merchant = OrganisationFactory(code="M-1", name="Merchant One", kind=OrganisationKind.MERCHANT)
    provider = OrganisationFactory(code="P-1", name="Provider One", kind=OrganisationKind.PROVIDER)
    staff = workflow.Actor.of_organisation(provider)
    for i in range(count):
        target = OrderState.INSPECTED if i % 3 else (OrderState.INBOUND, OrderState.COMPLETED)[i % 2]
        trade = f"T{i - i % 2:06d}" if i % 10 < 2 else None  # every tenth pair shares a trade
        order = new_order(merchant, provider, trade_no=trade, deadline_in=timedelta(hours=30 + (i * 7) % 200))
        # A split group's second order is not appraised again.
        second = trade and i % 2
        order = advance(order, target, result=AppraisalResult.NOT_REQUIRED if second else AppraisalResult.PASS)
        if i % 7 == 0 and target != OrderState.COMPLETED:
            workflow.perform(order, Action.REPORT_BLOCKED, staff, stage="entry", reason="ERP rejects it")
    run_sweep()
    return UserFactory(username="carol", organisation=provider)


def tables(person, per_page):
    """The two tables as the views make them, paged as a request would."""
    from django.test import RequestFactory

    from orders import worklists
    from orders.models import Order
    from orders.tables import OrderTable
    from portal.paging import paginate

    request = RequestFactory().get("/", {"per_page": per_page})
    request.user = person
    worklist = worklists.BY_SLUG["to-pack"]
    orders = Order.objects.visible_to(person)
    made = {
        "worklist": lambda: OrderTable(
            orders.filter(worklist.condition).for_lists(),
            exclude=["inbound_tracking_no", "waybill_no", "provider"],
            worklist=worklist.slug,
            forecasts=True,
        ),
        "order list": lambda: OrderTable(orders.for_lists(), exclude=["select", "inbound_tracking_no", "waybill_no"]),
    }
    return request, {name: (lambda make=make: paginate(request, make(), per_page)) for name, make in made.items()}


class Signatures:
    """Counts ``inspect.signature`` calls while in use."""

    def __enter__(self):
        self.calls, self.real = 0, inspect.signature

        def counted(*args, **kwargs):
            self.calls += 1
            return self.real(*args, **kwargs)

        inspect.signature = counted
        return self

    def __exit__(self, *exc):
        inspect.signature = self.real


def floor(table, request):
    """The page's rows as a plain loop prints them: the same queries, and each
    cell by a direct call of its column's render method."""
    from django.template import engines

    from portal.formatting import deadline_class

    table.before_render(request)
    columns = [(c.name, c.accessor) for c in table.columns if c.visible]
    rows = []
    for row in table.page.object_list:
        record = row.record
        cells = []
        for name, accessor in columns:
            value = accessor.resolve(record)
            cell = CELLS.get(name)
            cells.append(cell(table, record, value) if cell else "—" if value in (None, "") else value)
        rows.append((deadline_class(record.auto_confirm_at, record.state), cells))
    return engines["django"].from_string(FLOOR).render({"rows": rows})


def stock(make):
    """``make``, with django-tables2's own rows in place of ours."""
    from django_tables2 import rows

    from portal import tables

    def made():
        ours, tables.BoundRows = tables.BoundRows, rows.BoundRows
        try:
            return make()
        finally:
            tables.BoundRows = ours

    return made


def measure(runs, ways):
    """Median ms, signature calls and HTML of each way (``make``, ``render``),
    run in turn so that whatever else the machine does falls on all alike."""
    times = {name: [] for name in ways}
    calls, html = {}, {}
    for _ in range(runs):
        for name, (make, render) in ways.items():
            table = make()
            with Signatures() as counted:
                start = time.perf_counter()
                html[name] = render(table)
                times[name].append((time.perf_counter() - start) * 1000)
            calls[name] = counted.calls
    return {name: (statistics.median(times[name]), calls[name], html[name]) for name in ways}


def page_times(person, runs, per_page):
    """Median ms of the to-pack worklist page, ours and stock, the pages'
    HTML checked to be the same."""
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(person)
    url = reverse("orders:worklist", args=["to-pack"])

    def ours():
        response = client.get(url, {"per_page": per_page})
        assert response.status_code == 200
        # The tables only: the page's CSRF token differs from one response to the next.
        return TABLES.findall(response.content.decode())

    times = {"ours": [], "stock": []}
    html = {}
    for _ in range(runs):
        for name, get in (("ours", ours), ("stock", stock(ours))):
            start = time.perf_counter()
            html[name] = get()
            times[name].append((time.perf_counter() - start) * 1000)
    return statistics.median(times["ours"]), statistics.median(times["stock"]), html["ours"] == html["stock"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--orders", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        setup(directory)
        from django.template import engines
        from django.utils import timezone, translation

        provider = build(args.orders)
        # The clock held still while rendering, so that ours and stock can be
        # compared: a countdown would otherwise tick between them.
        now = timezone.now()
        timezone.now = lambda: now
        template = engines["django"].from_string(TABLE)
        print(f"{args.orders} orders; median of {args.runs} renders; inspect.signature calls per render")
        for language in ("en", "zh-hans"):
            translation.activate(language)
            provider.language = language
            provider.save(update_fields=["language"])
            for per_page in (50, 100):
                request, makers = tables(provider, per_page)

                def table(t, request=request):
                    return template.render({"table": t}, request)

                def plain(t, request=request):
                    return floor(t, request)

                for name, make in makers.items():
                    rows = len(make().page.object_list)
                    ways = {"ours": (make, table), "stock": (stock(make), table), "floor": (make, plain)}
                    got = measure(args.runs, ways)
                    (ms, calls, html), (stock_ms, stock_calls, stock_html) = got["ours"], got["stock"]
                    print(
                        f"{language:7} {name:10} {rows:3} rows: ours {ms:6.1f} ms {calls:3} signatures"
                        f" | stock {stock_ms:6.1f} ms {stock_calls:5} signatures"
                        f" ({'same HTML' if html == stock_html else 'HTML DIFFERS'}) | floor {got['floor'][0]:5.1f} ms"
                    )
                ours_ms, stock_ms, same = page_times(provider, args.runs, per_page)
                print(
                    f"{language:7} worklist page {per_page:3} a page: ours {ours_ms:6.1f} ms"
                    f" | stock {stock_ms:6.1f} ms ({'same tables' if same else 'TABLES DIFFER'})"
                )


if __name__ == "__main__":
    main()
