"""SPEC §2.1 row by row: each allowed move, and the moves refused for the
wrong state and for the wrong actor."""

import pytest

from orders import errors, workflow
from orders.choices import OPEN_STATES, TERMINAL_STATES, Action, AppraisalResult, OrderState
from orders.models import Order, OrderEvent
from portal.choices import EventSource
from tests.factories import advance, new_order

S = OrderState
ROLES = ("merchant", "provider", "platform", "system")


def _id(move):
    return f"{move.action}:{move.source}->{move.target}" + (f"[{move.when}]" if move.when else "")


def _result_for(move):
    if move.when == "not_required":
        return AppraisalResult.NOT_REQUIRED
    if move.when == "failed":
        return AppraisalResult.FAIL
    return AppraisalResult.PASS


def _order_in(state, merchant_org, provider_org, result=AppraisalResult.PASS):
    order = new_order(merchant_org, provider_org)
    if state in (S.REFUNDED, S.AUTO_REFUNDED):
        return advance(order, state)
    if state == S.COMPLETED:
        return advance(order, S.COMPLETED, result=result)
    return advance(order, state, result=result)


def _params(move, order):
    action = move.action
    if action == Action.SHIP:
        return {"carrier": "SF", "tracking_no": "SF-NEW-0001"}
    if action == Action.CARRIER_PICKUP:
        number = order.waybill_no if move.source == S.WAYBILL_PRINTED else "ZT-EARLY-0001"
        return {"carrier": "SF", "tracking_no": number}
    if action == Action.CARRIER_DELIVERY:
        return {"carrier": "SF", "tracking_no": order.waybill_no or order.inbound_tracking_no or "SF-NONE-0001"}
    if action == Action.OFFLINE_SHIPMENT:
        return {"carrier": "YTO", "tracking_no": "YT-OFFLINE-1", "status": "picked_up"}
    if action == Action.APPRAISE:
        return {"result": AppraisalResult.PASS}
    if action == Action.REPORT_BLOCKED:
        return {"stage": "entry", "reason": "ERP refuses the order"}
    if action == Action.EXTEND_DEADLINE:
        return {"hours": 24}
    if action == Action.REFUND:
        return {"reason": "buyer asked"}
    if action == Action.SIGN_IN_ON_BEHALF:
        return {"note": "ERP refuses to sign"}
    if action == Action.VERIFY_PENDING:
        return {"outcome": "still_in_transit" if move.when == "verified_unsigned" else "signed", "note": "checked"}
    return {}


def _actor(role, order, *, other=None):
    if role == "system":
        return workflow.Actor.system(EventSource.CARRIER)
    if role == "platform":
        from portal.models import Organisation

        return workflow.Actor.of_organisation(Organisation.objects.get(code="PLATFORM"))
    org = order.merchant if role == "merchant" else order.provider
    return workflow.Actor.of_organisation(other or org)


def _prepare(move, order):
    if move.action == Action.UNBLOCK:
        provider = workflow.Actor.of_organisation(order.provider)
        return workflow.perform(order, Action.REPORT_BLOCKED, provider, stage="packing", reason="printer down")
    return order


@pytest.mark.parametrize("move", workflow.TRANSITIONS, ids=_id)
def test_allowed_move_reaches_its_target_and_writes_one_event(move, merchant_org, provider_org, platform):
    order = _prepare(move, _order_in(move.source, merchant_org, provider_org, _result_for(move)))
    (role,) = move.roles
    before = OrderEvent.objects.filter(order=order).count()

    moved = workflow.perform(order, move.action, _actor(role, order), **_params(move, order))

    assert moved.state == move.target
    assert OrderEvent.objects.filter(order=order).count() == before + 1
    event = OrderEvent.objects.get(order=order, seq=moved.version)
    assert (event.action, event.from_state, event.to_state) == (move.action, move.source, move.target)


@pytest.mark.parametrize("move", workflow.TRANSITIONS, ids=_id)
def test_move_is_refused_to_every_other_role(move, merchant_org, provider_org, platform):
    order = _prepare(move, _order_in(move.source, merchant_org, provider_org, _result_for(move)))
    for role in ROLES:
        if role in move.roles:
            continue
        with pytest.raises(errors.NotAllowed):
            workflow.perform(order, move.action, _actor(role, order), **_params(move, order))
    order.refresh_from_db()
    assert order.state == move.source
    assert OrderEvent.objects.filter(order=order).count() == order.version


@pytest.mark.parametrize("move", [m for m in workflow.TRANSITIONS if m.roles & {"merchant", "provider"}], ids=_id)
def test_merchant_and_provider_moves_are_refused_to_another_organisation_of_the_same_kind(
    move, merchant_org, merchant2_org, provider_org, provider2_org, platform
):
    order = _prepare(move, _order_in(move.source, merchant_org, provider_org, _result_for(move)))
    (role,) = move.roles
    stranger = merchant2_org if role == "merchant" else provider2_org
    with pytest.raises(errors.NotAllowed):
        workflow.perform(order, move.action, _actor(role, order, other=stranger), **_params(move, order))
    order.refresh_from_db()
    assert order.state == move.source


