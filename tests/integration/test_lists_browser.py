"""A provider's worklist as a person uses it, in chromium: filter by merchant
from the select, sort by deadline, tick rows and take the step, and see the
list and its tab counts follow the work at the next live refresh, in both
languages and on a desk screen and a phone."""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from orders.choices import OrderState
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)
S = OrderState
ROWS = "#orders tbody tr"


def count(page, slug):
    return page.locator(f'#worklist-tabs a[data-worklist="{slug}"] [data-count]')


def inspected(merchant, provider, hours):
    return advance(new_order(merchant, provider, deadline_in=timedelta(hours=hours)), S.INSPECTED)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_provider_filters_ticks_packs_and_sees_the_list_follow(
    browser, live_server, settings, tmp_path, provider, merchant_org, merchant2_org, provider_org, language
):
    settings.LIST_REFRESH_SECONDS = 2
    provider.language = language
    provider.save(update_fields=["language"])
    first, second, third = (inspected(merchant_org, provider_org, hours) for hours in (30, 50, 70))
    theirs = inspected(merchant2_org, provider_org, 40)
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page = log_in(browser, live_server, provider, r"/worklists/", viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/worklists/to-pack/")
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator(ROWS)).to_have_count(4)
    # No stored code reaches the person: states and choices are in words.
    assert "inspected" not in page.locator("#orders").inner_text()

    # The merchant filter, from its select: the list narrows in place.
    page.select_option("#id_merchant", merchant_org.code)
    expect(page.locator(ROWS)).to_have_count(3)
    expect(page.locator("#orders")).not_to_contain_text(theirs.order_no)
    # Nearest deadline first; the header turns it round.
    expect(page.locator(ROWS).first).to_contain_text(first.order_no)
    page.locator("#orders thead a").filter(has_text=re.compile("Deadline|自动确认收货时间")).click()
    expect(page.locator(ROWS).first).to_contain_text(third.order_no)
    page.screenshot(path=shots / f"worklist-{language}-1440.png", full_page=True)

    # Two ticked, one step for both.
    page.check(f'input[name="select"][value="{first.order_no}"]')
    page.check(f'input[name="select"][value="{third.order_no}"]')
    expect(page.locator("[data-selected-count]")).to_have_text("2")
    page.click("#bulk-submit")
    page.wait_for_url(re.compile(r"/worklists/to-pack/"))
    expect(page.locator(".alert-success")).to_be_visible()
    expect(page.locator(ROWS)).to_have_count(2)
    expect(count(page, "to-pack")).to_have_text("2")
    expect(count(page, "to-ship")).to_have_text("2")

    # New work arrives while the page is open: the next refresh shows it,
    # and the tabs' counts with it.
    late = inspected(merchant2_org, provider_org, 20)
    expect(page.locator("#orders")).to_contain_text(late.order_no, timeout=10000)
    expect(page.locator(ROWS)).to_have_count(3)
    expect(count(page, "to-pack")).to_have_text("3")

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=shots / f"worklist-{language}-390.png", full_page=True)
    # On a phone the filters fold away behind their button; the table scrolls in its box.
    expect(page.locator("#list-filters")).to_be_hidden()
    page.locator('[data-bs-target="#list-filters"]').click()
    expect(page.locator("#id_merchant")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for order in (first, third):
        order.refresh_from_db()
        assert order.state == S.PACKED
    second.refresh_from_db()
    assert second.state == S.INSPECTED


@pytest.mark.parametrize(
    ("language", "refused", "label"),
    [("zh-hans", "以下筛选条件无效", "结束日期（起）"), ("en", "Refused, so not applied", "Finished on or after")],
)
def test_a_day_mistyped_into_a_filter_is_refused_with_its_reason(
    browser, live_server, tmp_path, operator, merchant_org, provider_org, language, refused, label
):
    operator.language = language
    operator.save(update_fields=["language"])
    order = new_order(merchant_org, provider_org)
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page = log_in(browser, live_server, operator, r"/operator/", viewport={"width": 1440, "height": 900})
    # As the dashboard links it: orders finished since a day, the day in its field.
    page.goto(f"{live_server.url}/orders/?ended_from=2026-11-01")
    field = page.locator("#id_ended_from")
    expect(field).to_have_value("2026-11-01")

    # The day changed as a person types it, to one that does not exist, and sent with Enter.
    field.fill("")
    field.press_sequentially("2026-02-30")
    field.press("Enter")
    page.wait_for_url(re.compile(r"ended_from=2026-02-30"))
    notice = page.locator("#filter-refused")
    expect(notice).to_contain_text(refused)
    expect(notice).to_contain_text(label)
    # Not applied: the open orders are listed as without it.
    expect(page.locator("#orders")).to_contain_text(order.order_no)
    page.screenshot(path=shots / f"filter-refused-{language}-1440.png", full_page=True)

    # Opened from its address, the field itself says why as well.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#filter-refused")).to_contain_text(label)
    # On a phone the filters stay open while one is set, so the reason is in sight.
    expect(page.locator("#list-filters")).to_be_visible()
    expect(page.locator("#id_ended_from-error")).to_be_visible()
    page.screenshot(path=shots / f"filter-refused-{language}-390.png", full_page=True)
