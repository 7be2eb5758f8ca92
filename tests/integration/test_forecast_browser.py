"""The expected delivery in a real browser: a provider finds the order forecast
to miss its deadline on a worklist, opens it and reads why."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.integration.conftest import log_in
from tests.orders.test_forecast_views import LEFT_FROM_SIGN_IN, figures, shanghai, signed_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_provider_sees_the_late_order_marked_and_reads_its_expected_delivery(
    browser, live_server, provider, merchant_org, provider_org
):
    since = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    figures(provider_org)
    late = signed_in(merchant_org, provider_org, since, LEFT_FROM_SIGN_IN - timedelta(hours=6))
    on_time = signed_in(merchant_org, provider_org, since, LEFT_FROM_SIGN_IN + timedelta(hours=12))
    expected = since + LEFT_FROM_SIGN_IN

    page = log_in(browser, live_server, provider, r"/worklists/", viewport={"width": 1440, "height": 900})
    page.click('#worklist-tabs a[data-worklist="to-appraise"]')
    page.wait_for_url(re.compile(r"/worklists/to-appraise/$"))
    expect(page.locator("#orders thead")).to_contain_text("Expected delivery")
    late_row = page.locator("#orders tbody tr", has_text=late.order_no)
    on_time_row = page.locator("#orders tbody tr", has_text=on_time.order_no)
    for row in (late_row, on_time_row):
        expect(row.locator("time", has_text=shanghai(expected, "%m-%d %H:%M"))).to_have_count(1)
    expect(late_row.locator("[data-forecast-late]")).to_have_text("Forecast to miss")
    expect(on_time_row.locator("[data-forecast-late]")).to_have_count(0)

    late_row.locator(f'a[href^="/orders/{late.order_no}/"]').click()
    page.wait_for_url(re.compile(rf"/orders/{late.order_no}/\?worklist=to-appraise$"))
    line = page.locator("#expected-delivery")
    expect(line).to_have_attribute("data-forecast", "late")
    expect(line).to_contain_text(f"expected delivery: {shanghai(expected, '%Y-%m-%d %H:%M')}")
    expect(line.locator("#expected-against-deadline")).to_have_text("6h 0m after the deadline — forecast to miss")
    expect(line.locator("#expected-against-deadline")).to_have_class(re.compile(r"\btext-danger\b"))
    expect(line.locator("#expected-basis")).to_have_text("9 in 10 of this provider's recent orders (35) took no longer")

    # On a phone the page keeps its width, and the badge stays on screen
    # beside the order number and its deadline, without scrolling the table.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/worklists/to-appraise/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    badge = page.locator("#orders tbody tr", has_text=late.order_no).locator("[data-forecast-late]")
    box = badge.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
