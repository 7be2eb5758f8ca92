"""What the browser tests share: Debian's chromium driven by Playwright, and a login."""

import os
import re

import pytest
from django.db import connections

from tests.conftest import unavailable

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
# How long a page is waited for (an action, an expectation): as long for an
# expectation as for an action, so that a machine busy with other work makes
# a browser test slower, not failed.
WAIT_MS = 15_000


@pytest.fixture(autouse=True)
def _patient_expectations():
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


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


def log_in(browser, live_server, user, landing=r"/", **page_options):
    """A new page with ``user`` logged in through the login form."""
    page = browser.new_page(**page_options)
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(landing))
    return page
