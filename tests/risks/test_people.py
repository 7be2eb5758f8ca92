"""The people's side of the cases: verifying, acknowledging, resolving, escalating, in the web and the API."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders import workflow
from orders.choices import Action, OrderState
from orders.models import Order
from risks.choices import CaseStatus, EscalationCategory, Resolution, Rule
from risks.models import Escalation, RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order

S = OrderState


@pytest.fixture
def pending(merchant_org, provider_org, platform):
    """A parcel unsigned for 30 hours, and its case."""
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    Order.objects.filter(pk=order.pk).update(inbound_delivered_at=timezone.now() - timedelta(hours=30))
    run_sweep()
    order.refresh_from_db()
    return order, RiskCase.objects.get(rule=Rule.PENDING_SIGN_IN)


def verify(order, provider_org, outcome, note=""):
    return workflow.perform(
        order, Action.VERIFY_PENDING, workflow.Actor.of_organisation(provider_org), outcome=outcome, note=note
    )


@pytest.mark.parametrize("outcome", ["cannot_determine", "system_cannot_sign"])
def test_verifications_the_provider_cannot_settle_escalate_at_once(pending, provider_org, outcome):
    order, case = pending
    verify(order, provider_org, outcome, note="merchant does not answer")
    case.refresh_from_db()
    assert case.status == CaseStatus.ESCALATED
    escalation = case.escalations.get()
    assert escalation.category == EscalationCategory.SIGN_IN and escalation.raised_by_organisation == provider_org
    assert "merchant does not answer" in escalation.reason


def test_other_verifications_answer_the_case(pending, provider_org):
    order, case = pending
    verify(order, provider_org, "still_in_transit", note="courier says tomorrow")
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.resolution == Resolution.BY_OWNER
    run_sweep()
    assert not RiskCase.objects.live().filter(rule=Rule.PENDING_SIGN_IN).exists(), "verified within 24 h"


def test_signed_signs_the_parcel_in_and_closes_the_case(pending, provider_org):
    order, case = pending
    assert verify(order, provider_org, "signed").state == S.SIGNED_IN
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


def test_a_verification_before_any_case_that_needs_the_platform_still_escalates(merchant_org, provider_org, platform):
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    verify(order, provider_org, "system_cannot_sign")
    escalation = Escalation.objects.get(order=order)
    assert escalation.case is None and escalation.category == EscalationCategory.SIGN_IN


def test_the_owner_acknowledges_and_resolves_in_the_web(client, pending, provider, merchant):
    _order, case = pending
    client.force_login(merchant)
    assert client.post(reverse("risks:case-acknowledge", args=[case.pk]), {"note": ""}).status_code == 404
    client.force_login(provider)
    client.post(reverse("risks:case-acknowledge", args=[case.pk]), {"note": "looking"})
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED
    response = client.post(reverse("risks:case-resolve", args=[case.pk]), {"note": ""})
    assert response.status_code == 400
    client.post(reverse("risks:case-resolve", args=[case.pk]), {"note": "parcel found in the back room"})
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.resolved_by == provider
    assert list(case.events.values_list("kind", flat=True)) == ["opened", "acknowledged", "resolved"]


def test_a_person_resolving_is_not_undone_by_the_next_sweep(pending, provider):
    from risks import cases

    _order, case = pending
    cases.resolve(case, workflow.Actor.of_user(provider), "handled with the merchant by phone")
    run_sweep()
    assert RiskCase.objects.filter(rule=Rule.PENDING_SIGN_IN).count() == 1


def test_merchant_escalates_a_case_and_an_order_in_the_web(client, merchant, merchant_org, provider_org, platform):
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=10))
    run_sweep()
    case = RiskCase.objects.get(rule=Rule.DEADLINE_AT_RISK)
    client.force_login(merchant)
    client.post(reverse("risks:case-escalate", args=[case.pk]), {"reason": "the provider does not answer"})
    case.refresh_from_db()
    assert case.status == CaseStatus.ESCALATED
    assert case.escalations.get().raised_by_user == merchant

    client.post(reverse("risks:order-escalate", args=[order.order_no]), {"reason": "please extend"})
    assert Escalation.objects.filter(order=order, case__isnull=True, raised_by_user=merchant).exists()
    page = client.get(reverse("risks:escalations")).content.decode()
    assert order.order_no in page


def test_escalations_are_seen_by_their_raiser_and_the_platform(client, personas, merchant_org, provider_org):
    from risks import cases

    order = new_order(merchant_org, provider_org)
    escalation = cases.escalate_order(order, workflow.Actor.of_user(personas["merchant"]), "help")
    seen = {}
    for name, user in personas.items():
        client.force_login(user)
        seen[name] = client.get(reverse("risks:escalation", args=[escalation.pk])).status_code
    assert seen == {
        "merchant": 200,
        "operator": 200,
        "merchant2": 404,
        "provider": 404,
        "provider2": 404,
        "outsider": 404,
    }


def test_case_pages_are_scoped_and_filtered(client, personas, pending):
    _order, case = pending
    for name, user in personas.items():
        client.force_login(user)
        page = client.get(reverse("risks:cases")).content.decode()
        visible = name in {"merchant", "provider", "operator"}
        assert (f'href="/cases/{case.pk}/"' in page) == visible, name
    client.force_login(personas["operator"])
    assert f"/cases/{case.pk}/" not in client.get(reverse("risks:cases"), {"rule": "stalled"}).content.decode()
    assert f"/cases/{case.pk}/" in client.get(reverse("risks:cases"), {"overdue": "no"}).content.decode()


def test_the_owner_filter_lists_only_owners_of_cases_one_may_see(client, api, keys, personas, pending, provider_org):
    import re

    def owners(user):
        client.force_login(user)
        page = client.get(reverse("risks:cases")).content.decode()
        select = re.search(r'<select name="owner".*?</select>', page, re.S).group(0)
        return set(re.findall(r'<option value="([^"]+)"', select))

    assert owners(personas["provider"]) == owners(personas["operator"]) == {provider_org.code}
    assert owners(personas["merchant2"]) == set()
    refused = api.as_key(keys["merchant2"]).get("/api/v1/cases/", {"owner": provider_org.code})
    assert refused.status_code == 400 and "owner" in refused.json()["fields"]


def test_worklist_rows_and_the_order_page_show_the_case(client, provider, pending):
    order, _case = pending
    client.force_login(provider)
    row = client.get(reverse("orders:worklist", args=["pending-sign-in"])).content.decode()
    assert "Unverified pending sign-in" in row
    detail = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert 'id="order-cases"' in detail and "¥1,234.50" in detail


# --- the API ----------------------------------------------------------------------------------


def test_cases_api_lists_filters_and_acts(api, keys, pending):
    order, case = pending
    api.as_key(keys["provider"])
    listed = api.get("/api/v1/cases/", {"rule": "pending_sign_in", "order": order.order_no}).json()["results"]
    assert [c["id"] for c in listed] == [case.pk]
    assert set(listed[0]) >= {
        "id",
        "rule",
        "order",
        "trade_no",
        "sku",
        "owner",
        "severity",
        "status",
        "due_at",
        "money_at_risk",
    }
    assert listed[0]["order"] == order.order_no and listed[0]["money_at_risk"] == "1234.50"

    assert api.post(f"/api/v1/cases/{case.pk}/acknowledge/", {}, format="json").json()["status"] == "acknowledged"
    refused = api.post(f"/api/v1/cases/{case.pk}/resolve/", {}, format="json")
    assert refused.status_code == 400 and "note" in refused.json()["fields"]
    done = api.post(f"/api/v1/cases/{case.pk}/resolve/", {"note": "found it"}, format="json").json()
    assert done["status"] == "resolved" and done["resolution"] == "by_owner"
    again = api.post(f"/api/v1/cases/{case.pk}/resolve/", {"note": "again"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_cases_api_is_scoped(api, keys, pending):
    _order, case = pending
    for persona in ("merchant2", "provider2", "outsider"):
        api.as_key(keys[persona])
        assert api.get(f"/api/v1/cases/{case.pk}/").status_code == 404
        assert api.post(f"/api/v1/cases/{case.pk}/resolve/", {"note": "x"}, format="json").status_code == 404
        assert api.get("/api/v1/cases/").json()["results"] == []
    merchant = api.as_key(keys["merchant"]).post(f"/api/v1/cases/{case.pk}/acknowledge/", {}, format="json")
    assert merchant.status_code == 403


def test_order_detail_and_list_in_the_api_show_risk(api, keys, pending):
    order, _case = pending
    api.as_key(keys["platform"])
    detail = api.get(f"/api/v1/orders/{order.order_no}/").json()
    assert [c["rule"] for c in detail["open_cases"]] == ["pending_sign_in"]
    listed = api.get("/api/v1/orders/", {"risk": "pending_sign_in"}).json()["results"]
    assert [o["order_no"] for o in listed] == [order.order_no]
    assert api.get("/api/v1/orders/", {"risk": "stalled"}).json()["results"] == []


def test_escalations_api_creates_and_lists(api, keys, pending):
    order, case = pending
    api.as_key(keys["provider"])
    made = api.post(
        "/api/v1/escalations/", {"order": order.order_no, "case": case.pk, "reason": "need help"}, format="json"
    )
    assert made.status_code == 201 and made.json()["case"] == case.pk
    plain = api.post(
        "/api/v1/escalations/", {"order": order.order_no, "reason": "also this", "category": "deadline"}, format="json"
    )
    assert plain.status_code == 201 and plain.json()["category"] == "deadline"
    assert len(api.get("/api/v1/escalations/").json()["results"]) == 2
    assert api.as_key(keys["merchant"]).get("/api/v1/escalations/").json()["results"] == []
    assert len(api.as_key(keys["platform"]).get("/api/v1/escalations/").json()["results"]) == 2
    refused = api.as_key(keys["platform"]).post(
        "/api/v1/escalations/", {"order": order.order_no, "reason": "x"}, format="json"
    )
    assert refused.status_code == 403
    missing = api.as_key(keys["provider2"]).post(
        "/api/v1/escalations/", {"order": order.order_no, "reason": "x"}, format="json"
    )
    assert missing.status_code == 404
