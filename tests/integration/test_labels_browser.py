"""Waybill labels in a real browser: on screen at true size, and printed one label per 100 × 150 mm page."""

import re

import pytest

from orders.choices import AppraisalResult, OrderState
from tests.barcodes import decode_code128_svg, decode_png
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

PX_PER_MM = 96 / 25.4
pytestmark = pytest.mark.django_db(transaction=True)

# The `browser` fixture and `log_in` are shared by the browser tests (tests/integration/conftest.py).


def test_a_provider_prints_three_labels_one_per_page(browser, live_server, provider, merchant_org, provider_org):
    orders = [
        advance(new_order(merchant_org, provider_org), OrderState.WAYBILL_PRINTED),
        advance(new_order(merchant_org, provider_org), OrderState.WAYBILL_PRINTED, result=AppraisalResult.FAIL),
        advance(new_order(merchant_org, provider_org, trade_no="T-LABELS"), OrderState.WAYBILL_PRINTED),
    ]
    unshipped = advance(new_order(merchant_org, provider_org), OrderState.PACKED)
    query = "&".join(f"select={o.order_no}" for o in [*orders, unshipped])
    # Two device pixels per CSS pixel is 192 dpi, near a thermal printer's 203:
    # at 96 dpi a 0.375 mm bar is 1.4 pixels, which no screen draws evenly.
    page = log_in(browser, live_server, provider, viewport={"width": 1440, "height": 900}, device_scale_factor=2)

    page.goto(f"{live_server.url}/labels/?{query}")

    found = page.locator(".waybill-label")
    assert found.count() == 3
    for order, label in zip(orders, found.all(), strict=True):
        assert label.is_visible()
        assert label.get_attribute("data-waybill") == order.waybill_no
        assert label.locator(".label-number").inner_text() == order.waybill_no
        # What a scanner would see: the barcode as the browser drew it.
        assert decode_png(label.locator(".label-code").screenshot()) == [order.waybill_no]
        assert decode_code128_svg(label.locator("svg").evaluate("svg => svg.outerHTML")) == order.waybill_no
    assert page.locator("#labels-refused").inner_text().count(unshipped.order_no) == 1
    assert page.locator("nav.navbar").is_visible() and page.locator("#labels-print").is_visible()

    page.emulate_media(media="print")

    for hidden in ("nav.navbar", "#labels-print", "#labels-back", "#labels-refused", ".labels-toolbar"):
        assert page.locator(hidden).is_hidden(), hidden
    for label in found.all():
        box = label.bounding_box()
        assert box["width"] == pytest.approx(100 * PX_PER_MM, abs=1)
        assert box["height"] == pytest.approx(150 * PX_PER_MM, abs=1)
        assert box["x"] == pytest.approx(0, abs=1), "nothing beside a label on its page"
    # The printed document itself: three pages of 100 × 150 mm (283.46 × 425.20 pt).
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    sizes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]", pdf)
    assert len(sizes) == 3
    for width, height in sizes:
        assert float(width) == pytest.approx(283.46, abs=1) and float(height) == pytest.approx(425.2, abs=1)


def test_the_print_button_opens_the_print_dialog(browser, live_server, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), OrderState.WAYBILL_PRINTED)
    page = log_in(browser, live_server, provider)
    page.goto(f"{live_server.url}/labels/?select={order.order_no}")
    # Headless Chromium has no dialog to show; record the call instead.
    page.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")

    page.click("#labels-print")

    assert page.evaluate("() => window.printed") == 1
