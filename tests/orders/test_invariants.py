"""SPEC §2.2: each invariant the workflow enforces, one by one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import errors, expiry, workflow
from orders.choices import TERMINAL_STATES, Action, AppraisalResult, OrderState, ScanOutcome, ScanStatus
from orders.events import replay_order, snapshot
from orders.models import AppendOnlyError, CarrierScan, FeeCharge, Order, OrderEvent
from portal.choices import EventSource
from tests.factories import advance, new_order, scan

S = OrderState


def provider_of(order):
    return workflow.Actor.of_organisation(order.provider, EventSource.WEB)


# 1. No offline shipping -------------------------------------------------------


def test_only_the_carrier_reaches_outbound_and_only_by_the_online_waybill():
    into_outbound = [m for m in workflow.TRANSITIONS if m.target == S.OUTBOUND and m.source != S.OUTBOUND]
    assert [(m.action, m.source, m.roles, m.when) for m in into_outbound] == [
        (Action.CARRIER_PICKUP, S.WAYBILL_PRINTED, frozenset({"system"}), "online_waybill")
    ]


def test_scan_under_another_number_is_recorded_and_moves_nothing(order):
    packed = advance(order, S.PACKED)

    record = scan("YT9988776655", ScanStatus.PICKED_UP, order_no=packed.order_no, carrier_name="YTO")

    packed.refresh_from_db()
    assert packed.state == S.PACKED
    assert record.outcome == ScanOutcome.OFFLINE
    event = packed.events.order_by("-seq").first()
    assert event.action == Action.OFFLINE_SHIPMENT
    assert event.payload["params"]["tracking_no"] == "YT9988776655"
    assert event.from_state == event.to_state == S.PACKED


def test_pickup_under_another_number_than_the_waybill_is_refused(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    carrier = workflow.Actor.system(EventSource.CARRIER)
    with pytest.raises(errors.NotOnlineWaybill):
        workflow.perform(printed, Action.CARRIER_PICKUP, carrier, carrier="SF", tracking_no="SF0000000000")
    printed.refresh_from_db()
    assert printed.state == S.WAYBILL_PRINTED


def test_offline_scan_after_the_waybill_was_printed_leaves_the_order_awaiting_pickup(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    scan("JD0000011111", ScanStatus.PICKED_UP, order_no=printed.order_no, carrier_name="JD")
    printed.refresh_from_db()
    assert printed.state == S.WAYBILL_PRINTED
    assert printed.picked_up_at is None
    assert not FeeCharge.objects.filter(order=printed).exists()


def test_pickup_of_the_online_waybill_ships_the_order(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    scan(printed.waybill_no, ScanStatus.PICKED_UP)
    printed.refresh_from_db()
    assert printed.state == S.OUTBOUND


# 2. A blocked flow stays online --------------------------------------------------


def test_blocked_order_cannot_print_a_waybill_until_an_operator_unblocks_it(order, platform):
    packed = advance(order, S.PACKED)
    blocked = workflow.perform(
        packed, Action.REPORT_BLOCKED, provider_of(order), stage="packing", reason="packing station rejects it"
    )
    assert blocked.flow_blocked and blocked.blocked_stage == "packing"

    with pytest.raises(errors.FlowBlocked) as refused:
        workflow.perform(blocked, Action.PRINT_WAYBILL, provider_of(order))
    assert "offline" in refused.value.message
    blocked.refresh_from_db()
    assert blocked.state == S.PACKED and blocked.waybill_no == ""

    with pytest.raises(errors.NotAllowed):
        workflow.perform(blocked, Action.UNBLOCK, provider_of(order))
    unblocked = workflow.perform(blocked, Action.UNBLOCK, workflow.Actor.of_organisation(platform))
    assert not unblocked.flow_blocked and unblocked.blocked_stage == ""

    printed = workflow.perform(unblocked, Action.PRINT_WAYBILL, provider_of(order))
    assert printed.state == S.WAYBILL_PRINTED and printed.waybill_no


def test_a_blocked_order_cannot_be_reported_twice_nor_an_unblocked_one_unblocked(order, platform):
    signed = advance(order, S.SIGNED_IN)
    blocked = workflow.perform(signed, Action.REPORT_BLOCKED, provider_of(order), stage="entry", reason="ERP error")
    with pytest.raises(errors.AlreadyBlocked):
        workflow.perform(blocked, Action.REPORT_BLOCKED, provider_of(order), stage="entry", reason="again")
    free = workflow.perform(blocked, Action.UNBLOCK, workflow.Actor.of_organisation(platform))
    with pytest.raises(errors.NotBlocked):
        workflow.perform(free, Action.UNBLOCK, workflow.Actor.of_organisation(platform))


@pytest.mark.parametrize("stage", ["", "shipping", None])
def test_blocked_report_needs_a_known_stage_and_a_reason(order, stage):
    signed = advance(order, S.SIGNED_IN)
    with pytest.raises(errors.InvalidInput):
        workflow.perform(signed, Action.REPORT_BLOCKED, provider_of(order), stage=stage, reason="x")
    with pytest.raises(errors.InvalidInput):
        workflow.perform(signed, Action.REPORT_BLOCKED, provider_of(order), stage="entry", reason="  ")


# 3. One appraisal fee per item -----------------------------------------------------


@pytest.fixture
def split_pair(merchant_org, provider_org, platform):
    first = new_order(merchant_org, provider_org, trade_no="T-SPLIT", sku="SKU-X")
    second = new_order(merchant_org, provider_org, trade_no="T-SPLIT", sku="SKU-X")
    return advance(first, S.SIGNED_IN), advance(second, S.SIGNED_IN)


@pytest.mark.parametrize("second_result", [AppraisalResult.PASS, AppraisalResult.FAIL])
def test_second_pass_or_fail_in_a_split_group_is_refused(split_pair, second_result):
    first, second = split_pair
    workflow.perform(first, Action.APPRAISE, provider_of(first), result=AppraisalResult.PASS)

    with pytest.raises(errors.SplitGroupAlreadyAppraised) as refused:
        workflow.perform(second, Action.APPRAISE, provider_of(second), result=second_result)

    assert first.order_no in refused.value.message
    assert "No appraisal needed" in refused.value.message
    second.refresh_from_db()
    assert second.state == S.SIGNED_IN and second.appraisal_result == ""


def test_not_required_is_accepted_beside_a_pass(split_pair):
    first, second = split_pair
    workflow.perform(first, Action.APPRAISE, provider_of(first), result=AppraisalResult.PASS)
    done = workflow.perform(second, Action.APPRAISE, provider_of(second), result=AppraisalResult.NOT_REQUIRED)
    assert done.appraisal_result == AppraisalResult.NOT_REQUIRED


def test_the_same_trade_with_another_sku_is_not_a_split_group(merchant_org, provider_org, platform):
    a = advance(new_order(merchant_org, provider_org, trade_no="T-MIX", sku="SKU-A"), S.SIGNED_IN)
    b = advance(new_order(merchant_org, provider_org, trade_no="T-MIX", sku="SKU-B"), S.SIGNED_IN)
    workflow.perform(a, Action.APPRAISE, provider_of(a), result=AppraisalResult.PASS)
    assert workflow.perform(b, Action.APPRAISE, provider_of(b), result=AppraisalResult.PASS).state == S.APPRAISED


# 4. Every change is an event -------------------------------------------------------


def test_every_step_of_a_whole_life_writes_one_event_and_the_log_rebuilds_the_order(order):
    done = advance(order, S.COMPLETED)
    events = list(done.events.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, done.version + 1))
    assert [e.action for e in events] == [
        Action.CREATE,
        Action.SHIP,
        Action.CARRIER_DELIVERY,
        Action.SIGN_IN,
        Action.APPRAISE,
        Action.INSPECT,
        Action.PACK,
        Action.PRINT_WAYBILL,
        Action.CARRIER_PICKUP,
        Action.CARRIER_DELIVERY,
        Action.CONFIRM,
    ]
    assert {e.source for e in events} == {"platform", "api", "carrier"}
    assert replay_order(done) == snapshot(done)


def test_a_refused_action_writes_no_event(order):
    with pytest.raises(errors.InvalidTransition):
        workflow.perform(order, Action.PACK, provider_of(order))
    assert OrderEvent.objects.filter(order=order).count() == 1


def test_events_cannot_be_changed_or_deleted(order):
    event = order.events.get()
    event.payload = {"forged": True}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert order.events.get().payload != {"forged": True}


def test_an_event_records_who_acted_and_through_which_channel(order, merchant):
    shipped = workflow.perform(
        order, Action.SHIP, workflow.Actor.of_user(merchant), carrier="SF", tracking_no="SF1234567890"
    )
    event = shipped.events.get(seq=shipped.version)
    assert event.actor_user == merchant
    assert event.actor_organisation == order.merchant
    assert event.source == EventSource.WEB
    assert event.payload["params"] == {"carrier": "SF", "tracking_no": "SF1234567890"}


# 5. Races have one winner ---------------------------------------------------------------


def test_acting_on_a_stale_copy_is_a_conflict_and_writes_nothing(order):
    arrived = advance(order, S.ARRIVED)
    mine, theirs = Order.objects.get(pk=arrived.pk), Order.objects.get(pk=arrived.pk)
    workflow.perform(mine, Action.SIGN_IN, provider_of(order))

    with pytest.raises(errors.Conflict) as refused:
        workflow.perform(theirs, Action.SIGN_IN, provider_of(order))

    assert "Reload" in refused.value.message
    assert OrderEvent.objects.filter(order=order, action=Action.SIGN_IN).count() == 1


# 6. Terminal is terminal ----------------------------------------------------------------


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_no_action_leaves_a_terminal_state(terminal, order, platform):
    done = advance(order, terminal)
    platform_actor = workflow.Actor.of_organisation(platform)
    for action, actor, params in [
        (Action.REFUND, platform_actor, {"reason": "x"}),
        (Action.EXTEND_DEADLINE, platform_actor, {"hours": 5}),
        (Action.CONFIRM, platform_actor, {}),
        (Action.EXPIRE, workflow.Actor.system(EventSource.SWEEP), {}),
        (Action.SIGN_IN, provider_of(order), {}),
    ]:
        with pytest.raises(errors.OrderIsTerminal):
            workflow.perform(done, action, actor, **params)
    scan("SF5555555555", ScanStatus.PICKED_UP, order_no=done.order_no)
    assert expiry.apply_deadlines(now=timezone.now() + timedelta(days=365)) == {"completed": 0, "auto_refunded": 0}
    done.refresh_from_db()
    assert done.state == terminal
    assert CarrierScan.objects.get(tracking_no="SF5555555555").outcome == ScanOutcome.IGNORED


# 7. Event time is the carrier's time -----------------------------------------------------


def test_clocks_run_from_the_carriers_time_not_the_arrival_time(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    picked = timezone.now() - timedelta(hours=7)

    scan(printed.waybill_no, ScanStatus.PICKED_UP, occurred_at=picked)

    printed.refresh_from_db()
    assert printed.picked_up_at == picked
    assert printed.state_changed_at == picked
    event = printed.events.get(seq=printed.version)
    assert event.occurred_at == picked
    assert event.recorded_at > picked + timedelta(hours=6)
    assert FeeCharge.objects.get(order=printed).charged_at == picked


def test_a_carrier_time_without_an_offset_is_refused(order):
    shipped = advance(order, S.INBOUND)
    with pytest.raises(errors.InvalidInput):
        scan(shipped.inbound_tracking_no, ScanStatus.DELIVERED, occurred_at=timezone.now().replace(tzinfo=None))
