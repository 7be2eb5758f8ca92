"""An export in a real browser: a person filters a list, clicks Excel, and
the file that arrives holds exactly the rows the filter shows."""

import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from orders.choices import OrderState
from orders.exports import COLUMNS
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_filters_the_orders_and_downloads_exactly_them_as_xlsx(
    browser, live_server, tmp_path, operator, merchant_org, merchant2_org, provider_org
):
    wanted = [advance(new_order(merchant_org, provider_org), OrderState.SIGNED_IN) for _ in range(3)]
    others = [new_order(merchant2_org, provider_org) for _ in range(2)]
    page = log_in(browser, live_server, operator, r"/operator/", accept_downloads=True)
    page.goto(f"{live_server.url}/orders/")
    for order in (*wanted, *others):
        expect(page.locator("#orders")).to_contain_text(order.order_no)

    page.select_option("#id_merchant", merchant_org.code)
    page.wait_for_url(re.compile(rf"merchant={merchant_org.code}"))
    link = page.locator('#export a[data-export="xlsx"]')
    expect(link).to_have_attribute("href", re.compile(rf"merchant={merchant_org.code}&.*export=xlsx$"))
    expect(page.locator("#orders")).not_to_contain_text(others[0].order_no)

    with page.expect_download() as caught:
        link.click()
    download = caught.value
    assert download.suggested_filename == "orders.xlsx"
    download.save_as(tmp_path / download.suggested_filename)
    rows = list(load_workbook(tmp_path / download.suggested_filename).active.iter_rows(values_only=True))

    assert list(rows[0]) == [str(column.header) for column in COLUMNS]
    assert sorted(row[0] for row in rows[1:]) == sorted(order.order_no for order in wanted)


def test_a_provider_sorts_a_worklist_by_deadline_and_the_file_keeps_that_order(
    browser, live_server, tmp_path, provider, merchant_org, provider_org
):
    orders = [
        advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=days)), OrderState.SIGNED_IN)
        for days in (4, 2, 6, 3)
    ]
    latest_first = [o.order_no for o in sorted(orders, key=lambda o: o.auto_confirm_at, reverse=True)]
    page = log_in(browser, live_server, provider, r"/worklists/", accept_downloads=True)
    page.goto(f"{live_server.url}/orders/")
    rows = page.locator("#orders tbody tr")
    expect(rows.first).to_contain_text(latest_first[-1])  # nearest deadline first

    page.locator("#orders thead th a", has_text=re.compile("Deadline")).click()
    page.wait_for_url(re.compile(r"sort=-auto_confirm_at"))
    expect(rows.first).to_contain_text(latest_first[0])
    link = page.locator('#export a[data-export="csv"]')
    expect(link).to_have_attribute("href", re.compile(r"sort=-auto_confirm_at&.*export=csv$"))

    with page.expect_download() as caught:
        link.click()
    caught.value.save_as(tmp_path / "orders.csv")
    lines = (tmp_path / "orders.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == latest_first
