"""A person imports a spreadsheet in the browser and follows its progress."""

import io
import re
from pathlib import Path

from django.utils import translation
from openpyxl import load_workbook
from playwright.sync_api import expect

from orders import imports
from orders.models import ImportJob, Order
from tests.integration.conftest import log_in
from tests.orders.test_imports import as_xlsx, rows


def test_an_operator_uploads_a_file_and_watches_the_bar_reach_100_percent(
    browser, live_server, operator, merchant_org, provider_org, settings, tmp_path
):
    settings.IMPORT_BATCH_ROWS = 10
    table = rows(30)
    for bad in (3, 14, 25):
        table[bad]["quantity"] = "none"
    source = tmp_path / "订单.xlsx"
    source.write_bytes(as_xlsx(table))
    page = log_in(browser, live_server, operator, r"/operator/$", viewport={"width": 1440, "height": 900})

    page.goto(f"{live_server.url}/imports/")
    page.set_input_files("#id_file", str(source))
    page.click("#import-form button[type=submit]")
    page.wait_for_url(re.compile(r"/imports/\d+/$"))
    job = ImportJob.objects.get()
    expect(page.locator("#import-done")).to_have_text("0 / 30")

    def after_each_refresh():
        # The next batch runs just after the page read the progress, never
        # while it is reading it.
        with page.expect_response(lambda r: f"/imports/{job.pk}/" in r.url):
            pass

    def follow(current):
        expect(page.locator("#import-done")).to_have_text(f"{current.done} / 30", timeout=10000)
        if current.done == 10:
            page.reload()  # the progress outlives a reload
            expect(page.locator("#import-bar")).to_have_attribute("value", "33")
        if current.done < 30:
            after_each_refresh()

    after_each_refresh()
    imports.run(job.pk, progress=follow)

    # The last refresh shows the import done, and the page stops refreshing:
    # a click that met a refresh's swap halfway would not be a click at all.
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "done")
    expect(page.locator("#import-progress")).not_to_have_attribute("hx-get", re.compile(".*"))
    expect(page.locator("#import-bar")).to_have_attribute("value", "100")
    expect(page.locator("#import-percent")).to_have_text("100 %")
    expect(page.locator("#import-created")).to_have_text("27")
    expect(page.locator("#import-refused")).to_have_text("3")
    expect(page.locator("#refusals tbody tr")).to_have_count(3)
    with page.expect_download() as download:
        page.click("#refused-download")
    assert download.value.suggested_filename.endswith(".xlsx")
    refused = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).active
    lines = [list(r) for r in refused.iter_rows(values_only=True)]
    assert [line[0] for line in lines[1:]] == ["IMP-00004", "IMP-00015", "IMP-00026"]
    with translation.override("en"):
        assert lines[0][-1] == str(imports.REASON)
    assert Order.objects.count() == 27
