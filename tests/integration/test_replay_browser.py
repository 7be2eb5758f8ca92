"""The Replay page in a real browser: an operator reaches it from the
navigation, sees the lead time per rule drawn and the losses listed, and
downloads the losses as CSV."""

import csv

import pytest
from playwright.sync_api import expect

from risks.choices import Rule
from tests.factories import replay_run
from tests.integration.conftest import log_in
from tests.integration.test_dashboard_browser import INKED, watched
from tests.risks.test_replay_page import REPORT

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_reads_the_replay_and_downloads_its_losses(browser, live_server, operator, tmp_path):
    run = replay_run(REPORT, thresholds={"sla_signed_in_hours": 12})
    page = log_in(
        browser, live_server, operator, r"/operator/$", viewport={"width": 1440, "height": 900}, accept_downloads=True
    )
    errors = watched(page)
    page.locator('nav a[href="/replays/"]').click()
    expect(page.locator("h1")).to_have_text("Replay of the risk rules")

    canvas = page.locator('#chart-replay-lead canvas[data-chart="chart-replay-lead-data"]')
    expect(canvas).to_have_attribute("data-drawn", "true")
    assert canvas.evaluate(INKED) > 500

    rows = page.locator("#losses tbody tr")
    expect(rows).to_have_count(len(REPORT["losses"]))
    expect(rows.first).to_contain_text(str(Rule.FORECAST_MISS.label))
    expect(rows.last).to_contain_text("Not caught")
    expect(page.locator("#replay-early")).to_have_text("3 of 4 losses (75 %)")

    with page.expect_download() as caught:
        page.locator('#replay-losses a[data-export="csv"]').click()
    download = caught.value
    assert download.suggested_filename == f"replay-{run.pk}-losses.csv"
    download.save_as(tmp_path / download.suggested_filename)
    with open(tmp_path / download.suggested_filename, encoding="utf-8-sig", newline="") as file:
        found = list(csv.DictReader(file))
    assert [row["Order"] for row in found] == [loss["order_no"] for loss in REPORT["losses"]]
    assert found[-1]["By rule"] == "Not caught"
    assert errors == []
