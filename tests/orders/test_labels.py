"""Printable waybill labels: one per ticked order with an online waybill, in scope, with a barcode that scans."""

import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import labels, workflow
from orders.choices import Action, AppraisalResult, OrderState
from tests.barcodes import BarcodeError, decode_code128_svg, decode_code128_widths
from tests.factories import advance, new_order, platform_actor

S = OrderState
SHANGHAI = ZoneInfo("Asia/Shanghai")
BUYER = {
    "buyer_name": "Wang Xiaoming",
    "buyer_phone": "13812345678",
    "buyer_address": "Shanghai Pudong Century Avenue 8",
}


def shipped(merchant_org, provider_org, **fields):
    """An order whose online waybill has been printed: it has a waybill number."""
    return advance(new_order(merchant_org, provider_org, **fields), S.WAYBILL_PRINTED)


def label_page(client, user, *order_nos, status=200):
    client.force_login(user)
    response = client.get(reverse("orders:labels"), {"select": list(order_nos)})
    assert response.status_code == status
    return response.content.decode()


def printed_labels(page) -> dict[str, str]:
    """Each label's HTML by the waybill number it carries, in page order."""
    return {
        re.search(r'data-waybill="([^"]+)"', article).group(1): article
        for article in re.findall(r'<article class="waybill-label".*?</article>', page, re.S)
    }


def label_articles(page) -> list[str]:
    return re.findall(r'<article class="waybill-label".*?</article>', page, re.S)


def refused(page) -> dict[str, str]:
    """The order numbers listed as not printed, with the reason given."""
    items = re.findall(r'<li data-order-no="([^"]+)"><span[^>]*>[^<]*</span>: ([^<]+)</li>', page)
    return dict(items)


def test_a_provider_gets_one_label_per_ticked_order_with_a_barcode_that_scans(
    client, provider, merchant_org, provider_org
):
    orders = [shipped(merchant_org, provider_org, item_title=f"Sneakers {n}", quantity=n) for n in (1, 2, 3)]

    page = label_page(client, provider, *(order.order_no for order in orders))

    articles = label_articles(page)
    assert len(articles) == 3
    for order, article in zip(orders, articles, strict=True):
        assert f'data-waybill="{order.waybill_no}"' in article
        svgs = re.findall(r"<svg\b.*?</svg>", article, re.S)
        assert len(svgs) == 1
        assert decode_code128_svg(svgs[0]) == order.waybill_no
        assert re.search(rf'<div class="label-number">{order.waybill_no}</div>', article)
        assert order.order_no in article and order.trade_no in article
        assert f"{order.item_title} × {order.quantity}" in article
        assert provider_org.name in article  # the sender
        printed_at = order.waybill_printed_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        assert f"<dd>{printed_at}</dd>" in article
    assert 'data-print id="labels-print"' in page
    assert refused(page) == {}


def test_each_barcode_fits_the_label_and_prints_at_whole_printer_dots(client, provider, merchant_org, provider_org):
    order = shipped(merchant_org, provider_org)

    (article,) = label_articles(label_page(client, provider, order.order_no))
    svg = re.search(r"<svg\b.*?</svg>", article, re.S).group(0)

    width_mm = float(re.search(r'width="([0-9.]+)mm"', svg).group(1))
    assert width_mm <= labels.BARCODE_MAX_WIDTH_MM
    bar_widths = {float(w) for w in re.findall(r'<rect[^>]* width="([0-9.]+)mm"', svg)}
    module = min(bar_widths)
    assert module * 8 == pytest.approx(round(module * 8)), "a module is a whole number of 203 dpi dots"


def test_an_order_of_another_provider_is_not_printed_and_not_revealed(
    client, provider, merchant_org, provider_org, provider2_org
):
    mine = shipped(merchant_org, provider_org)
    theirs = shipped(merchant_org, provider2_org, **BUYER)

    page = label_page(client, provider, mine.order_no, theirs.order_no, "O-NO-SUCH-ORDER")

    assert list(printed_labels(page)) == [mine.waybill_no]
    reasons = refused(page)
    # Someone else's order reads exactly like one that does not exist.
    assert reasons == {theirs.order_no: "not found", "O-NO-SUCH-ORDER": "not found"}
    for secret in (theirs.waybill_no, theirs.trade_no, provider2_org.name, BUYER["buyer_name"][:4]):
        assert secret not in page


def test_a_merchant_gets_404_even_for_its_own_orders(client, merchant, merchant_org, provider_org):
    order = shipped(merchant_org, provider_org)

    label_page(client, merchant, order.order_no, status=404)


