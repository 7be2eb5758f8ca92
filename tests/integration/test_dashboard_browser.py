"""The dashboard in a real browser, in both languages: every chart is drawn
with no console error (the Content-Security-Policy allows no inline script
or style), and a bar of a chart, or a number of its table, opens the
filtered list behind it."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from orders.choices import OrderState
from portal import dashboard
from risks.sweep import run_sweep
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

# Paints seen on a canvas: how many pixels are not transparent.
INKED = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i]) { inked++; } }
  return inked;
}"""
# Where a chart drew one of its bars: the bar's middle, in CSS pixels from the canvas's corner.
BAR_CENTRE = """(canvas, [set, index]) => {
  const bar = Chart.getChart(canvas).getDatasetMeta(set).data[index];
  return {x: bar.x, y: (bar.y + bar.base) / 2};
}"""


def watched(page):
    errors = []

    def console(message):
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def orders_at_risk(merchant_org, provider_org, platform):
    for hours in (6, 20, 30, 100):
        advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=hours)), OrderState.SIGNED_IN)
    run_sweep()
    # What beat counts every minute for the charts, counted now.
    dashboard.refresh_tallies()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_chart_is_drawn_without_an_error(browser, live_server, orders_at_risk, operator, language):
    operator.language = language
    operator.save(update_fields=["language"])
    page = log_in(browser, live_server, operator, r"/operator/$", viewport={"width": 1440, "height": 900})
    errors = watched(page)
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", language)
    for slug in dashboard.CHARTS:
        canvas = page.locator(f'#chart-{slug} canvas[data-chart="chart-{slug}-data"]')
        expect(canvas).to_have_attribute("data-drawn", "true")
        assert canvas.evaluate(INKED) > 500, slug
    assert errors == []


def test_clicking_a_bar_opens_the_orders_behind_it(browser, live_server, orders_at_risk, provider):
    page = log_in(browser, live_server, provider, r"/worklists/", viewport={"width": 390, "height": 844})
    errors = watched(page)
    expect(page.locator('nav a[href="/dashboard/"]')).to_have_count(1)
    page.goto(f"{live_server.url}/dashboard/")
    canvas = page.locator('canvas[data-chart="chart-money-at-risk-data"]')
    expect(canvas).to_have_attribute("data-drawn", "true")
    canvas.scroll_into_view_if_needed()
    # The band of 12 h or less holds the order due in 6 hours: its bar is the second (index 1).
    centre = canvas.evaluate(BAR_CENTRE, [0, 1])
    canvas.click(position={"x": centre["x"], "y": centre["y"]})
    expect(page).to_have_url(re.compile(r"/orders/\?at_risk=12$"))
    expect(page.locator("#orders tbody tr")).to_have_count(1)
    assert errors == []


def test_a_number_in_a_charts_table_opens_its_list(browser, live_server, orders_at_risk, merchant):
    page = log_in(browser, live_server, merchant, r"/orders/")
    page.goto(f"{live_server.url}/dashboard/")
    numbers = page.locator("#chart-cases details")
    numbers.locator("summary").click()
    link = numbers.locator('a[href*="rule=deadline_at_risk"][href*="severity=high"]')
    expect(link).to_have_text("3")
    link.click()
    expect(page).to_have_url(re.compile(r"/cases/\?status=live&rule=deadline_at_risk&severity=high$"))
    expect(page.locator("#cases tbody tr")).to_have_count(3)
