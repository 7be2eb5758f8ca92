"""Finding an order by its numbers: case, spaces, suffixes, scope and the indexes behind it."""

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.urls import reverse

from orders.choices import OrderState
from orders.filtersets import exact, search
from orders.models import Order
from tests.factories import advance, new_order

NUMBERS = ("order_no", "trade_no", "inbound_tracking_no", "waybill_no")
# The indexes orders/migrations/0003 creates on PostgreSQL, one per number.
SUFFIX_INDEXES = ("order_no_suffix", "order_trade_no_suffix", "order_inbound_no_suffix", "order_waybill_suffix")


def numbered(merchant_org, provider_org, tag, **numbers):
    """An order whose four numbers are all known to the test (none from the factory's shared counter)."""
    fields = {
        "order_no": f"PO-{tag}",
        "trade_no": f"TR-{tag}",
        "inbound_tracking_no": f"SF-{tag}",
        "waybill_no": f"WB-{tag}",
    }
    fields.update(numbers)
    return new_order(merchant_org, provider_org, **fields)


def found(value, queryset=None, *, how=search):
    return set(how(Order.objects.all() if queryset is None else queryset, value).values_list("order_no", flat=True))


@pytest.mark.parametrize("column", NUMBERS)
def test_each_number_is_found_by_its_last_characters_whatever_the_case_and_spaces(column, merchant_org, provider_org):
    order = numbered(merchant_org, provider_org, "plain", **{column: "Xk-55-Ab0417"})
    numbered(merchant_org, provider_org, "other")
    for value in ("Xk-55-Ab0417", "xk-55-ab0417", "XK-55-AB0417", "  ab0417\t", "0417", "B0417", "-55-ab0417"):
        assert found(value) == {order.order_no}, value


@pytest.mark.parametrize("column", NUMBERS)
def test_a_scanned_number_is_found_whole_whatever_the_case_and_spaces(column, merchant_org, provider_org):
    order = numbered(merchant_org, provider_org, "plain", **{column: "Xk-55-Ab0417"})
    assert found(" xK-55-aB0417 ", how=exact) == {order.order_no}
    assert found("55-Ab0417", how=exact) == set()
    assert found("Xk-55-Ab041", how=exact) == set()


def test_a_suffix_finds_every_order_ending_in_it_and_no_other(merchant_org, provider_org):
    by_tracking = numbered(merchant_org, provider_org, "a", inbound_tracking_no="SF0000000032")
    by_waybill = numbered(merchant_org, provider_org, "b", waybill_no="axj77100032")
    by_order_no = numbered(merchant_org, provider_org, "c", order_no="PO-77-0032")
    by_trade_no = numbered(merchant_org, provider_org, "d", trade_no="TR-77-0032")
    numbered(merchant_org, provider_org, "e", waybill_no="AXJ00320001", inbound_tracking_no="SF0032X")
    assert found("0032") == {by_tracking.order_no, by_waybill.order_no, by_order_no.order_no, by_trade_no.order_no}
    assert found("sf0000000032") == {by_tracking.order_no}
    assert found("J77100032") == {by_waybill.order_no}


def test_the_beginning_or_middle_of_a_number_finds_nothing(merchant_org, provider_org):
    numbered(merchant_org, provider_org, "a", inbound_tracking_no="SF0000000032")
    for value in ("SF00", "sf000000", "00000003", "F0000000032X"):
        assert found(value) == set(), value


def test_fewer_than_four_characters_find_only_a_whole_number(merchant_org, provider_org):
    whole = numbered(merchant_org, provider_org, "a", waybill_no="a12")
    numbered(merchant_org, provider_org, "b", waybill_no="XA12", inbound_tracking_no="SFA12")
    assert found(" A12 ") == {whole.order_no}
    assert found("12") == set()
    assert found("XA12") != {whole.order_no}  # four characters: a suffix again
    assert whole.order_no not in found("XA12")


def test_like_wildcards_in_the_value_are_taken_literally(merchant_org, provider_org):
    percent = numbered(merchant_org, provider_org, "a", waybill_no="XY%1234")
    numbered(merchant_org, provider_org, "b", waybill_no="XY51234", inbound_tracking_no="SF-_9999")
    numbered(merchant_org, provider_org, "c", waybill_no="XY661234")
    assert found("%1234") == {percent.order_no}
    assert found("_1234") == set()
    assert found("%234", how=exact) == set()
    assert found("\\1234") == set()


