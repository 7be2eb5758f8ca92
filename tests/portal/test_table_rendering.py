"""The project's tables render what django-tables2 renders, byte for byte,
while deciding once a column what django-tables2 decides for every cell
(``portal.tables``): every list page's tables in both languages, held
against the same page rendered with django-tables2's own rows; the cells a
person reads pinned; and the work per render not growing with its rows."""

import inspect
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.template import engines
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django_tables2 import rows

from orders import workflow
from orders.choices import Action, AppraisalResult, OrderState
from orders.models import Order
from orders.tables import OrderTable
from portal import tables as portal_tables
from portal.paging import paginate
from risks import escalations
from risks.models import Escalation
from risks.sweep import run_sweep
from risks.tables import LossTable
from tests.factories import advance, new_order

S = OrderState
LANGUAGES = ("en", "zh-hans")
TABLE = re.compile(r"<table\b.*?</table>", re.S)


@pytest.fixture
def busy(merchant_org, merchant2_org, provider_org, platform, operator):
    """Orders of every kind a list shows: waiting to be packed, blocked at
    entry (a case and an escalation each), a split group, near their
    deadline (a case), finished, not yet sent; swept once, one escalation
    the operator's own and one another operator's."""
    staff = workflow.Actor.of_organisation(provider_org)
    for i in range(12):
        merchant = merchant2_org if i % 4 == 0 else merchant_org
        target = (S.INSPECTED, S.SIGNED_IN, S.COMPLETED, S.AWAITING_SHIPMENT)[i % 4]
        trade = "T-SPLIT" if i in (1, 5) else None
        order = new_order(merchant, provider_org, trade_no=trade, deadline_in=timedelta(hours=20 + 13 * i))
        second = i == 5
        order = advance(order, target, result=AppraisalResult.NOT_REQUIRED if second else AppraisalResult.PASS)
        if target == S.SIGNED_IN:
            workflow.perform(order, Action.REPORT_BLOCKED, staff, stage="entry", reason="ERP rejects it")
    run_sweep()
    colleague = type(operator).objects.create(username="otto", organisation=platform, language="en")
    first, second = Escalation.objects.order_by("pk")[:2]
    escalations.assign(first, workflow.Actor.of_user(operator), operator)
    escalations.assign(second, workflow.Actor.of_user(operator), colleague)


