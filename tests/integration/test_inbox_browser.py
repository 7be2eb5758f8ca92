"""The inbox in a real browser: filter to unread items of one kind, open a
sweep's summary, land on the list of exactly the cases it sums up."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import Notification, NotificationKind
from risks.sweep import run_sweep
from tests.factories import new_order
from tests.integration.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)
K = NotificationKind


def test_a_merchant_filters_the_inbox_and_opens_a_summary_onto_exactly_its_orders(
    browser, live_server, personas, merchant_org, merchant2_org, provider_org, platform
):
    from playwright.sync_api import expect

    merchant = personas["merchant"]
    first = timezone.now()
    earlier = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=30)) for _ in range(2)]
    run_sweep(first)
    Notification.objects.filter(recipient=merchant).update(read_at=timezone.now())  # read already
    mine = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20)) for _ in range(3)]
    theirs = new_order(merchant2_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep(first + timedelta(minutes=5))
    # Something else unread, of another kind.
    from portal import notify

    notify.announce(
        K.ESCALATION_COMMENTED,
        "browser",
        [merchant],
        context={"escalation": 1, "order_no": earlier[0].order_no, "author": "olivia", "body": "on it"},
        link="/escalations/",
    )

    page = log_in(browser, live_server, merchant, viewport={"width": 1440, "height": 900})
    expect(page.locator("#bell [data-unread]")).to_have_text(re.compile(r"^2\b"))
    page.locator("#bell").click()
    page.wait_for_url(re.compile(r"/inbox/$"))
    expect(page).to_have_title(re.compile(r"^Inbox ·"))
    expect(page.locator("#inbox li")).to_have_count(3)

    page.locator("#id_unread").check()  # the filter applies itself
    page.wait_for_url(re.compile(r"unread=on"))
    expect(page.locator("#inbox li")).to_have_count(2)
    page.locator("#id_kind").select_option(label="Orders near their deadline")
    page.wait_for_url(re.compile(rf"kind={K.DEADLINE_AT_RISK_SUMMARY}"))
    items = page.locator("#inbox li")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("3 orders near their deadline — ¥3,703.50")

    items.first.locator("button.btn-link").click()
    page.wait_for_url(re.compile(r"/cases/\?rule=deadline_at_risk&opened="))
    rows = page.locator("#cases tbody tr")
    expect(rows).to_have_count(3)
    shown = set(page.locator('#cases tbody a[href^="/orders/"]').all_inner_texts())
    assert shown == {o.order_no for o in mine}
    assert theirs.order_no not in shown and not shown & {o.order_no for o in earlier}
    # The list names the sweep it shows, and the bell counted the item read.
    expect(page.locator("#id_opened")).to_be_visible()
    expect(page.locator("#bell [data-unread]")).to_have_text(re.compile(r"^1\b"))
