"""Every list not pinned in tests/orders/test_lists.py runs the same few
queries however many rows it shows: risk cases and escalations (web and API),
the inbox, and every API list. A count that grows with the page is a query
per row."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import workflow, worklists
from orders.choices import Action, OrderState
from portal.models import Notification
from risks.models import Escalation, RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order

S = OrderState
ROWS = 24  # enough that each persona's lists run past the small page size


@pytest.fixture
def busy(merchant_org, merchant2_org, provider_org, platform):
    """Orders of two merchants, each blocked at entry (a case and an
    escalation each) and near its deadline (a second case), swept once."""
    provider = workflow.Actor.of_organisation(provider_org)
    for i in range(ROWS):
        merchant = merchant2_org if i % 3 == 0 else merchant_org
        order = advance(new_order(merchant, provider_org, deadline_in=timedelta(hours=40)), S.SIGNED_IN)
        workflow.perform(order, Action.REPORT_BLOCKED, provider, stage="entry", reason="ERP rejects it")
    run_sweep()
    assert RiskCase.objects.count() >= ROWS and Escalation.objects.count() >= ROWS


def _fields(notification):
    return {
        f.attname: getattr(notification, f.attname) for f in Notification._meta.concrete_fields if not f.primary_key
    }


def _counts(client, url, param, sizes):
    """The queries and answers of ``url`` asked with ``param`` at each of ``sizes``."""
    counts, responses = [], []
    for size in sizes:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, {param: size})
        assert response.status_code == 200
        counts.append(len(queries))
        responses.append(response)
    return counts, responses


WEB_LISTS = [
    ("merchant", "risks:cases"),
    ("provider", "risks:cases"),
    ("operator", "risks:cases"),
    ("provider", "risks:escalations"),
    ("operator", "risks:escalations"),
]


# Each test goes over its lists as subtests, so the busy orders are made once a test.


def test_web_risk_lists_use_the_same_few_queries_at_any_page_size(client, personas, busy, subtests):
    for persona, name in WEB_LISTS:
        with subtests.test(persona=persona, page=name):
            client.force_login(personas[persona])
            counts, responses = _counts(client, reverse(name), "per_page", (10, 100))
            shown = [len(r.context["table"].paginated_rows) for r in responses]
            assert shown[0] == 10 < shown[1], shown
            assert counts[0] == counts[1] <= 8, counts


def test_the_inbox_uses_the_same_few_queries_however_full_the_page(client, personas, busy, subtests):
    for persona in ("provider", "operator"):
        with subtests.test(persona=persona):
            user = personas[persona]
            real = list(Notification.objects.filter(recipient=user))
            assert real, "the sweep and the escalations must have told this person something"
            # The inbox shows 25 a page; copies of what the portal really sent fill
            # it past one page, so the last page holds the few that are left.
            copies = []
            for i in range(25 + (3 - len(real)) % 25):  # so three are left for the last page
                copy = real[i % len(real)]
                copies.append(Notification(**{**_fields(copy), "key": f"{copy.key}:copy{i}"}))
            Notification.objects.bulk_create(copies)
            last = (Notification.objects.filter(recipient=user).count() - 1) // 25 + 1
            client.force_login(user)
            counts, responses = _counts(client, reverse("inbox"), "page", (last, 1))
            shown = [len(r.context["items"]) for r in responses]
            assert shown[0] < shown[1] == 25, shown
            assert counts[0] == counts[1] <= 8, counts


API_LISTS = [
    ("merchant", "/api/v1/orders/"),
    ("provider", "/api/v1/orders/"),
    ("platform", "/api/v1/orders/"),
    ("provider", f"/api/v1/worklists/{worklists.BY_SLUG['blocked'].slug}/"),
    ("merchant", "/api/v1/cases/"),
    ("provider", "/api/v1/cases/"),
    ("platform", "/api/v1/cases/"),
    ("provider", "/api/v1/escalations/"),
    ("platform", "/api/v1/escalations/"),
]


def test_api_lists_use_the_same_few_queries_at_any_page_size(api, keys, busy, subtests):
    for persona, path in API_LISTS:
        with subtests.test(persona=persona, path=path):
            client = api.as_key(keys[persona])
            client.get(path, {"page_size": 1})  # a key's first request records its use; the next ones do not
            counts, responses = _counts(client, path, "page_size", (5, 100))
            shown = [len(r.json()["results"]) for r in responses]
            assert shown[0] == 5 < 10 < shown[1], shown
            assert counts[0] == counts[1] <= 4, counts
