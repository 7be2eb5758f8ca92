"""Taking an escalation again changes nothing."""

from django.urls import reverse

from orders.choices import OrderState
from portal.models import Notification, NotificationKind
from risks.choices import EscalationStatus
from risks.models import Escalation
from tests.factories import UserFactory, advance, new_order


def blocked_escalation(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), OrderState.PACKED)
    client.force_login(provider)
    client.post(
        reverse("orders:action", args=[order.order_no, "report-blocked"]),
        {
            "report-blocked-version": order.version,
            "report-blocked-stage": "packing",
            "report-blocked-reason": "station",
        },
    )
    return Escalation.objects.get(order=order)


def test_assigning_the_same_person_again_adds_no_entry_and_no_notification(
    client, provider, operator, merchant_org, provider_org
):
    escalation = blocked_escalation(client, provider, merchant_org, provider_org)
    client.force_login(operator)

    for _n in range(3):
        client.post(reverse("risks:escalation-assign", args=[escalation.pk]))

    escalation.refresh_from_db()
    assert escalation.assignee == operator and escalation.status == EscalationStatus.IN_PROGRESS
    assert list(escalation.entries.values_list("kind", flat=True)) == ["raised", "assigned"]
    assert Notification.objects.filter(kind=NotificationKind.ESCALATION_ASSIGNED, recipient=provider).count() == 1


def test_another_operator_taking_it_over_is_recorded(client, provider, operator, platform, merchant_org, provider_org):
    escalation = blocked_escalation(client, provider, merchant_org, provider_org)
    colleague = UserFactory(username="olga", organisation=platform)

    for person in (operator, colleague):
        client.force_login(person)
        client.post(reverse("risks:escalation-assign", args=[escalation.pk]))

    escalation.refresh_from_db()
    assert escalation.assignee == colleague
    assert list(escalation.entries.values_list("kind", flat=True)) == ["raised", "assigned", "assigned"]