@pytest.fixture
def still(monkeypatch):
    """One moment for both renders of a page, so countdowns cannot tick between them."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)


def tables_of(client, url, params):
    response = client.get(url, params)
    assert response.status_code == 200
    found = TABLE.findall(response.content.decode())
    assert found, url
    return found


PAGES = [
    ("provider", "orders:worklist", ["to-pack"], {}),
    ("provider", "orders:worklist", ["blocked"], {"sort": "-order_no"}),
    ("provider", "orders:list", [], {"finished": "on", "per_page": 10}),
    ("operator", "orders:list", [], {"finished": "on", "sort": "merchant"}),
    ("merchant", "orders:list", [], {"finished": "on", "sort": "-age"}),
    ("operator", "dashboard", [], {}),
    ("operator", "risks:cases", [], {"sort": "-money_at_risk"}),
    ("merchant", "risks:cases", [], {}),
    ("operator", "risks:escalations", [], {}),
    ("provider", "risks:escalations", [], {"sort": "-id"}),
]


def test_each_list_page_renders_its_table_as_django_tables2_does(client, personas, busy, still, subtests):
    # One test over every page and language, so the busy orders are made once.
    for language in LANGUAGES:
        for persona, name, args, params in PAGES:
            with subtests.test(language=language, persona=persona, page=name, params=params):
                person = personas[persona]
                person.language = language
                person.save(update_fields=["language"])
                client.force_login(person)
                url = reverse(name, args=args)

                ours = tables_of(client, url, params)
                with pytest.MonkeyPatch.context() as patched:
                    patched.setattr(portal_tables, "BoundRows", rows.BoundRows)
                    stock = tables_of(client, url, params)

                assert ours == stock
                assert ours[-1].count("<tr") > 2, "the page must show rows for the check to mean anything"


def rendered(table, request):
    template = engines["django"].from_string(
        '{% load render_table from django_tables2 %}{% render_table table "orders/_table.html" %}'
    )
    return template.render({"table": table}, request)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_losses_of_a_replay_render_as_django_tables2_does(monkeypatch, language):
    deadline = timezone.now()
    losses = [
        {
            "order_no": order_no,
            "outcome": "Auto-refunded",
            "deadline": deadline,
            "money": Decimal("1234.50"),
            "caught_at": deadline - timedelta(hours=30),
            "rule": "Forecast to miss",
            "lead_hours": 30.0,
            "rule_without_forecast": "Not caught",
            "lead_hours_without_forecast": 0.0,
            "caught": True,
            "caught_without_forecast": caught,
        }
        for order_no, caught in (("R-001", False), ("R 002", True))
    ]
    request = RequestFactory().get("/")
    with translation.override(language):
        ours = rendered(LossTable(losses), request)
        monkeypatch.setattr(portal_tables, "BoundRows", rows.BoundRows)
        stock = rendered(LossTable(losses), request)

    assert ours == stock
    # A number that is not plain letters and digits is reversed as ever.
    assert f'href="{reverse("orders:detail", args=["R 002"])}"' in ours


def test_an_order_row_shows_its_link_state_and_badges(busy, provider):
    order = Order.objects.filter(state=S.INSPECTED, flow_blocked=True).first() or Order.objects.first()
    request = RequestFactory().get("/")
    table = paginate(request, OrderTable(Order.objects.filter(pk=order.pk).for_lists(), worklist="to-pack"))

    html = rendered(table, request)

    link = reverse("orders:detail", args=[order.order_no]) + "?worklist=to-pack"
    assert f'<a href="{link}">{order.order_no}</a>' in html
    assert f"<td >{order.get_state_display()}</td>" in html


@pytest.mark.parametrize(
    "value", [7, "7", "0012", "O00000001", "with-dash_and_underscore", "R 002", "单号", "a%b", "ü", True, -3]
)
def test_a_url_from_the_pattern_is_the_url_reverse_gives(db, value):
    for viewname, name in (("orders:detail", "order_no"), ("risks:case", "pk")):
        pattern = portal_tables.UrlPattern(viewname, name)
        try:
            expected = reverse(viewname, kwargs={name: value})
        except NoReverseMatch:
            with pytest.raises(NoReverseMatch):
                pattern(value)
        else:
            assert pattern(value) == expected
            assert pattern(value) == expected  # and again, from the pattern kept


def test_a_value_with_a_slash_is_refused_as_reverse_refuses_it(db):
    with pytest.raises(NoReverseMatch):
        portal_tables.UrlPattern("risks:case", "pk")("1/2")


def signatures_while(monkeypatch, render):
    calls = []
    real = inspect.signature

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counted)
    render()
    monkeypatch.setattr(inspect, "signature", real)
    return len(calls)


def test_a_render_reads_each_callable_once_however_many_rows(busy, monkeypatch):
    request = RequestFactory().get("/")

    def render(per_page):
        table = OrderTable(Order.objects.for_lists(), worklist="to-pack", forecasts=True)
        return lambda: rendered(paginate(request, table, per_page), request)

    few, many = (signatures_while(monkeypatch, render(n)) for n in (2, 10))
    assert Order.objects.count() >= 10
    assert few == many
    assert many <= len(OrderTable.base_columns) + 1  # each column's render method, and the row's class


def stock_and_ours(monkeypatch, render):
    """``render()`` with the project's rows, then with django-tables2's own
    rows and template."""
    ours = render()
    with monkeypatch.context() as patched:
        patched.setattr(portal_tables, "BoundRows", rows.BoundRows)
        stock = render()
    return ours, stock


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_table_with_no_rows_renders_as_django_tables2_does(db, monkeypatch, language):
    request = RequestFactory().get("/", {"sort": "-order_no"})
    with translation.override(language):
        for make in (
            lambda: paginate(request, OrderTable(Order.objects.none().for_lists(), worklist="to-pack")),
            lambda: LossTable([]),
            lambda: LossTable([], empty_text=""),
        ):
            ours, stock = stock_and_ours(monkeypatch, lambda make=make: rendered(make(), request))
            assert ours == stock
            assert "<tbody" in ours


class Odd(portal_tables.Table):
    """What no table of the project has yet: attributes given as callables,
    columns that localize or not, a cell the template would call, text to
    escape, a label the field does not know."""

    order_no = portal_tables.tables.Column(attrs={"td": {"data-no": lambda value: value, "class": "mono"}})
    state = portal_tables.tables.Column()
    amount = portal_tables.tables.Column(localize=True)
    plain = portal_tables.tables.Column(accessor="amount", localize=False, verbose_name="plain")
    item_title = portal_tables.tables.Column()
    merchant = portal_tables.tables.Column(accessor="merchant__name")
    call = portal_tables.tables.Column(empty_values=())

    class Meta:
        attrs = {"td": {"data-cell": "1"}}
        row_attrs = {"data-state": lambda record: record.state, "title": '<"quoted" & more>'}

    def render_call(self, record):
        return lambda: f"<{record.order_no}>"


class Pinned(Odd):
    """The same, with a row pinned above the others."""

    def get_top_pinned_data(self):
        return self.data.data[:1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_table_of_every_kind_of_cell_renders_as_django_tables2_does(monkeypatch, language, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    records = [
        Order(order_no="O<1>", state=S.INSPECTED, amount=Decimal("12345.50"), item_title='Watch "A" & <b>'),
        Order(order_no="O2", state="no-such-state", amount=Decimal("7.25"), item_title=""),
        Order(order_no="O3", state=S.COMPLETED, amount=None, item_title="Ring"),
    ]
    request = RequestFactory().get("/")
    with translation.override(language):
        ours, stock = stock_and_ours(monkeypatch, lambda: rendered(Odd(records), request))
        pinned = stock_and_ours(monkeypatch, lambda: rendered(Pinned(records), request))
    assert pinned[0] == pinned[1]
    assert "pinned-row" in pinned[0]
    assert ours == stock
    assert "no-such-state" in ours and "&lt;O&lt;1&gt;&gt;" in ours


def test_the_rows_of_a_render_are_printed_by_the_table(busy, monkeypatch):
    printed = []
    real = portal_tables.Body.render

    def counted(self, context):
        printed.append(self.table)
        return real(self, context)

    monkeypatch.setattr(portal_tables.Body, "render", counted)
    request = RequestFactory().get("/")
    ours, stock = stock_and_ours(
        monkeypatch, lambda: rendered(paginate(request, OrderTable(Order.objects.for_lists())), request)
    )

    assert ours == stock
    assert len(printed) == 1, "django-tables2's own rows are printed by its own template"


def test_a_render_reads_each_fields_labels_once_however_many_rows(busy, monkeypatch):
    field = Order._meta.get_field("state")
    real = type(field).flatchoices
    read = []

    def counted(self):
        if self is field:
            read.append(translation.get_language())
        return real.fget(self)

    monkeypatch.setattr(type(field), "flatchoices", property(counted))
    request = RequestFactory().get("/")

    def reads(per_page, language):
        read.clear()
        with translation.override(language):
            rendered(paginate(request, OrderTable(Order.objects.for_lists()), per_page), request)
        return len(read)

    assert Order.objects.count() >= 10
    assert [reads(n, language) for language in LANGUAGES for n in (2, 10)] == [1, 1, 1, 1]
