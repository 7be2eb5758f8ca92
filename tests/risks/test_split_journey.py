"""The split-order journey end to end, with choice B and with choice A (SPEC §3)."""

import pytest
from django.urls import reverse

from orders import errors, workflow
from orders.choices import Action, AppraisalResult, OrderState
from orders.fees import group_fees
from orders.models import OrderEvent, SplitGroup
from risks.choices import CaseEventKind, CaseStatus, Resolution, Rule
from risks.models import RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order

S = OrderState


@pytest.fixture
def group(merchant_org, provider_org, platform):
    return [advance(new_order(merchant_org, provider_org, trade_no="T-J", sku="SKU-J"), S.SIGNED_IN) for _ in range(3)]


def split_case():
    return RiskCase.objects.get(rule=Rule.SPLIT_ORDER, subject="group:T-J/SKU-J")


def test_choice_b_keeps_the_orders_and_resolves_when_every_waybill_is_delivered(client, group, merchant, provider_org):
    run_sweep()
    case = split_case()
    assert case.status == CaseStatus.OPEN and case.details["orders"] == 3
    provider = workflow.Actor.of_organisation(provider_org)
    first, second, third = group
    first = workflow.perform(first, Action.APPRAISE, provider, result=AppraisalResult.PASS)
    with pytest.raises(errors.SplitGroupAlreadyAppraised):
        workflow.perform(second, Action.APPRAISE, provider, result=AppraisalResult.PASS)

    client.force_login(merchant)
    page = client.get(reverse("risks:case", args=[case.pk])).content.decode()
    assert "you pay one appraisal fee and a logistics fee for each waybill" in page.lower()
    client.post(reverse("risks:case-split-choice", args=[case.pk]), {"choice": "B"})
    assert case.events.filter(kind="split_choice").exists()

    # The choice is on every order's log: an order read before it is out of date.
    first.refresh_from_db()
    second.refresh_from_db()
    second = workflow.perform(second, Action.APPRAISE, provider, result=AppraisalResult.NOT_REQUIRED)
    advance(second, S.DELIVERED, result=AppraisalResult.NOT_REQUIRED)
    third.refresh_from_db()
    third = advance(
        workflow.perform(third, Action.APPRAISE, provider, result=AppraisalResult.NOT_REQUIRED), S.WAYBILL_PRINTED
    )
    run_sweep()
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN, "one extra waybill is not picked up and delivered yet"

    advance(third, S.DELIVERED, result=AppraisalResult.NOT_REQUIRED)
    advance(first, S.DELIVERED)
    run_sweep()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.resolution == Resolution.CONDITION_CLEARED
    assert not RiskCase.objects.live().filter(rule=Rule.DUPLICATE_LOGISTICS_FEE).exists()
    fees = group_fees("T-J", "SKU-J")
    assert fees.logistics_charged == fees.logistics_expected == 3 * provider_org.logistics_fee


def test_choice_a_refunds_the_extra_orders(api, keys, group, merchant, platform, provider_org):
    run_sweep()
    case = split_case()
    response = api.as_key(keys["merchant"]).post(
        "/api/v1/split-groups/T-J/SKU-J/choose/", {"choice": "A"}, format="json"
    )
    assert response.status_code == 200 and response.json()["choice"] == "A"

    # The choice is on every order's log: an order read before it is out of date.
    for order in group:
        order.refresh_from_db()
    first, second, third = group
    workflow.perform(first, Action.APPRAISE, workflow.Actor.of_organisation(provider_org), result=AppraisalResult.PASS)
    operator = workflow.Actor.of_organisation(platform)
    workflow.perform(second, Action.REFUND, operator, reason="re-bought as a normal order")
    run_sweep()
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    workflow.perform(third, Action.REFUND, operator, reason="re-bought as a normal order")
    run_sweep()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


