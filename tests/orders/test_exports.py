"""Order lists as files: exactly the filtered list of the page, in the
reader's language, in a form spreadsheets open as they should (CSV with a
BOM, XLSX with numbers and times as such), streamed, in a few queries."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext

from orders import worklists
from orders.choices import OrderState
from orders.exports import COLUMNS
from orders.models import Order
from portal.exports import FORMATS
from tests.downloads import column, csv_rows, sheet, sheet_rows
from tests.factories import advance, new_order
from tests.orders.test_lists import make

S = OrderState
FORMULA = '=HYPERLINK("http://x","y")'


def header(name: str) -> str:
    """The header of the order field ``name`` in the active language."""
    return str(capfirst(Order._meta.get_field(name).verbose_name))


def export(client, url, fmt="csv", **filters):
    response = client.get(url, {**filters, "export": fmt})
    assert response.status_code == 200
    return response


def rows_of(response, fmt):
    return csv_rows(response) if fmt == "csv" else sheet_rows(response)


@pytest.fixture
def chinese(merchant):
    merchant.language = "zh-hans"
    merchant.save(update_fields=["language"])
    return merchant


def test_a_chinese_readers_csv_starts_with_a_bom_and_names_states_in_chinese(
    client, chinese, merchant_org, provider_org
):
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(chinese)

    rows = csv_rows(export(client, reverse("orders:list")))

    with translation.override("zh-hans"):
        assert rows[0] == [str(c.header) for c in COLUMNS]
        state, blocked = header("state"), header("flow_blocked")
        expected = {state: str(S.ARRIVED.label), blocked: gettext("No")}
    assert "订单号" in rows[0] and "金额（元）" in rows[0]
    assert [row[0] for row in rows[1:]] == [arrived.order_no]
    assert {name: column(rows, name)[0] for name in expected} == expected
    assert column(rows, state) == ["待签收"]
    assert "arrived" not in rows[1] and "False" not in rows[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_english_reader_gets_english_headers_and_words(client, merchant, merchant_org, provider_org, fmt):
    advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    client.force_login(merchant)

    rows = rows_of(export(client, reverse("orders:list"), fmt), fmt)

    assert rows[0][:3] == ["Order number", "Trade number", "Merchant"]
    assert column(rows, "State") == ["Signed in by the provider"]
    assert column(rows, "Flow blocked") == ["No"]
    assert column(rows, "Merchant") == [merchant_org.name]
    assert column(rows, "Merchant code") == [merchant_org.code]
    assert column(rows, "Provider") == [provider_org.name]


def test_times_are_shanghai_wall_clock_and_money_plain_in_csv(client, operator, merchant_org, provider_org):
    new_order(merchant_org, provider_org, paid_at=datetime(2026, 1, 31, 17, 30, 5, tzinfo=UTC))
    client.force_login(operator)

    rows = csv_rows(export(client, reverse("orders:list")))

    assert column(rows, header("paid_at")) == ["2026-02-01 01:30:05"]
    assert column(rows, header("amount")) == ["1234.50"]
    assert column(rows, header("quantity")) == ["1"]


def test_in_xlsx_money_is_a_number_and_times_are_dates_in_shanghai(client, operator, merchant_org, provider_org):
    new_order(merchant_org, provider_org, paid_at=datetime(2026, 1, 31, 17, 30, 5, tzinfo=UTC))
    client.force_login(operator)

    found = sheet(export(client, reverse("orders:list"), "xlsx"))

    names = [cell.value for cell in found[1]]
    amount = found.cell(row=2, column=names.index(header("amount")) + 1)
    paid = found.cell(row=2, column=names.index(header("paid_at")) + 1)
    quantity = found.cell(row=2, column=names.index(header("quantity")) + 1)
    assert (amount.data_type, amount.value, amount.number_format) == ("n", Decimal("1234.50"), "#,##0.00")
    assert (quantity.data_type, quantity.value) == ("n", 1)
    assert paid.is_date and paid.value == datetime(2026, 2, 1, 1, 30, 5)
    assert paid.number_format == "yyyy-mm-dd hh:mm:ss"
    # The header row is bold and stays in view.
    assert all(cell.font.b for cell in found[1]) and found.freeze_panes == "A2"


def test_a_formula_in_a_title_is_text_in_both_formats(client, operator, merchant_org, provider_org):
    new_order(merchant_org, provider_org, item_title=FORMULA)
    client.force_login(operator)
    url = reverse("orders:list")

    assert column(csv_rows(export(client, url)), header("item_title")) == ["'" + FORMULA]
    found = sheet(export(client, url, "xlsx"))
    names = [cell.value for cell in found[1]]
    title = found.cell(row=2, column=names.index(header("item_title")) + 1)
    assert (title.data_type, title.value) == ("s", FORMULA)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_worklist_exports_exactly_its_filtered_rows(client, provider, merchant_org, merchant2_org, provider_org, fmt):
    wanted = make(merchant_org, provider_org, "to-appraise")
    make(merchant2_org, provider_org, "to-appraise")  # filtered out
    make(merchant_org, provider_org, "to-pack")  # another list
    client.force_login(provider)

    response = export(client, reverse("orders:worklist", args=["to-appraise"]), fmt, merchant=merchant_org.code)

    assert response["Content-Disposition"] == (
        f"attachment; filename=\"to-appraise.{fmt}\"; filename*=UTF-8''to-appraise.{fmt}"
    )
    assert column(rows_of(response, fmt), header("order_no")) == [wanted.order_no]


@pytest.mark.parametrize("slug", [w.slug for w in worklists.WORKLISTS])
def test_each_worklist_exports_its_own_orders(client, provider, merchant_org, provider_org, slug):
    mine = make(merchant_org, provider_org, slug)
    other = make(merchant_org, provider_org, "to-pack" if slug != "to-pack" else "to-appraise")
    client.force_login(provider)

    numbers = column(csv_rows(export(client, reverse("orders:worklist", args=[slug]))), header("order_no"))

    assert mine.order_no in numbers and other.order_no not in numbers


def test_the_order_list_exports_what_its_filters_show(client, operator, merchant_org, provider_org):
    signed = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    fresh = new_order(merchant_org, provider_org)
    done = advance(new_order(merchant_org, provider_org), S.COMPLETED)
    client.force_login(operator)
    url = reverse("orders:list")

    def numbers(**filters):
        return sorted(column(csv_rows(export(client, url, **filters)), header("order_no")))

    # As on the page: open orders unless finished ones are asked for.
    assert numbers() == sorted([signed.order_no, fresh.order_no])
    assert numbers(finished="on") == sorted([signed.order_no, fresh.order_no, done.order_no])
    assert numbers(state=S.SIGNED_IN) == [signed.order_no]
    assert numbers(q=fresh.order_no) == [fresh.order_no]


@pytest.mark.parametrize(
    ("persona", "outside"),
    [("merchant", "merchant2"), ("merchant2", "merchant"), ("provider", "provider2"), ("provider2", "provider")],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_another_organisations_orders_are_never_in_the_file(
    client, personas, merchant_org, merchant2_org, provider_org, provider2_org, persona, outside, fmt
):
    orders = {
        "merchant": new_order(merchant_org, provider_org),
        "merchant2": new_order(merchant2_org, provider2_org),
        "provider": new_order(merchant2_org, provider_org),
        "provider2": new_order(merchant_org, provider2_org),
    }
    client.force_login(personas[persona])

    numbers = column(rows_of(export(client, reverse("orders:list"), fmt, finished="on"), fmt), header("order_no"))

    assert orders[persona].order_no in numbers
    assert orders[outside].order_no not in numbers
    scope = Order.objects.visible_to(personas[persona])
    assert sorted(numbers) == sorted(scope.values_list("order_no", flat=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_runs_the_same_few_queries_however_many_orders(
    client, operator, merchant_org, provider_org, django_assert_max_num_queries, monkeypatch, fmt
):
    # Small chunks, so that the orders are read in several.
    monkeypatch.setattr("orders.exports.CHUNK_SIZE", 3)
    client.force_login(operator)
    url = reverse("orders:list")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            rows = rows_of(export(client, url, fmt), fmt)
        return len(captured), len(rows) - 1

    for _ in range(2):
        new_order(merchant_org, provider_org)
    few = queries()
    for _ in range(10):
        new_order(merchant_org, provider_org)
    many = queries()

    assert (few[1], many[1]) == (2, 12)
    assert few[0] == many[0]
    with django_assert_max_num_queries(3):  # the session, the person, the orders
        rows_of(export(client, url, fmt), fmt)


@pytest.mark.parametrize("value", ["pdf", "", "CSV", "csv ", "xlsx,csv", "../csv", "%00"])
def test_any_other_export_value_shows_the_page(client, provider, merchant_org, provider_org, value):
    make(merchant_org, provider_org, "to-appraise")
    client.force_login(provider)
    for url in (reverse("orders:list"), reverse("orders:worklist", args=["to-appraise"])):
        response = client.get(url, {"export": value})
        assert response.status_code == 200, (url, value)
        assert response["Content-Type"].startswith("text/html") and not response.streaming


def test_the_export_links_keep_the_lists_filter(client, provider, merchant_org, provider_org):
    make(merchant_org, provider_org, "to-appraise")
    client.force_login(provider)

    page = client.get(reverse("orders:worklist", args=["to-appraise"]), {"merchant": merchant_org.code, "page": 1})

    html = page.content.decode()
    for fmt in FORMATS:
        assert f'href="?merchant={merchant_org.code}&amp;export={fmt}"' in html


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_file_lists_the_orders_as_the_page_sorts_them(client, operator, merchant_org, provider_org, fmt):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    # Created in one order, due in another, signed in in a third.
    orders = [new_order(merchant_org, provider_org, auto_confirm_at=now + timedelta(days=d)) for d in (3, 1, 2)]
    for order, hours in zip(orders, (5, 9, 1), strict=True):
        Order.objects.filter(pk=order.pk).update(state_changed_at=now - timedelta(hours=hours))
    client.force_login(operator)
    url = reverse("orders:list")

    def listed(**params):
        page = client.get(url, params).context["table"].paginated_rows
        return [row.record.order_no for row in page]

    def exported(**params):
        return column(rows_of(export(client, url, fmt, **params), fmt), header("order_no"))

    by_deadline = [orders[1].order_no, orders[2].order_no, orders[0].order_no]
    assert listed() == exported() == by_deadline  # the page's own order when none is asked for
    assert listed(sort="-auto_confirm_at") == exported(sort="-auto_confirm_at") == by_deadline[::-1]
    longest_in_state = [orders[1].order_no, orders[0].order_no, orders[2].order_no]
    assert listed(sort="age") == exported(sort="age") == longest_in_state
    assert exported(sort="no-such-column") == by_deadline  # an unknown sort is ignored, as on the page


def test_the_export_links_keep_the_lists_sort(client, provider, merchant_org, provider_org):
    make(merchant_org, provider_org, "to-appraise")
    client.force_login(provider)

    page = client.get(reverse("orders:worklist", args=["to-appraise"]), {"sort": "-auto_confirm_at", "page": 1})

    html = page.content.decode()
    for fmt in FORMATS:
        assert f'href="?sort=-auto_confirm_at&amp;export={fmt}"' in html