@pytest.mark.parametrize("action", sorted({m.action for m in workflow.TRANSITIONS}))
def test_action_is_refused_from_every_state_it_does_not_start_from(action, merchant_org, provider_org, platform):
    sources = {m.source for m in workflow.TRANSITIONS if m.action == action}
    (role,) = workflow.roles_for(action)
    checked = 0
    for state in OrderState:
        if state in sources:
            continue
        order = _order_in(state, merchant_org, provider_org)
        move = workflow.Move(action, state, state, frozenset({role}))
        expected = errors.OrderIsTerminal if state in TERMINAL_STATES else errors.InvalidTransition
        with pytest.raises(expected):
            workflow.perform(order, action, _actor(role, order), **_params(move, order))
        order.refresh_from_db()
        assert order.state == state
        assert OrderEvent.objects.filter(order=order).count() == order.version
        checked += 1
    assert checked == len(OrderState) - len(sources)


def test_printing_from_appraised_needs_no_appraisal_needed(order):
    appraised = advance(order, S.APPRAISED, result=AppraisalResult.PASS)
    with pytest.raises(errors.InvalidTransition):
        workflow.perform(appraised, Action.PRINT_WAYBILL, workflow.Actor.of_organisation(order.provider))


def test_failed_item_delivered_back_is_returned_not_delivered(order):
    outbound = advance(order, S.OUTBOUND, result=AppraisalResult.FAIL)
    done = advance(outbound, S.RETURNED)
    assert done.state == S.RETURNED
    assert done.delivered_at is not None


def test_every_open_state_can_be_refunded_and_extended_by_the_platform_only():
    refund_sources = {m.source for m in workflow.TRANSITIONS if m.action == Action.REFUND}
    extend_sources = {m.source for m in workflow.TRANSITIONS if m.action == Action.EXTEND_DEADLINE}
    assert refund_sources == set(OPEN_STATES) == extend_sources
    assert workflow.roles_for(Action.REFUND) == {"platform"}
    assert workflow.roles_for(Action.EXTEND_DEADLINE) == {"platform"}


def test_unknown_action_and_unknown_fields_are_refused_as_input(order):
    provider = workflow.Actor.of_organisation(order.provider)
    with pytest.raises(errors.InvalidInput):
        workflow.perform(order, "teleport", provider)
    with pytest.raises(errors.InvalidInput) as refused:
        workflow.perform(order, Action.SIGN_IN, provider, tracking_no="X")
    assert refused.value.field == "tracking_no"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"carrier": "SF", "tracking_no": "no spaces allowed"}, "tracking_no"),
        ({"carrier": "", "tracking_no": "SF12345678"}, "carrier"),
        ({"carrier": "S\x00F", "tracking_no": "SF12345678"}, "carrier"),
        ({"carrier": "SF", "tracking_no": 12345678}, "tracking_no"),
        ({"carrier": "SF" * 40, "tracking_no": "SF12345678"}, "carrier"),
    ],
)
def test_bad_shipment_input_is_refused_and_changes_nothing(order, params, field):
    merchant = workflow.Actor.of_organisation(order.merchant)
    with pytest.raises(errors.InvalidInput) as refused:
        workflow.perform(order, Action.SHIP, merchant, **params)
    assert refused.value.field == field
    order.refresh_from_db()
    assert order.state == S.AWAITING_SHIPMENT and order.version == 1


@pytest.mark.parametrize("hours", [0, -5, 721, "ten", 2.5, True, None])
def test_extension_hours_must_be_a_sensible_whole_number(order, platform, hours):
    with pytest.raises(errors.InvalidInput):
        workflow.perform(order, Action.EXTEND_DEADLINE, workflow.Actor.of_organisation(platform), hours=hours)


def test_extending_the_deadline_moves_it_by_the_hours_given(order, platform):
    before = order.auto_confirm_at
    extended = workflow.perform(order, Action.EXTEND_DEADLINE, workflow.Actor.of_organisation(platform), hours=72)
    assert (extended.auto_confirm_at - before).total_seconds() == 72 * 3600
    assert extended.state == S.AWAITING_SHIPMENT


def test_refusal_messages_are_in_the_active_language(order):
    from django.utils import translation

    appraised = advance(order, S.APPRAISED)
    with pytest.raises(errors.InvalidTransition) as refused:
        workflow.perform(appraised, Action.PACK, workflow.Actor.of_organisation(order.provider))
    with translation.override("en"):
        english = refused.value.message
    with translation.override("zh-hans"):
        chinese = refused.value.message
    assert "Pack" in english and "Appraised" in english
    assert "打包" in chinese and "已鉴定" in chinese