def test_only_the_merchant_of_the_group_chooses(api, keys, group):
    for persona in ("provider", "platform"):
        response = api.as_key(keys[persona]).post(
            "/api/v1/split-groups/T-J/SKU-J/choose/", {"choice": "B"}, format="json"
        )
        assert response.status_code == 403, persona
    other = api.as_key(keys["merchant2"]).post("/api/v1/split-groups/T-J/SKU-J/choose/", {"choice": "B"}, format="json")
    assert other.status_code == 404
    bad = api.as_key(keys["merchant"]).post("/api/v1/split-groups/T-J/SKU-J/choose/", {"choice": "C"}, format="json")
    assert bad.status_code == 400 and "choice" in bad.json()["fields"]


def test_choosing_writes_an_event_on_every_order_and_records_the_choice_on_the_case(client, group, merchant):
    run_sweep()
    case = split_case()
    client.force_login(merchant)

    client.post(reverse("risks:case-split-choice", args=[case.pk]), {"choice": "A"})

    for order in group:
        event = order.events.order_by("-seq").first()
        assert (event.action, event.actor_user, event.payload["params"]) == (
            Action.SPLIT_CHOICE,
            merchant,
            {"choice": "A"},
        )
    recorded = case.events.get(kind=CaseEventKind.SPLIT_CHOICE)
    assert (recorded.actor_user, recorded.note) == (merchant, "Refund and re-buy as normal orders")
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN, "the extra orders are not refunded yet"


def test_a_choice_the_group_already_matches_resolves_its_case_at_once(api, keys, merchant_org, provider_org, platform):
    kept = advance(new_order(merchant_org, provider_org, trade_no="T-R", sku="SKU-R"), S.SIGNED_IN)
    advance(new_order(merchant_org, provider_org, trade_no="T-R", sku="SKU-R"), S.REFUNDED)
    run_sweep()
    case = RiskCase.objects.get(rule=Rule.SPLIT_ORDER, subject="group:T-R/SKU-R")

    response = api.as_key(keys["merchant"]).post(
        "/api/v1/split-groups/T-R/SKU-R/choose/", {"choice": "A"}, format="json"
    )

    assert response.status_code == 200
    case.refresh_from_db()
    assert (case.status, case.resolution) == (CaseStatus.RESOLVED, Resolution.CONDITION_CLEARED)
    assert list(case.events.values_list("kind", flat=True)) == ["opened", "split_choice", "resolved"]
    assert kept.events.filter(action=Action.SPLIT_CHOICE).count() == 1


def test_choice_b_clears_a_duplicate_logistics_fee_case_at_once(client, merchant, merchant_org, provider_org, platform):
    advance(new_order(merchant_org, provider_org, trade_no="T-L", sku="SKU-L"), S.OUTBOUND)
    second = new_order(merchant_org, provider_org, trade_no="T-L", sku="SKU-L")
    advance(second, S.OUTBOUND, result=AppraisalResult.NOT_REQUIRED)
    run_sweep()
    fee_case = RiskCase.objects.get(rule=Rule.DUPLICATE_LOGISTICS_FEE)
    split = RiskCase.objects.get(rule=Rule.SPLIT_ORDER, subject="group:T-L/SKU-L")
    client.force_login(merchant)

    client.post(reverse("risks:case-split-choice", args=[split.pk]), {"choice": "B"})

    fee_case.refresh_from_db()
    split.refresh_from_db()
    assert fee_case.status == CaseStatus.RESOLVED
    assert split.status == CaseStatus.OPEN, "the kept order is not delivered yet"


def test_a_choice_whose_case_update_fails_is_not_recorded(monkeypatch, group, merchant):
    from risks import cases, reactions

    run_sweep()

    def refuse(*args, **kwargs):
        raise RuntimeError("the case could not be written")

    monkeypatch.setattr(cases, "record", refuse)
    with pytest.raises(RuntimeError):
        reactions.choose_split("T-J", "SKU-J", "B", workflow.Actor.of_user(merchant))

    assert SplitGroup.objects.get(trade_no="T-J", sku="SKU-J").choice == ""
    assert not OrderEvent.objects.filter(order__in=group, action=Action.SPLIT_CHOICE).exists()
