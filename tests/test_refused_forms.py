"""Every form of the web UI, posted empty or wrong by a person who may use it,
says why it was refused on the page: beside its field, above the form, or at
the top of the page when the form itself is no longer offered."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders import workflow
from orders.choices import Action, BlockedStage, OrderState
from orders.models import Order
from risks import cases, escalations
from risks.choices import EscalationStatus, Rule
from risks.models import Escalation, RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order
from tests.test_pages_in_chinese import visible_text

S = OrderState
REQUIRED = "This field is required."


def within(response, element_id) -> str:
    """The visible text of the form or section with ``element_id`` on the page."""
    match = re.search(rf'<(form|section)\b[^>]*id="{element_id}"[^>]*>.*?</\1>', response.content.decode(), re.S)
    assert match, f"#{element_id} is on the page"
    return visible_text(match[0])


def page_text(response) -> str:
    return visible_text(response.content.decode())


# action slug, persona, starting state, form data, the reason shown
ACTION_REFUSALS = [
    ("ship", "merchant", S.AWAITING_SHIPMENT, {}, REQUIRED),
    (
        "ship",
        "merchant",
        S.AWAITING_SHIPMENT,
        {"carrier": "SF", "tracking_no": "??"},
        "A tracking number is 4 to 64 letters, digits or dashes.",
    ),
    ("verify-pending", "provider", S.ARRIVED, {}, REQUIRED),
    ("appraise", "provider", S.SIGNED_IN, {}, REQUIRED),
    ("appraise", "provider", S.SIGNED_IN, {"result": "maybe"}, "Select a valid choice."),
    ("report-blocked", "provider", S.SIGNED_IN, {"stage": "packing"}, REQUIRED),
    ("sign-in-on-behalf", "operator", S.ARRIVED, {}, REQUIRED),
    ("extend-deadline", "operator", S.OUTBOUND, {"hours": "0"}, "Ensure this value is greater than or equal to 1."),
    ("refund", "operator", S.PACKED, {"reason": "   "}, REQUIRED),
]


@pytest.mark.parametrize(
    ("slug", "persona", "start", "data", "reason"),
    ACTION_REFUSALS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(ACTION_REFUSALS)],
)
def test_a_refused_action_form_says_why_beside_it(
    client, personas, merchant_org, provider_org, slug, persona, start, data, reason
):
    order = advance(new_order(merchant_org, provider_org), start)
    client.force_login(personas[persona])
    payload = {f"{slug}-{k}": v for k, v in data.items()}
    payload[f"{slug}-version"] = order.version

    response = client.post(reverse("orders:action", args=[order.order_no, slug]), payload)

    assert response.status_code == 400
    assert reason in within(response, f"action-{slug}")
    assert Order.objects.get(pk=order.pk).version == order.version


def test_an_action_form_without_its_version_says_to_reload(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(provider)

    response = client.post(reverse("orders:action", args=[order.order_no, "sign-in"]), {})

    assert response.status_code == 400
    assert "This form is out of date: reload the order and try again." in within(response, "action-sign-in")


def test_an_unblock_note_too_long_says_so(client, operator, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    order = workflow.perform(
        order,
        Action.REPORT_BLOCKED,
        workflow.Actor.of_organisation(provider_org),
        stage=BlockedStage.ENTRY,
        reason="cannot enter",
    )
    client.force_login(operator)

    response = client.post(
        reverse("orders:action", args=[order.order_no, "unblock"]),
        {"unblock-version": order.version, "unblock-note": "x" * 2001},
    )

    assert response.status_code == 400
    assert "Ensure this value has at most 2000 characters" in within(response, "action-unblock")


@pytest.fixture
def pending(merchant_org, provider_org, platform):
    """A parcel unsigned for 30 hours, and its case (the provider owns it)."""
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    Order.objects.filter(pk=order.pk).update(inbound_delivered_at=timezone.now() - timedelta(hours=30))
    run_sweep()
    return RiskCase.objects.get(rule=Rule.PENDING_SIGN_IN)


@pytest.mark.parametrize(
    ("url", "data", "form", "reason"),
    [
        ("risks:case-resolve", {"note": ""}, "case-resolve", REQUIRED),
        ("risks:case-acknowledge", {"note": "x" * 2001}, "case-acknowledge", "at most 2000 characters"),
        ("risks:case-escalate", {"reason": " "}, "case-escalate", REQUIRED),
    ],
)
def test_a_refused_case_form_says_why_beside_it(client, provider, pending, url, data, form, reason):
    client.force_login(provider)

    response = client.post(reverse(url, args=[pending.pk]), data)

    assert response.status_code == 400
    assert reason in within(response, form)


def test_a_form_for_a_case_resolved_meanwhile_says_so(client, provider, pending):
    cases.resolve(pending, workflow.Actor.of_organisation(pending.owner), "done by phone")
    client.force_login(provider)

    response = client.post(reverse("risks:case-resolve", args=[pending.pk]), {"note": "fixed"})

    assert response.status_code == 400
    assert 'id="case-resolve"' not in response.content.decode(), "a resolved case offers no resolve form"
    assert "This case is already resolved." in page_text(response)


@pytest.fixture
def split_case(merchant_org, provider_org, platform):
    for _ in range(2):
        advance(new_order(merchant_org, provider_org, trade_no="T-R", sku="SKU-R"), S.SIGNED_IN)
    run_sweep()
    return RiskCase.objects.get(rule=Rule.SPLIT_ORDER)


@pytest.mark.parametrize("data", [{}, {"choice": "C"}], ids=["none", "unknown"])
def test_a_split_choice_without_a_choice_says_to_choose(client, merchant, split_case, data):
    client.force_login(merchant)

    response = client.post(reverse("risks:case-split-choice", args=[split_case.pk]), data)

    assert response.status_code == 400
    assert "Choose A or B." in within(response, "split-choice")


def test_escalating_an_order_without_a_reason_says_why(client, merchant, order):
    client.force_login(merchant)

    response = client.post(reverse("risks:order-escalate", args=[order.order_no]), {"reason": ""}, follow=True)

    assert "Say why the platform is needed." in page_text(response)
    assert not Escalation.objects.exists()


@pytest.fixture
def escalation(merchant_org, provider_org, platform):
    order = advance(new_order(merchant_org, provider_org), S.OUTBOUND)
    return cases.escalate_order(order, workflow.Actor.of_organisation(merchant_org), "the parcel is stuck")


@pytest.mark.parametrize(
    ("url", "data", "form", "reason"),
    [
        ("risks:escalation-comment", {"body": ""}, "escalation-comment", REQUIRED),
        ("risks:escalation-close", {"status": "resolved", "note": ""}, "escalation-close", REQUIRED),
        ("risks:escalation-close", {"status": "maybe", "note": "ok"}, "escalation-close", "Select a valid choice."),
    ],
)
def test_a_refused_escalation_form_says_why_beside_it(client, operator, escalation, url, data, form, reason):
    client.force_login(operator)

    response = client.post(reverse(url, args=[escalation.pk]), data)

    assert response.status_code == 400
    assert reason in within(response, form)


def test_an_operator_step_without_its_input_names_the_field(client, operator, escalation):
    client.force_login(operator)

    response = client.post(reverse("risks:escalation-act", args=[escalation.pk, "extend-deadline"]), {})

    assert response.status_code == 400
    assert f"Hours: {REQUIRED}" in page_text(response)


def test_closing_an_escalation_closed_meanwhile_says_so(client, operator, escalation):
    escalations.close(escalation, workflow.Actor.of_user(operator), "handled", status=EscalationStatus.RESOLVED)
    client.force_login(operator)

    response = client.post(
        reverse("risks:escalation-close", args=[escalation.pk]), {"status": "resolved", "note": "again"}
    )

    assert response.status_code == 400
    assert 'id="escalation-close"' not in response.content.decode()
    assert "This escalation is closed." in page_text(response)


def test_an_api_key_without_a_name_says_why(client, merchant):
    client.force_login(merchant)

    response = client.post(reverse("api-keys"), {"name": ""})

    assert response.status_code == 400
    assert REQUIRED in within(response, "api-key-form")
    assert not merchant.organisation.api_keys.exists()


def test_notification_choices_out_of_the_list_say_why(client, merchant):
    client.force_login(merchant)

    response = client.post(reverse("notification-preferences"), {"case_opened": "hourly"})

    assert "Select a valid choice." in within(response, "notification-preferences-form")


def test_a_scan_without_a_number_says_why(client, provider):
    client.force_login(provider)

    response = client.post(reverse("orders:station", args=["pending-sign-in"]), {"code": ""})

    assert REQUIRED in page_text(response)


def test_a_bulk_step_on_nothing_says_nothing_was_selected(client, provider):
    client.force_login(provider)

    response = client.post(reverse("orders:bulk", args=["pending-sign-in"]), {}, follow=True)

    assert "No order was selected." in page_text(response)
