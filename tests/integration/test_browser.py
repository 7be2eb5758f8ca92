"""The main journey in a real browser: Debian's chromium driven by Playwright."""

import os
import re

import pytest
from django.db import connections

from orders.choices import OrderState
from tests.conftest import unavailable
from tests.factories import advance, new_order

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        unavailable(f"the chromium browser at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the test's own
    # database calls happen between browser steps, never inside them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()
        # Database calls made while Playwright's loop ran used a connection
        # of that context; close it so the test database can be dropped.
        connections.close_all()


def count(page, slug):
    return int(page.locator(f'#worklist-tabs a[data-worklist="{slug}"] [data-count]').inner_text())


def test_a_provider_signs_a_parcel_in_and_sees_it_move_to_appraisal(
    browser, live_server, provider, merchant_org, provider_org
):
    parcel = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
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
    page.wait_for_url(re.compile(rf"/orders/{parcel.order_no}/$"))
    page.click("#action-sign-in button[type=submit]")
    page.wait_for_selector(".alert-success")
    assert page.locator("#order-state").inner_text() == OrderState.SIGNED_IN.label

    page.goto(f"{live_server.url}/worklists/to-appraise/")
    assert parcel.order_no in page.locator("#orders").inner_text()
    assert count(page, "pending-sign-in") == 1
    assert count(page, "to-appraise") == 1
    page.click('#worklist-tabs a[data-worklist="pending-sign-in"]')
    assert parcel.order_no not in page.locator("#orders").inner_text()

    parcel.refresh_from_db()
    assert parcel.state == OrderState.SIGNED_IN
