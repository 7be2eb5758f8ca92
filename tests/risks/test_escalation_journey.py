"""SPEC §4 end to end: a blocked flow reaches the platform, an operator works it
from the escalation, and the provider can ship online again."""

from django.core import mail
from django.urls import reverse

from orders.choices import OrderState
from orders.models import Order
from portal import delivery
from portal.models import Notification, NotificationKind
from risks.choices import CaseStatus, EscalationStatus, Rule
from risks.models import Escalation, EscalationEntry, RiskCase
from tests.factories import advance, new_order

S = OrderState


def test_a_blocked_flow_from_report_to_printed_waybill(client, personas, merchant_org, provider_org):
    provider, operator = personas["provider"], personas["operator"]
    order = advance(new_order(merchant_org, provider_org), S.PACKED)

    client.force_login(provider)
    client.post(
        reverse("orders:action", args=[order.order_no, "report-blocked"]),
        {
            "report-blocked-version": order.version,
            "report-blocked-stage": "packing",
            "report-blocked-reason": "station",
        },
    )
    escalation = Escalation.objects.get(order=order)
    assert escalation.case.rule == Rule.FLOW_BLOCKED
    delivery.deliver_due()
    assert any(operator.email in m.to and "New escalation" in m.subject for m in mail.outbox)

    client.force_login(operator)
    queue = client.get(reverse("risks:escalations")).content.decode()
    assert f"/escalations/{escalation.pk}/" in queue
    client.post(reverse("risks:escalation-assign", args=[escalation.pk]))
    client.post(reverse("risks:escalation-comment", args=[escalation.pk]), {"body": "Looking at the packing station."})
    client.post(reverse("risks:escalation-act", args=[escalation.pk, "unblock"]), {"unblock-note": "station reset"})
    client.post(
        reverse("risks:escalation-close", args=[escalation.pk]),
        {"status": "resolved", "note": "Unblocked; print the waybill now."},
    )
    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.RESOLVED and escalation.assignee == operator
    kinds = list(escalation.entries.values_list("kind", flat=True))
    assert kinds == ["raised", "assigned", "comment", "action", "resolved"]
    assert RiskCase.objects.get(rule=Rule.FLOW_BLOCKED).status == CaseStatus.RESOLVED

    mail.outbox.clear()
    delivery.deliver_due()
    provider_mail = [m.subject for m in mail.outbox if provider.email in m.to]
    assert any("is handling the escalation" in s for s in provider_mail)
    assert any("Resolved" in s for s in provider_mail)
    assert Notification.objects.filter(recipient=provider, kind=NotificationKind.ESCALATION_CLOSED).exists()

    client.force_login(provider)
    order.refresh_from_db()
    assert not order.flow_blocked
    client.post(
        reverse("orders:action", args=[order.order_no, "print-waybill"]), {"print-waybill-version": order.version}
    )
    assert Order.objects.get(pk=order.pk).state == S.WAYBILL_PRINTED


def test_internal_notes_are_never_shown_to_merchants_or_providers(
    client, api, keys, personas, merchant_org, provider_org
):
    from orders import workflow
    from risks import cases, escalations

    order = new_order(merchant_org, provider_org)
    raised = cases.escalate_order(order, workflow.Actor.of_user(personas["provider"]), "help")
    escalations.comment(raised, workflow.Actor.of_user(personas["operator"]), "SECRET vendor ticket 42", internal=True)
    escalations.comment(raised, workflow.Actor.of_user(personas["operator"]), "We are on it.")
    assert EscalationEntry.objects.filter(kind="internal").count() == 1

    client.force_login(personas["provider"])
    page = client.get(reverse("risks:escalation", args=[raised.pk])).content.decode()
    assert "We are on it." in page and "SECRET" not in page
    data = api.as_key(keys["provider"]).get(f"/api/v1/escalations/{raised.pk}/").json()
    assert [e["body"] for e in data["thread"]] == ["We are on it."]

    client.force_login(personas["operator"])
    assert "SECRET" in client.get(reverse("risks:escalation", args=[raised.pk])).content.decode()
    data = api.as_key(keys["platform"]).get(f"/api/v1/escalations/{raised.pk}/").json()
    assert len(data["thread"]) == 2

    refused = api.as_key(keys["provider"]).post(
        f"/api/v1/escalations/{raised.pk}/comment/", {"body": "x", "internal": True}, format="json"
    )
    assert refused.status_code == 403
    assert EscalationEntry.objects.filter(kind="internal").count() == 1


def test_the_escalation_api_for_operators(api, keys, personas, merchant_org, provider_org):
    from orders import workflow
    from risks import cases

    order = new_order(merchant_org, provider_org)
    raised = cases.escalate_order(order, workflow.Actor.of_user(personas["merchant"]), "help")
    base = f"/api/v1/escalations/{raised.pk}"
    assert api.as_key(keys["merchant"]).post(f"{base}/assign/", {}, format="json").status_code == 403
    assert api.as_key(keys["merchant"]).post(f"{base}/resolve/", {"note": "x"}, format="json").status_code == 403
    assert api.as_key(keys["provider"]).post(f"{base}/comment/", {"body": "x"}, format="json").status_code == 404

    # An API key acts for the platform without a person: it comments and closes, it cannot be an assignee.
    api.as_key(keys["platform"])
    assert api.post(f"{base}/assign/", {}, format="json").status_code == 403
    commented = api.post(f"{base}/comment/", {"body": "on it"}, format="json").json()
    assert commented["thread"][-1]["body"] == "on it"
    rejected = api.post(f"{base}/reject/", {"note": "not a platform matter"}, format="json").json()
    assert rejected["status"] == "rejected" and rejected["resolution_note"] == "not a platform matter"
    again = api.post(f"{base}/resolve/", {"note": "x"}, format="json")
    assert again.status_code == 409

    merchant_view = api.as_key(keys["merchant"]).get(f"{base}/").json()
    assert merchant_view["status"] == "rejected"
