"""SPEC §3, rule by rule: just below and just above each threshold, the owner
and severity of the case, and the case resolving itself when the condition clears."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import workflow
from orders.choices import Action, AppraisalResult, OrderState, SplitChoice
from orders.models import Order, OrderEvent, SplitGroup
from risks.choices import CaseStatus, EscalationStatus, Resolution, Rule, Severity
from risks.models import RiskCase, RiskSettings
from risks.sweep import run_sweep
from tests.factories import advance, new_order, scan

S = OrderState
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def backdate(order, **fields):
    Order.objects.filter(pk=order.pk).update(**fields)
    order.refresh_from_db()
    return order


def live(rule, order=None):
    cases = RiskCase.objects.live().filter(rule=rule)
    return cases.filter(order=order) if order is not None else cases


@pytest.fixture
def now():
    return timezone.now()


# --- pending_sign_in -------------------------------------------------------------


def test_pending_sign_in_just_below_and_above_24_hours(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    backdate(order, inbound_delivered_at=now - 24 * HOUR + MINUTE)
    run_sweep(now)
    assert not live(Rule.PENDING_SIGN_IN).exists()

    backdate(order, inbound_delivered_at=now - 24 * HOUR - MINUTE)
    run_sweep(now)
    case = live(Rule.PENDING_SIGN_IN).get()
    assert case.order == order and case.owner == provider_org
    assert case.severity == Severity.MEDIUM
    assert case.money_at_risk == order.amount


def test_pending_sign_in_is_high_within_72_hours_of_the_deadline(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=71)), S.ARRIVED)
    backdate(order, inbound_delivered_at=now - 30 * HOUR)
    run_sweep(now)
    assert live(Rule.PENDING_SIGN_IN).get().severity == Severity.HIGH


def test_pending_sign_in_counts_an_inbound_parcel_the_carrier_delivered(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org), S.INBOUND)
    backdate(order, inbound_delivered_at=now - 30 * HOUR)
    run_sweep(now)
    assert live(Rule.PENDING_SIGN_IN, order).exists()


def test_pending_sign_in_resolves_itself_when_the_parcel_is_signed_in(merchant_org, provider_org, now):
    order = backdate(advance(new_order(merchant_org, provider_org), S.ARRIVED), inbound_delivered_at=now - 30 * HOUR)
    run_sweep(now)
    case = live(Rule.PENDING_SIGN_IN).get()
    workflow.perform(order, Action.SIGN_IN, workflow.Actor.of_organisation(provider_org))
    # At once, in the sign-in's own transaction: no sweep in between.
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.resolution == Resolution.CONDITION_CLEARED
    assert case.events.last().kind == "resolved" and "cleared the condition" in case.events.last().note
    run_sweep(now)
    assert not live(Rule.PENDING_SIGN_IN).exists()


# --- flow_blocked ------------------------------------------------------------------


def test_a_blocked_flow_opens_a_high_platform_case_escalated_at_once(merchant_org, provider_org, platform):
    order = advance(new_order(merchant_org, provider_org), S.INSPECTED)
    provider = workflow.Actor.of_organisation(provider_org)
    workflow.perform(order, Action.REPORT_BLOCKED, provider, stage="packing", reason="packing station down")

    case = live(Rule.FLOW_BLOCKED).get()  # no sweep needed
    assert case.owner == platform and case.severity == Severity.HIGH
    assert case.status == CaseStatus.ESCALATED
    escalation = case.escalations.get()
    assert escalation.status == EscalationStatus.OPEN and escalation.raised_by_organisation == provider_org

    order.refresh_from_db()
    workflow.perform(order, Action.UNBLOCK, workflow.Actor.of_organisation(platform))
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.resolution == Resolution.CONDITION_CLEARED


def test_the_sweep_also_finds_a_blocked_flow(merchant_org, provider_org, platform, now):
    order = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    # Blocked in data from elsewhere, with no workflow step to react to.
    backdate(order, flow_blocked=True, blocked_stage="entry")
    assert run_sweep(now).opened == {Rule.FLOW_BLOCKED: 1}
    assert live(Rule.FLOW_BLOCKED).get().status == CaseStatus.ESCALATED


# --- offline_shipment -----------------------------------------------------------------


def test_an_offline_scan_opens_a_critical_case_escalated_at_once(merchant_org, provider_org, platform, now):
    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    assert not live(Rule.OFFLINE_SHIPMENT).exists()
    scan("YT1234567890", "picked_up", order_no=packed.order_no, carrier_name="YTO")
    case = live(Rule.OFFLINE_SHIPMENT).get()
    assert case.owner == platform and case.severity == Severity.CRITICAL
    assert case.status == CaseStatus.ESCALATED and case.escalations.exists()
    run_sweep(now)
    assert live(Rule.OFFLINE_SHIPMENT).count() == 1


def test_a_resolved_offline_case_reopens_only_for_a_new_offline_scan(
    merchant_org, provider_org, platform, operator, now
):
    from risks import cases

    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    scan("YT1234567890", "picked_up", order_no=packed.order_no, carrier_name="YTO")
    cases.resolve(live(Rule.OFFLINE_SHIPMENT).get(), workflow.Actor.of_user(operator), "talked to the provider")
    run_sweep(now)
    assert not live(Rule.OFFLINE_SHIPMENT).exists()
    scan("YT1234567891", "picked_up", order_no=packed.order_no, carrier_name="YTO")
    assert live(Rule.OFFLINE_SHIPMENT).count() == 1


# --- split orders and fees ---------------------------------------------------------------


def split(merchant_org, provider_org, n=2, **kwargs):
    return [new_order(merchant_org, provider_org, trade_no="T-SPLIT", sku="SKU-S", **kwargs) for _ in range(n)]


def test_one_order_is_no_split_group_and_two_are(merchant_org, provider_org, now):
    new_order(merchant_org, provider_org, trade_no="T-SPLIT", sku="SKU-S")
    run_sweep(now)
    assert not live(Rule.SPLIT_ORDER).exists()
    new_order(merchant_org, provider_org, trade_no="T-SPLIT", sku="SKU-S")
    run_sweep(now)
    case = live(Rule.SPLIT_ORDER).get()
    assert case.subject == "group:T-SPLIT/SKU-S" and case.owner == provider_org
    assert case.severity == Severity.MEDIUM


def test_a_split_case_resolves_itself_when_every_order_is_finished(merchant_org, provider_org, now):
    orders = split(merchant_org, provider_org)
    run_sweep(now)
    for order in orders:
        advance(order, S.REFUNDED)
    run_sweep(now)
    assert not live(Rule.SPLIT_ORDER).exists()
    assert RiskCase.objects.get(rule=Rule.SPLIT_ORDER).resolution == Resolution.CONDITION_CLEARED


def test_duplicate_appraisal_fee_is_critical_with_the_extra_fee_at_risk(merchant_org, provider_org, now):
    first, second = [advance(o, S.SIGNED_IN) for o in split(merchant_org, provider_org)]
    provider = workflow.Actor.of_organisation(provider_org)
    workflow.perform(first, Action.APPRAISE, provider, result=AppraisalResult.PASS)
    run_sweep(now)
    assert not live(Rule.DUPLICATE_APPRAISAL_FEE).exists()
    # Data from elsewhere can carry a second result the workflow would refuse.
    backdate(second, appraisal_result=AppraisalResult.FAIL)
    run_sweep(now)
    case = live(Rule.DUPLICATE_APPRAISAL_FEE).get()
    assert case.severity == Severity.CRITICAL and case.owner == provider_org
    assert case.money_at_risk == Decimal("30.00")
    backdate(second, appraisal_result=AppraisalResult.NOT_REQUIRED)
    run_sweep(now)
    assert not live(Rule.DUPLICATE_APPRAISAL_FEE).exists()


def test_duplicate_logistics_fee_unless_the_merchant_chose_b(merchant_org, provider_org, now):
    first, second = split(merchant_org, provider_org)
    advance(first, S.OUTBOUND)
    run_sweep(now)
    assert not live(Rule.DUPLICATE_LOGISTICS_FEE).exists()
    advance(second, S.OUTBOUND, result=AppraisalResult.NOT_REQUIRED)
    run_sweep(now)
    case = live(Rule.DUPLICATE_LOGISTICS_FEE).get()
    assert case.severity == Severity.HIGH and case.money_at_risk == Decimal("12.00")
    SplitGroup.objects.filter(trade_no="T-SPLIT").update(choice=SplitChoice.KEEP_NOT_REQUIRED)
    run_sweep(now)
    assert not live(Rule.DUPLICATE_LOGISTICS_FEE).exists()


def appraised_at(order, when):
    """Move the recorded appraisal back in time, as if it happened then."""
    OrderEvent.objects.filter(order=order, action=Action.APPRAISE).update(occurred_at=when)


def test_unconfirmable_split_order_counts_from_the_appraisal_not_the_last_step(merchant_org, provider_org, now):
    _first, extra = split(merchant_org, provider_org)
    extra = advance(extra, S.APPRAISED, result=AppraisalResult.NOT_REQUIRED)
    appraised_at(extra, now - 30 * HOUR)
    # A later step without a waybill (inspected an hour ago) does not restart the clock.
    extra = workflow.perform(extra, Action.INSPECT, workflow.Actor.of_organisation(provider_org))
    backdate(extra, state_changed_at=now - HOUR)
    run_sweep(now)
    assert live(Rule.UNCONFIRMABLE_SPLIT_ORDER).get().order == extra


@pytest.mark.parametrize("stop", [S.APPRAISED, S.WAYBILL_PRINTED])
def test_unconfirmable_split_order_after_24_hours(merchant_org, provider_org, now, stop):
    _first, extra = split(merchant_org, provider_org)
    extra = advance(extra, stop, result=AppraisalResult.NOT_REQUIRED)
    changed = now - 24 * HOUR + MINUTE
    backdate(extra, state_changed_at=changed, waybill_printed_at=changed if extra.waybill_no else None)
    appraised_at(extra, changed)
    run_sweep(now)
    assert not live(Rule.UNCONFIRMABLE_SPLIT_ORDER).exists()
    changed = now - 24 * HOUR - MINUTE
    backdate(extra, state_changed_at=changed, waybill_printed_at=changed if extra.waybill_no else None)
    appraised_at(extra, changed)
    run_sweep(now)
    case = live(Rule.UNCONFIRMABLE_SPLIT_ORDER).get()
    assert case.order == extra and case.severity == Severity.HIGH and case.owner == provider_org
    advance(extra, S.OUTBOUND)
    run_sweep(now)
    assert not live(Rule.UNCONFIRMABLE_SPLIT_ORDER).exists()


# --- stalled -------------------------------------------------------------------------------

SLA = [
    (S.AWAITING_SHIPMENT, 48, "merchant"),
    (S.INBOUND, 96, "merchant"),
    (S.SIGNED_IN, 24, "provider"),
    (S.APPRAISED, 24, "provider"),
    (S.INSPECTED, 12, "provider"),
    (S.PACKED, 12, "provider"),
    (S.WAYBILL_PRINTED, 24, "provider"),
    (S.OUTBOUND, 120, "platform"),
]


@pytest.mark.parametrize(("state", "hours", "owner"), SLA)
def test_stalled_past_each_states_sla_with_its_owner(merchant_org, provider_org, platform, now, state, hours, owner):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=30)), state, signed_by_scan=False)
    backdate(order, state_changed_at=now - hours * HOUR + MINUTE)
    run_sweep(now)
    assert not live(Rule.STALLED).exists()
    backdate(order, state_changed_at=now - hours * HOUR - MINUTE)
    run_sweep(now)
    case = live(Rule.STALLED).get()
    expected = {"merchant": merchant_org, "provider": provider_org, "platform": platform}[owner]
    assert case.owner == expected and case.severity == Severity.MEDIUM
    assert case.details["state"] == state


def test_a_stalled_case_follows_the_order_into_its_next_state(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=30)), S.SIGNED_IN)
    backdate(order, state_changed_at=now - 30 * HOUR)
    run_sweep(now)
    first = live(Rule.STALLED).get()
    order = workflow.perform(
        order, Action.APPRAISE, workflow.Actor.of_organisation(provider_org), result=AppraisalResult.PASS
    )
    run_sweep(now)
    first.refresh_from_db()
    assert first.resolution == Resolution.CONDITION_CLEARED
    backdate(order, state_changed_at=now - 30 * HOUR)
    run_sweep(now)
    assert live(Rule.STALLED).get().details["state"] == S.APPRAISED


def test_a_step_closes_the_cases_it_cleared_from_the_rules_rows_without_building_hits(
    merchant_org, provider_org, platform, now, monkeypatch
):
    """After a step, each rule with a live case on the order is asked about it
    through its rows alone: the stalled case closes with the step, the
    deadline at risk stays, and no rule builds its hits to tell."""
    import dataclasses
    from types import MappingProxyType

    from risks import rules

    order = advance(new_order(merchant_org, provider_org, deadline_in=20 * HOUR), S.SIGNED_IN)
    backdate(order, state_changed_at=now - 30 * HOUR)
    run_sweep(now)
    stalled, at_risk = live(Rule.STALLED, order).get(), live(Rule.DEADLINE_AT_RISK, order).get()

    def built(ctx, orders=None):
        raise AssertionError("hits built where the rows answer")

    asked = {
        code: dataclasses.replace(rules.RULES[code], evaluate=built) for code in (Rule.STALLED, Rule.DEADLINE_AT_RISK)
    }
    monkeypatch.setattr(rules, "RULES", MappingProxyType({**rules.RULES, **asked}))
    workflow.perform(order, Action.APPRAISE, workflow.Actor.of_organisation(provider_org), result=AppraisalResult.PASS)

    stalled.refresh_from_db()
    at_risk.refresh_from_db()
    assert (stalled.status, stalled.resolution) == (CaseStatus.RESOLVED, Resolution.CONDITION_CLEARED)
    assert at_risk.status != CaseStatus.RESOLVED and at_risk.resolved_at is None


def test_thresholds_are_read_from_the_settings_row(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=30)), S.SIGNED_IN)
    backdate(order, state_changed_at=now - 10 * HOUR)
    run_sweep(now)
    assert not live(Rule.STALLED).exists()
    RiskSettings.objects.create(pk=1, sla_signed_in_hours=8)
    run_sweep(now)
    assert live(Rule.STALLED, order).exists()


# --- deadline_at_risk ------------------------------------------------------------------------


def test_deadline_at_risk_within_48_hours_until_delivered(merchant_org, provider_org, platform, now):
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=48, minutes=2))
    run_sweep(now)
    assert not live(Rule.DEADLINE_AT_RISK).exists()
    backdate(order, auto_confirm_at=now + 48 * HOUR - MINUTE)
    run_sweep(now)
    case = live(Rule.DEADLINE_AT_RISK).get()
    assert case.owner == platform and case.severity == Severity.HIGH
    assert case.money_at_risk == Decimal("1234.50")
    advance(order, S.DELIVERED)
    run_sweep(now)
    assert not live(Rule.DEADLINE_AT_RISK).exists()


def test_extending_the_deadline_clears_the_risk(merchant_org, provider_org, platform, now):
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep(now)
    assert live(Rule.DEADLINE_AT_RISK).exists()
    workflow.perform(order, Action.EXTEND_DEADLINE, workflow.Actor.of_organisation(platform), hours=72)
    run_sweep(now)
    assert not live(Rule.DEADLINE_AT_RISK).exists()


# --- escalation of overdue cases ----------------------------------------------------------------


def test_a_case_still_open_12_hours_after_it_is_due_escalates_once(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=30)), S.SIGNED_IN)
    backdate(order, state_changed_at=now - 30 * HOUR)
    run_sweep(now)
    case = live(Rule.STALLED).get()
    run_sweep(case.due_at + 12 * HOUR - MINUTE)
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    run_sweep(case.due_at + 12 * HOUR + MINUTE)
    run_sweep(case.due_at + 13 * HOUR)
    case.refresh_from_db()
    assert case.status == CaseStatus.ESCALATED
    escalation = case.escalations.get()
    assert escalation.raised_by_rule == Rule.STALLED and escalation.raised_by_organisation == provider_org


def test_an_escalated_case_still_resolves_when_its_condition_clears(merchant_org, provider_org, now):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=30)), S.SIGNED_IN)
    backdate(order, state_changed_at=now - 30 * HOUR)
    run_sweep(now)
    case = live(Rule.STALLED).get()
    run_sweep(case.due_at + 13 * HOUR)
    workflow.perform(order, Action.APPRAISE, workflow.Actor.of_organisation(provider_org), result=AppraisalResult.PASS)
    run_sweep(case.due_at + 13 * HOUR)
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