def test_screens_offer_exactly_the_actions_the_workflow_would_take(merchant_org, provider_org, platform):
    """allowed_actions never offers a refusal, and offers every step that would succeed."""
    from orders.choices import VerifyOutcome

    actors = {
        "merchant": lambda o: workflow.Actor.of_organisation(o.merchant),
        "provider": lambda o: workflow.Actor.of_organisation(o.provider),
        "platform": lambda o: workflow.Actor.of_organisation(platform),
    }
    sample_params = {
        Action.SHIP: {"carrier": "SF", "tracking_no": "SF-OFFER-01"},
        Action.VERIFY_PENDING: {"outcome": VerifyOutcome.STILL_IN_TRANSIT},
        Action.APPRAISE: {"result": AppraisalResult.PASS},
        Action.REPORT_BLOCKED: {"stage": "entry", "reason": "x"},
        Action.SIGN_IN_ON_BEHALF: {"note": "x"},
        Action.EXTEND_DEADLINE: {"hours": 1},
        Action.REFUND: {"reason": "x"},
    }
    for state in OrderState:
        order = _order_in(state, merchant_org, provider_org)
        for role, make in actors.items():
            offered = set(workflow.allowed_actions(order, make(order)))
            for action in workflow.PERSON_ACTIONS:
                fresh = Order.objects.get(pk=order.pk)
                try:
                    from django.db import transaction

                    with transaction.atomic():
                        workflow.perform(fresh, action, make(order), **sample_params.get(action, {}))
                        transaction.set_rollback(True)
                    works = True
                except errors.WorkflowError:
                    works = False
                assert works == (action in offered), (state, role, action)


@pytest.mark.parametrize("field,value", [("order_no", "A/B"), ("order_no", ".."), ("trade_no", "T 1"), ("sku", "")])
def test_an_order_that_could_not_be_addressed_is_refused_on_every_way_in(merchant_org, provider_org, field, value):
    with pytest.raises(errors.InvalidInput) as refused:
        new_order(merchant_org, provider_org, **{field: value})
    assert field in refused.value.fields
    assert not Order.objects.exists()


# --- an order locked in a scope with its split group (the API's single steps)


@pytest.fixture
def pair(merchant_org, provider_org):
    return [new_order(merchant_org, provider_org, trade_no="T-LOCK") for _ in range(2)]


def test_an_order_is_locked_with_its_group_only_within_the_scope(
    pair, platform, merchant_org, merchant2_org, provider_org, provider2_org
):
    from django.db import transaction

    second = pair[1]
    with transaction.atomic():
        for seer in (platform, merchant_org, provider_org):
            order, group = workflow.lock_in_scope(seer, second.order_no)
            assert order.pk == second.pk
            assert [member.pk for member in group] == sorted(o.pk for o in pair)
            assert (order.merchant_code, order.provider_code) == ("M-1", "P-1")
        for outsider in (merchant2_org, provider2_org):
            with pytest.raises(Order.DoesNotExist):
                workflow.lock_in_scope(outsider, second.order_no)
        with pytest.raises(Order.DoesNotExist):
            workflow.lock_in_scope(provider_org, "no-such-order")
        provider_org.is_active = False
        with pytest.raises(Order.DoesNotExist):
            workflow.lock_in_scope(provider_org, second.order_no)


@pytest.mark.django_db(transaction=True)
def test_a_held_group_is_held_only_inside_its_transaction(pair, merchant_org):
    from django.db import transaction

    from portal.actors import Actor

    actor = Actor.of_organisation(merchant_org)
    ship = {"carrier": "SF", "tracking_no": "SF100200300"}
    with transaction.atomic():
        order, group = workflow.lock_in_scope(merchant_org, pair[0].order_no)
    with pytest.raises(ValueError):
        workflow.perform(order, Action.SHIP, actor, held_group=group, **ship)
    with transaction.atomic(), pytest.raises(ValueError):
        workflow.perform(pair[1], Action.SHIP, actor, held_group=group, **ship)
    with transaction.atomic():
        order, group = workflow.lock_in_scope(merchant_org, pair[0].order_no)
        moved = workflow.perform(order, Action.SHIP, actor, held_group=group, **ship)
    assert Order.objects.get(pk=pair[0].pk).state == OrderState.INBOUND == moved.state
    assert Order.objects.get(pk=pair[1].pk).state == OrderState.AWAITING_SHIPMENT


def test_a_step_writes_its_order_through_the_kept_update_on_postgresql(postgres, order, provider_org):
    from portal.actors import Actor

    advanced = advance(order, OrderState.ARRIVED)
    moved = workflow.perform(advanced, Action.SIGN_IN, Actor.of_organisation(provider_org))
    kept = workflow._UPDATE_ORDER.statement((("state", "state_changed_at", "version"),))
    assert kept is not None and kept[0].startswith('UPDATE "orders_order" SET')
    stored = Order.objects.get(pk=order.pk)
    assert (stored.state, stored.state_changed_at, stored.version) == (
        OrderState.SIGNED_IN,
        moved.state_changed_at,
        moved.version,
    )
