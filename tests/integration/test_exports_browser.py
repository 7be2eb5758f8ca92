"""An export in a real browser: a person filters a list, clicks Excel, and
the file that arrives holds exactly the rows the filter shows."""

import re

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
