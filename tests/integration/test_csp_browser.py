"""The portal's pages under its Content-Security-Policy in a real browser: every
main page of every role, the scan station and the waybill labels load with no
console error and no policy violation."""

import json

import pytest

from orders.choices import OrderState
from risks.sweep import run_sweep
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

# A script in the page records violations from its very start, before any
# listener a test could add; the console catches what the browser reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def watched(page):
    errors = []
    page.add_init_script(RECORD_VIOLATIONS)

    def console(message):
        # The browser asks for /favicon.ico on its own; the portal has none and that is no page's fault.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')}:{message.location.get('lineNumber')})")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def visit(page, errors, url):
    """Open ``url``, let htmx finish its first requests, and return what went wrong."""
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert "default-src 'self'" in response.headers.get("content-security-policy", ""), url
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__violations")
    found = [*errors, *violations]
    errors.clear()
    return found


@pytest.fixture
def world(merchant_org, provider_org, platform):
    orders = {
        "arrived": advance(new_order(merchant_org, provider_org), OrderState.ARRIVED),
        "printed": advance(new_order(merchant_org, provider_org), OrderState.WAYBILL_PRINTED),
        "split": advance(new_order(merchant_org, provider_org, trade_no="T-CSP", sku="SKU-C"), OrderState.SIGNED_IN),
    }
    advance(new_order(merchant_org, provider_org, trade_no="T-CSP", sku="SKU-C"), OrderState.SIGNED_IN)
    run_sweep()
    return orders


PAGES = {
    "merchant": ["/orders/", "/orders/{arrived}/", "/cases/", "/escalations/", "/inbox/", "/password/change/"],
    "provider": [
        "/worklists/pending-sign-in/",
        "/worklists/pending-sign-in/scan/",
        "/orders/",
        "/orders/{printed}/",
        "/labels/?select={printed}",
        "/cases/",
        "/settings/api-keys/",
        "/settings/notifications/",
    ],
    "operator": ["/operator/", "/orders/", "/orders/{split}/", "/cases/", "/escalations/", "/api/docs/"],
}


@pytest.mark.parametrize("role", list(PAGES))
def test_the_main_pages_of_each_role_pass_the_policy(browser, live_server, personas, world, role):
    page = log_in(browser, live_server, personas[role])
    errors = watched(page)

    problems = {}
    for path in PAGES[role]:
        url = live_server.url + path.format(**{name: order.order_no for name, order in world.items()})
        found = visit(page, errors, url)
        if found:
            problems[path] = found

    assert problems == {}, json.dumps(problems, indent=1)


def test_the_login_and_password_reset_pages_pass_the_policy(browser, live_server, db):
    page = browser.new_page()
    page.set_default_timeout(15000)
    errors = watched(page)

    assert visit(page, errors, f"{live_server.url}/login/") == []
    assert visit(page, errors, f"{live_server.url}/password/reset/") == []