def test_an_operator_prints_any_providers_label_with_the_buyer_in_full(
    client, operator, merchant_org, provider_org, provider2_org
):
    first = shipped(merchant_org, provider_org, **BUYER)
    second = shipped(merchant_org, provider2_org)

    page = label_page(client, operator, first.order_no, second.order_no)

    assert list(printed_labels(page)) == [first.waybill_no, second.waybill_no]
    assert BUYER["buyer_name"] in page and BUYER["buyer_phone"] in page and BUYER["buyer_address"] in page


def test_an_order_without_a_waybill_is_listed_as_not_printable(client, provider, merchant_org, provider_org):
    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    ready = shipped(merchant_org, provider_org)

    page = label_page(client, provider, packed.order_no, ready.order_no)

    assert list(printed_labels(page)) == [ready.waybill_no]
    assert refused(page) == {packed.order_no: "no online waybill yet"}


def test_a_refunded_order_keeps_its_waybill_but_gets_no_label(client, provider, merchant_org, provider_org):
    order = shipped(merchant_org, provider_org)
    workflow.perform(order, Action.REFUND, platform_actor(), reason="buyer refunded")

    page = label_page(client, provider, order.order_no)

    assert printed_labels(page) == {}
    assert refused(page) == {order.order_no: "refunded: it must not be shipped"}


@pytest.mark.parametrize("select", [[], ["   "], ["O-NO-SUCH-ORDER"]])
def test_a_page_with_nothing_to_print_says_so(client, provider, select):
    page = label_page(client, provider, *select)

    assert label_articles(page) == []
    assert 'id="labels-none"' in page and "No label to print" in page
    assert "data-print" not in page


def test_the_buyer_is_masked_for_the_provider_as_on_a_privacy_waybill(client, provider, merchant_org, provider_org):
    order = shipped(merchant_org, provider_org, **BUYER)

    label = printed_labels(label_page(client, provider, order.order_no))[order.waybill_no]

    assert "W************" in label and "138****5678" in label and "Shangh…" in label
    for value in BUYER.values():
        assert value not in label


def test_a_failed_item_goes_back_to_the_merchant(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org, **BUYER), S.WAYBILL_PRINTED, result=AppraisalResult.FAIL)

    label = printed_labels(label_page(client, provider, order.order_no))[order.waybill_no]

    receiver = re.search(r'<section class="label-party label-receiver">.*?</section>', label, re.S).group(0)
    assert merchant_org.name in receiver
    assert "W*" not in label and "138****" not in label
    assert "Return to merchant" in label


def test_labels_follow_the_ticked_order_without_repeats_and_stop_at_the_limit():
    numbers = [f"O{n:08d}" for n in range(labels.MAX_LABELS + 5)]

    chosen, left_out = labels.ticked([numbers[1], " ", numbers[0], numbers[1], *numbers])

    assert chosen[:2] == [numbers[1], numbers[0]]
    assert len(chosen) == labels.MAX_LABELS and len(set(chosen)) == labels.MAX_LABELS
    assert left_out == 5


def test_the_page_says_how_many_ticked_orders_were_left_out(client, provider):
    numbers = [f"O-NONE-{n}" for n in range(labels.MAX_LABELS + 3)]

    page = label_page(client, provider, *numbers)

    assert "3 more ticked orders were left out" in page
    assert len(refused(page)) == labels.MAX_LABELS


def test_the_label_page_costs_the_same_queries_for_two_labels_or_five(client, provider, merchant_org, provider_org):
    orders = [shipped(merchant_org, provider_org) for _ in range(5)]
    client.force_login(provider)

    def queries(selection):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("orders:labels"), {"select": selection}).status_code == 200
        return len(captured)

    assert queries([o.order_no for o in orders[:2]]) == queries([o.order_no for o in orders])


def test_the_decoder_refuses_a_barcode_with_a_wrong_checksum():
    # Start B, "A" (33), check digit 34 should be (104 + 33) % 103 = 34; 35 is wrong.
    def widths(pattern):
        return [int(w) for w in pattern]

    from tests.barcodes import PATTERNS

    good = widths(PATTERNS[104]) + widths(PATTERNS[33]) + widths(PATTERNS[34]) + widths(PATTERNS[106])
    bad = widths(PATTERNS[104]) + widths(PATTERNS[33]) + widths(PATTERNS[35]) + widths(PATTERNS[106])
    assert decode_code128_widths(good) == "A"
    with pytest.raises(BarcodeError):
        decode_code128_widths(bad)