def test_an_empty_search_leaves_the_list_alone_and_an_empty_scan_finds_nothing(merchant_org, provider_org):
    order = numbered(merchant_org, provider_org, "a")
    assert found("  ") == {order.order_no}
    assert found("  ", how=exact) == set()


def test_search_keeps_the_scope_it_is_given(merchant, merchant_org, merchant2_org, provider_org, provider2_org):
    mine = numbered(merchant_org, provider_org, "a", waybill_no="AXJ0000000001774411")
    numbered(merchant2_org, provider2_org, "b", waybill_no="AXJ0000000002774411")
    scoped = Order.objects.visible_to(merchant)
    assert found("774411", scoped) == {mine.order_no}
    assert found("axj0000000002774411", scoped, how=exact) == set()


@pytest.fixture
def twins(merchant_org, merchant2_org, provider_org, provider2_org):
    """Two orders of different merchants and providers whose waybills end alike."""
    first = advance(
        new_order(merchant_org, provider_org, order_no="PO-TWIN-1", trade_no="TR-TWIN-1"), OrderState.PACKED
    )
    second = advance(
        new_order(merchant2_org, provider2_org, order_no="PO-TWIN-2", trade_no="TR-TWIN-2"), OrderState.PACKED
    )
    # Printed waybills end in six random digits; give both the same tail.
    Order.objects.filter(pk=first.pk).update(waybill_no="AXJ0000000001774411")
    Order.objects.filter(pk=second.pk).update(waybill_no="AXJ0000000002774411")
    return first, second


@pytest.mark.parametrize(
    ("persona", "which"),
    [("provider", 0), ("merchant", 0), ("provider2", 1), ("merchant2", 1)],
)
def test_header_search_by_a_suffix_goes_to_the_one_order_in_scope(client, personas, twins, persona, which):
    client.force_login(personas[persona])
    response = client.get(reverse("orders:search"), {"q": " 774411 "})
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:detail", args=[twins[which].order_no])


def test_header_search_finds_nothing_outside_scope(client, outsider, twins):
    client.force_login(outsider)
    response = client.get(reverse("orders:search"), {"q": "774411"})
    assert response["Location"] == reverse("home")
    html = client.get(response["Location"], follow=True).content.decode()
    assert "No order in your scope matches" in html
    assert "PO-TWIN" not in html


def test_header_search_by_a_tracking_number_in_lower_case_goes_to_the_order(client, provider, twins):
    client.force_login(provider)
    response = client.get(reverse("orders:search"), {"q": twins[0].inbound_tracking_no.lower()})
    assert response["Location"] == reverse("orders:detail", args=[twins[0].order_no])


@pytest.mark.parametrize(("persona", "shown", "hidden"), [("merchant", 0, 1), ("provider2", 1, 0)])
def test_list_search_shows_only_orders_in_scope(client, personas, twins, persona, shown, hidden):
    client.force_login(personas[persona])
    response = client.get(reverse("orders:list"), {"q": "774411"})
    html = response.content.decode()
    assert response.status_code == 200
    assert twins[shown].order_no in html
    assert twins[hidden].order_no not in html


def test_several_matches_are_listed_under_the_value_typed(client, provider, merchant_org, provider_org):
    first = numbered(merchant_org, provider_org, "a", inbound_tracking_no="TR-A+B12")
    second = numbered(merchant_org, provider_org, "b", inbound_tracking_no="TR-B+B12")
    client.force_login(provider)
    response = client.get(reverse("orders:search"), {"q": "+b12"})
    assert response["Location"] == f"{reverse('orders:list')}?{urlencode({'q': '+b12'})}"
    html = client.get(response["Location"]).content.decode()
    assert first.order_no in html
    assert second.order_no in html


def plan(queryset):
    """PostgreSQL's plan for ``queryset`` with sequential scans priced out, as
    they are on a large table: an index the query can use is then used."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    return queryset.explain()


@pytest.mark.postgres
@pytest.mark.parametrize(("how", "value"), [(search, "sf0000000032"), (search, "0032"), (exact, " sf0000000032 ")])
def test_search_and_scan_read_one_suffix_index_per_number(postgres, merchant_org, provider_org, how, value):
    numbered(merchant_org, provider_org, "a", inbound_tracking_no="SF0000000032")
    text = plan(how(Order.objects.all(), value))
    assert "BitmapOr" in text
    for index in SUFFIX_INDEXES:
        assert f"Bitmap Index Scan on {index}" in text, text
    assert "Seq Scan" not in text
