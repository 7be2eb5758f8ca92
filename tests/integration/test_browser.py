"""The main journey in a real browser: Debian's chromium driven by Playwright."""

import re

import pytest

from orders.choices import OrderState
from tests.factories import advance, new_order

pytestmark = pytest.mark.django_db(transaction=True)


def count(page, slug):
    return int(page.locator(f'#worklist-tabs a[data-worklist="{slug}"] [data-count]').inner_text())


def test_a_provider_signs_a_parcel_in_and_sees_it_move_to_appraisal(
    browser, live_server, provider, merchant_org, provider_org
):
    parcel = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    other = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    page = browser.new_page()
    page.set_default_timeout(15000)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", provider.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/worklists/pending-sign-in/$"))
    assert count(page, "pending-sign-in") == 2
    assert count(page, "to-appraise") == 0

    page.click(f"text={parcel.order_no}")
    page.wait_for_url(re.compile(rf"/orders/{parcel.order_no}/\?worklist=pending-sign-in$"))
    page.click("#action-sign-in button[type=submit]")
    # Done, and on to the next parcel of the list.
    page.wait_for_url(re.compile(rf"/orders/{other.order_no}/\?worklist=pending-sign-in$"))
    assert parcel.order_no in page.locator(".alert-success").inner_text()
    assert page.locator("#order-state").inner_text() == OrderState.ARRIVED.label

    page.goto(f"{live_server.url}/worklists/to-appraise/")
    assert parcel.order_no in page.locator("#orders").inner_text()
    assert count(page, "pending-sign-in") == 1
    assert count(page, "to-appraise") == 1
    page.click('#worklist-tabs a[data-worklist="pending-sign-in"]')
    assert parcel.order_no not in page.locator("#orders").inner_text()

    parcel.refresh_from_db()
    assert parcel.state == OrderState.SIGNED_IN
