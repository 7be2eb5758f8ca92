"""The provider's floor in a real browser: ticking rows, the live refresh, the
scan station typed into as a keyboard-wedge scanner does, and next order."""

import re

import pytest
from playwright.sync_api import expect

from orders.choices import Action
from orders.choices import OrderState as S
from orders.models import Order
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def states(orders):
    found = dict(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("pk", "state"))
    return [found[o.pk] for o in orders]


def tick(page, order):
    page.check(f'#results input[name=select][value="{order.order_no}"]')


def test_ticking_three_rows_and_submitting_signs_in_those_three(
    browser, live_server, provider, merchant_org, provider_org
):
    parcels = [advance(new_order(merchant_org, provider_org), S.ARRIVED) for _ in range(5)]
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")

    for parcel in parcels[:3]:
        tick(page, parcel)
    assert page.locator("[data-selected-count]").inner_text() == "3"
    page.click("#bulk-submit")
    page.wait_for_selector("#bulk-results")

    assert states(parcels) == [S.SIGNED_IN] * 3 + [S.ARRIVED] * 2
    assert page.locator('#bulk-results [data-outcome="done"]').count() == 3


def test_ticks_survive_the_live_refresh(browser, live_server, settings, provider, merchant_org, provider_org):
    settings.LIST_REFRESH_SECONDS = 1
    parcels = [advance(new_order(merchant_org, provider_org), S.ARRIVED) for _ in range(3)]
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")
    tick(page, parcels[0])
    tick(page, parcels[2])

    # A parcel arriving meanwhile shows up only through a refresh of the rows.
    late = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    page.wait_for_selector(f'#results input[name=select][value="{late.order_no}"]')
    page.wait_for_timeout(1500)  # and one more refresh for good measure

    checked = page.locator("#results tbody input[name=select]:checked")
    assert sorted(checked.evaluate_all("boxes => boxes.map(b => b.value)")) == [
        parcels[0].order_no,
        parcels[2].order_no,
    ]
    assert page.locator("[data-selected-count]").inner_text() == "2"
    # With the pointer on the bulk bar the rows hold still, so the click
    # lands on the button it aimed at, not on one a refresh is replacing.
    page.hover("#bulk-submit")
    refreshes = []
    page.on("request", lambda r: refreshes.append(r.url) if "/worklists/" in r.url else None)
    page.wait_for_timeout(2500)  # two refresh periods
    assert refreshes == []
    page.click("#bulk-submit")
    page.wait_for_selector("#bulk-results")
    assert states([*parcels, late]) == [S.SIGNED_IN, S.ARRIVED, S.SIGNED_IN, S.ARRIVED]


def test_twenty_parcels_scanned_in_a_row_are_signed_in_without_a_page_load(
    browser, live_server, provider, merchant_org, provider_org
):
    parcels = [advance(new_order(merchant_org, provider_org), S.ARRIVED) for _ in range(20)]
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")
    page.click("#open-station")
    page.wait_for_url(re.compile(r"/worklists/pending-sign-in/scan/$"))
    loads = []
    page.on("load", lambda _page: loads.append(1))
    assert page.evaluate("document.activeElement.id") == "scan-code"

    # A scanner types each number and Enter as fast as it can, without
    # waiting for the answer to the one before.
    for parcel in parcels:
        page.keyboard.type(parcel.inbound_tracking_no.lower())
        page.keyboard.press("Enter")
    expect(page.locator('#scan-log [data-outcome="done"]')).to_have_count(20, timeout=30000)
    page.keyboard.type(parcels[0].inbound_tracking_no)
    page.keyboard.press("Enter")
    page.wait_for_selector('#scan-log [data-outcome="already"]')

    assert states(parcels) == [S.SIGNED_IN] * 20
    assert sum(p.events.filter(action=Action.SIGN_IN).count() for p in parcels) == 20
    assert loads == []
    assert page.locator("#scan-log .scan-line").count() == 21
    newest = page.locator("#scan-log .scan-line").first
    assert "Already signed in" in newest.inner_text()
    assert page.locator('[data-tally="done"]').inner_text() == "20"
    assert page.evaluate("document.activeElement.id") == "scan-code"


def test_a_step_from_a_worklist_leads_on_to_the_next_order_and_n_skips_one(
    browser, live_server, provider, merchant_org, provider_org
):
    from datetime import timedelta

    first, second, third = (
        advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=days)), S.INSPECTED)
        for days in (3, 4, 5)
    )
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")
    page.click('#worklist-tabs a[data-worklist="to-pack"]')
    page.click(f"text={first.order_no}")
    page.wait_for_url(re.compile(rf"/orders/{first.order_no}/\?worklist=to-pack$"))

    page.click("#action-pack button[type=submit]")
    page.wait_for_url(re.compile(rf"/orders/{second.order_no}/\?worklist=to-pack$"))
    assert first.order_no in page.locator(".alert-success").inner_text()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/orders/{third.order_no}/\?worklist=to-pack$"))

    assert states([first, second, third]) == [S.PACKED, S.INSPECTED, S.INSPECTED]


def test_the_labels_of_three_ticked_orders_print_with_their_barcodes(
    browser, live_server, provider, merchant_org, provider_org
):
    from tests.barcodes import decode_code128_svg

    shipped = [advance(new_order(merchant_org, provider_org), S.WAYBILL_PRINTED) for _ in range(4)]
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")
    page.click('#worklist-tabs a[data-worklist="awaiting-pickup"]')
    page.wait_for_url(re.compile(r"/worklists/awaiting-pickup/$"))
    ticked = shipped[:3]
    for order in ticked:
        tick(page, order)

    with page.context.expect_page() as opened:
        page.click("#labels-link")
    labels = opened.value
    labels.wait_for_load_state()

    found = labels.locator(".waybill-label")
    assert found.count() == 3
    decoded = [decode_code128_svg(label.locator("svg").evaluate("svg => svg.outerHTML")) for label in found.all()]
    assert sorted(decoded) == sorted(o.waybill_no for o in Order.objects.filter(pk__in=[o.pk for o in ticked]))
    assert shipped[3].order_no not in labels.content()


def test_printing_the_waybills_of_ticked_orders_opens_their_labels(
    browser, live_server, provider, merchant_org, provider_org
):
    packed = [advance(new_order(merchant_org, provider_org), S.PACKED) for _ in range(3)]
    page = log_in(browser, live_server, provider, r"/worklists/pending-sign-in/$")
    page.goto(f"{live_server.url}/worklists/to-ship/")
    for order in packed[:2]:
        tick(page, order)

    page.click("#bulk-submit")
    page.wait_for_url(re.compile(r"/labels/\?"))

    assert states(packed) == [S.WAYBILL_PRINTED, S.WAYBILL_PRINTED, S.PACKED]
    assert page.locator(".waybill-label").count() == 2
    assert "2 orders done" in page.locator(".alert-success").inner_text()
