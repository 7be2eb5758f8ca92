"""The operators' triage queue in a real browser: ticks that survive the live
refresh, a bulk assignment, "Take it" without a page load, and the page of a
blocked flow that says what is wrong without opening the order."""

import contextlib
import re

import pytest
from playwright.sync_api import expect

from orders import workflow
from orders.choices import Action, BlockedStage, OrderState
from risks.models import Escalation
from tests.factories import advance, new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def blocked(merchant_org, provider_org, reason):
    order = advance(new_order(merchant_org, provider_org), OrderState.PACKED)
    provider = workflow.Actor.of_organisation(provider_org)
    workflow.perform(order, Action.REPORT_BLOCKED, provider, stage=BlockedStage.PACKING, reason=reason)
    return Escalation.objects.get(order=order)


def row(page, escalation):
    return page.locator(f'#results tr[data-escalation="{escalation.pk}"]')


def test_an_operator_triages_the_queue_and_reads_why_a_flow_is_blocked(
    browser, live_server, settings, operator, merchant_org, provider_org
):
    settings.LIST_REFRESH_SECONDS = 1
    first, second, third, fourth = (blocked(merchant_org, provider_org, f"ERP refuses packing {n}") for n in range(4))
    page = log_in(browser, live_server, operator, r"/operator/")
    page.goto(f"{live_server.url}/escalations/")
    page.check(f'#results input[name=select][value="{first.pk}"]')
    page.check(f'#results input[name=select][value="{second.pk}"]')

    # One raised meanwhile shows up only through a refresh of the rows; the ticks stay.
    late = blocked(merchant_org, provider_org, "ERP refuses packing late")
    expect(row(page, late)).to_have_count(1)
    page.wait_for_timeout(1500)  # and one more refresh for good measure
    checked = page.locator("#results tbody input[name=select]:checked")
    assert sorted(checked.evaluate_all("boxes => boxes.map(b => b.value)")) == sorted([str(first.pk), str(second.pk)])
    expect(page.locator("[data-selected-count]")).to_have_text("2")

    page.select_option("#bulk-assignee", "me")
    page.click("#bulk-submit")
    expect(page.locator('#bulk-results [data-outcome="done"]')).to_have_count(2)
    page.wait_for_timeout(1500)  # the outcome stays through the live refresh
    expect(page.locator('#bulk-results [data-outcome="done"]')).to_have_count(2)
    for escalation in (first, second):
        expect(row(page, escalation)).to_contain_text(operator.username)
    assert set(Escalation.objects.filter(assignee=operator).values_list("pk", flat=True)) == {first.pk, second.pk}

    # "Take it": one POST, no page load, the queue says so and the row shows it.
    # What the queue says stands until its next refresh, which a refresh a
    # second could bring before the check: from here the page refreshes at
    # its usual pace.
    settings.LIST_REFRESH_SECONDS = 30
    page.reload()
    loads = []
    page.on("load", lambda _page: loads.append(1))
    row(page, third).locator("[data-take]").click()
    expect(page.locator("#queue-messages")).to_contain_text(f"Escalation {third.pk}")
    expect(row(page, third)).to_contain_text(operator.username)
    expect(row(page, third).locator("[data-take]")).to_have_count(0)
    assert loads == []
    third.refresh_from_db()
    assert third.assignee == operator

    # The page of a blocked flow says where and why, without opening the order.
    row(page, fourth).locator(f'a[href="/escalations/{fourth.pk}/"]').click()
    page.wait_for_url(re.compile(rf"/escalations/{fourth.pk}/$"))
    expect(page.locator("#blocked-stage")).to_have_text(str(BlockedStage.PACKING.label))
    expect(page.locator("#blocked-reason")).to_have_text("ERP refuses packing 3")
    expect(page.locator("#escalation-order")).to_contain_text(fourth.order.order_no)
    page.click("#escalation-act-unblock button[type=submit]")
    expect(page.locator(".alert-success")).to_contain_text("Unblock")
    expect(page.locator("#blocked")).to_have_count(0)
    fourth.order.refresh_from_db()
    assert not fourth.order.flow_blocked


def _held(page, routes, seconds=5):
    """Whether a request was held in ``routes`` within ``seconds``, the page running meanwhile."""
    for _ in range(seconds * 10):
        if routes:
            return True
        page.wait_for_timeout(100)
    return bool(routes)


def test_a_take_is_not_lost_to_a_refresh_that_answers_first(
    browser, live_server, settings, operator, merchant_org, provider_org
):
    from playwright.sync_api import Error

    settings.LIST_REFRESH_SECONDS = 1
    escalation = blocked(merchant_org, provider_org, "ERP refuses packing")
    page = log_in(browser, live_server, operator, r"/operator/")
    # The queue's refreshes and the take are held on their way, so that a
    # refresh in flight when "Take it" is clicked answers before the take.
    refreshes, takes = [], []

    def hold(route):
        request = route.request
        if request.method == "GET" and request.headers.get("hx-trigger") == "results":
            refreshes.append(route)
        elif request.method == "POST":
            takes.append(route)
        else:
            route.continue_()

    page.route(lambda url: "/escalations/" in url, hold)
    page.goto(f"{live_server.url}/escalations/")
    assert _held(page, refreshes), "the queue never refreshed"
    in_flight = list(refreshes)
    row(page, escalation).locator("[data-take]").click()
    assert _held(page, takes), "the take was not sent"
    for route in in_flight:
        with contextlib.suppress(Error):  # the page gave up on it
            route.continue_()
    page.wait_for_timeout(500)
    takes[0].continue_()
    said = f"Escalation {escalation.pk} (order {escalation.order.order_no}) is yours."
    expect(page.locator("#queue-messages")).to_contain_text(said)
    expect(row(page, escalation)).to_contain_text(operator.username)
