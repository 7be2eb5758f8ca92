"""SPEC §2.1's transition table, written out by hand, against the workflow.

The other workflow tests walk ``workflow.TRANSITIONS`` itself, so a wrong row
there would be tested as right. Here the table is transcribed from the SPEC's
words (§2.1, with §2.2's blocked flow and offline scans and §3's pending
sign-in verification), and the workflow must agree both ways: every row here
is a real step, every other (state, action, role) is refused, and the
workflow holds no row this table lacks.
"""

from dataclasses import dataclass

import pytest

from orders import errors, workflow
from orders.choices import Action, AppraisalResult, OrderState, VerifyOutcome
from orders.models import OrderEvent
from portal.choices import EventSource
from portal.models import Organisation
from tests.factories import advance, new_order

S = OrderState
A = Action
MERCHANT, PROVIDER, PLATFORM, SYSTEM = "merchant", "provider", "platform", "system"
ROLES = (MERCHANT, PROVIDER, PLATFORM, SYSTEM)

# Written out rather than taken from orders.choices, so a state moved between
# the two sets shows up here.
OPEN = [
    S.AWAITING_SHIPMENT,
    S.INBOUND,
    S.ARRIVED,
    S.SIGNED_IN,
    S.APPRAISED,
    S.INSPECTED,
    S.PACKED,
    S.WAYBILL_PRINTED,
    S.OUTBOUND,
    S.DELIVERED,
]
TERMINAL = [S.COMPLETED, S.RETURNED, S.REFUNDED, S.AUTO_REFUNDED]
# §2.2 (2): a provider reports a blocked flow when it cannot enter, inspect or
# pack the order, that is while the parcel is coming to it or with it and no
# waybill is printed yet; the operator unblocks in the same states.
BEFORE_WAYBILL = [S.INBOUND, S.ARRIVED, S.SIGNED_IN, S.APPRAISED, S.INSPECTED, S.PACKED]


@dataclass(frozen=True)
class Row:
    """From ``state``, ``role`` may take ``action`` and the order ends in ``target``.

    ``result`` is the appraisal result the order carries and ``params`` what
    the actor enters, when the SPEC's row depends on them.
    """

    state: str
    action: str
    role: str
    target: str
    result: str = AppraisalResult.PASS
    params: tuple = ()

    def __str__(self):
        extra = f"[{self.result}]" if self.result != AppraisalResult.PASS else ""
        extra += "".join(f"[{v}]" for _, v in self.params)
        return f"{self.state}-{self.action}-{self.role}->{self.target}{extra}"


NR = AppraisalResult.NOT_REQUIRED
SPEC_ROWS = [
    # awaiting_shipment -> inbound: the merchant records the tracking number,
    # or the carrier reports pickup.
    Row(S.AWAITING_SHIPMENT, A.SHIP, MERCHANT, S.INBOUND),
    Row(S.AWAITING_SHIPMENT, A.CARRIER_PICKUP, SYSTEM, S.INBOUND),
    # inbound -> arrived (carrier: delivered to provider); signed_in (provider).
    Row(S.INBOUND, A.CARRIER_DELIVERY, SYSTEM, S.ARRIVED),
    Row(S.INBOUND, A.SIGN_IN, PROVIDER, S.SIGNED_IN),
    # arrived -> signed_in (provider; or the operator on its behalf).
    Row(S.ARRIVED, A.SIGN_IN, PROVIDER, S.SIGNED_IN),
    Row(S.ARRIVED, A.SIGN_IN_ON_BEHALF, PLATFORM, S.SIGNED_IN),
    # §3 pending_sign_in (arrived, or inbound and delivered): the provider
    # records why it is unsigned; "signed" signs it in, the rest leave it.
    Row(S.INBOUND, A.VERIFY_PENDING, PROVIDER, S.SIGNED_IN, params=(("outcome", VerifyOutcome.SIGNED),)),
    Row(S.INBOUND, A.VERIFY_PENDING, PROVIDER, S.INBOUND, params=(("outcome", VerifyOutcome.STILL_IN_TRANSIT),)),
    Row(S.ARRIVED, A.VERIFY_PENDING, PROVIDER, S.SIGNED_IN, params=(("outcome", VerifyOutcome.SIGNED),)),
    Row(S.ARRIVED, A.VERIFY_PENDING, PROVIDER, S.ARRIVED, params=(("outcome", VerifyOutcome.STILL_IN_TRANSIT),)),
    # signed_in -> appraised (provider, with result).
    Row(S.SIGNED_IN, A.APPRAISE, PROVIDER, S.APPRAISED),
    # appraised -> inspected (provider); waybill_printed directly when not_required.
    Row(S.APPRAISED, A.INSPECT, PROVIDER, S.INSPECTED),
    Row(S.APPRAISED, A.PRINT_WAYBILL, PROVIDER, S.WAYBILL_PRINTED, result=NR),
    # inspected -> packed; packed -> waybill_printed (provider prints the online waybill).
    Row(S.INSPECTED, A.PACK, PROVIDER, S.PACKED),
    Row(S.PACKED, A.PRINT_WAYBILL, PROVIDER, S.WAYBILL_PRINTED),
    # waybill_printed -> outbound (carrier pickup scan of that waybill).
    Row(S.WAYBILL_PRINTED, A.CARRIER_PICKUP, SYSTEM, S.OUTBOUND),
    # outbound -> delivered (carrier); returned (carrier) when the result is fail.
    Row(S.OUTBOUND, A.CARRIER_DELIVERY, SYSTEM, S.DELIVERED),
    Row(S.OUTBOUND, A.CARRIER_DELIVERY, SYSTEM, S.RETURNED, result=AppraisalResult.FAIL),
    # delivered -> completed (platform: buyer confirmed, or auto-confirmed at the deadline).
    Row(S.DELIVERED, A.CONFIRM, PLATFORM, S.COMPLETED),
    Row(S.DELIVERED, A.EXPIRE, SYSTEM, S.COMPLETED),
    # The deadline passing before delivery refunds automatically.
    *[Row(s, A.EXPIRE, SYSTEM, S.AUTO_REFUNDED) for s in OPEN if s != S.DELIVERED],
    # refunded is reachable from every non-terminal state (platform); the
    # operator may extend the deadline on any non-terminal order.
    *[Row(s, A.REFUND, PLATFORM, S.REFUNDED) for s in OPEN],
    *[Row(s, A.EXTEND_DEADLINE, PLATFORM, s) for s in OPEN],
    # §2.2 (1): a scan outside the online flow is recorded and moves nothing.
    *[Row(s, A.OFFLINE_SHIPMENT, SYSTEM, s) for s in OPEN],
    # §2.2 (2): reporting and clearing a blocked flow move nothing.
    *[Row(s, A.REPORT_BLOCKED, PROVIDER, s) for s in BEFORE_WAYBILL],
    *[Row(s, A.UNBLOCK, PLATFORM, s) for s in BEFORE_WAYBILL],
]
# Creation is not a transition, nor is the merchant's split choice (recorded
# on each order of the group by ``orders.splits``).
ACTIONS = [a for a in Action if a not in (A.CREATE, A.SPLIT_CHOICE)]
SPEC_ROLES = {action: {r.role for r in SPEC_ROWS if r.action == action} for action in ACTIONS}


def _spec_moves(state, action):
    return {(r.role, r.target) for r in SPEC_ROWS if r.state == state and r.action == action}


def _order_in(state, merchant_org, provider_org, result=AppraisalResult.PASS):
    return advance(new_order(merchant_org, provider_org), state, result=result)


def _actor(role, order):
    if role == SYSTEM:
        return workflow.Actor.system(EventSource.CARRIER)
    if role == PLATFORM:
        return workflow.Actor.of_organisation(Organisation.objects.get(code="PLATFORM"))
    return workflow.Actor.of_organisation(order.merchant if role == MERCHANT else order.provider)


def _params(action, order, overrides=()):
    """Valid input for ``action``, so a refusal is about the table and not the input."""
    tracking = order.waybill_no or order.inbound_tracking_no or "SF-NONE-0001"
    params = {
        A.SHIP: {"carrier": "SF", "tracking_no": "SF-NEW-0001"},
        A.CARRIER_PICKUP: {"carrier": "SF", "tracking_no": order.waybill_no or "ZT-EARLY-0001"},
        A.CARRIER_DELIVERY: {"carrier": "SF", "tracking_no": tracking},
        A.OFFLINE_SHIPMENT: {"carrier": "YTO", "tracking_no": "YT-OFFLINE-1", "status": "picked_up"},
        A.APPRAISE: {"result": AppraisalResult.PASS},
        A.REPORT_BLOCKED: {"stage": "entry", "reason": "ERP refuses the order"},
        A.EXTEND_DEADLINE: {"hours": 24},
        A.REFUND: {"reason": "buyer asked"},
        A.SIGN_IN_ON_BEHALF: {"note": "ERP refuses to sign"},
        A.VERIFY_PENDING: {"outcome": VerifyOutcome.SIGNED, "note": "checked"},
    }.get(action, {})
    return {**params, **dict(overrides)}


def test_the_table_covers_every_state_and_names_only_known_actions_and_roles():
    assert sorted(OPEN + TERMINAL) == sorted(OrderState)
    assert {r.state for r in SPEC_ROWS} == set(OPEN)
    assert {r.role for r in SPEC_ROWS} <= set(ROLES)
    assert {r.action for r in SPEC_ROWS} == set(ACTIONS)


@pytest.mark.parametrize("state", list(OrderState))
@pytest.mark.parametrize("action", ACTIONS)
def test_the_workflow_has_exactly_the_spec_rows(state, action):
    """No row missing, none extra, none with another target or role."""
    theirs = {(role, m.target) for m in workflow.moves_from(state, action) for role in m.roles}
    assert theirs == _spec_moves(state, action)


@pytest.mark.parametrize("row", SPEC_ROWS, ids=str)
def test_each_spec_row_is_a_real_step(row, merchant_org, provider_org, platform):
    order = _order_in(row.state, merchant_org, provider_org, row.result)
    if row.action == A.UNBLOCK:
        order = workflow.perform(order, A.REPORT_BLOCKED, _actor(PROVIDER, order), stage="packing", reason="jammed")
    before = order.version

    moved = workflow.perform(order, row.action, _actor(row.role, order), **_params(row.action, order, row.params))

    assert moved.state == row.target
    event = OrderEvent.objects.get(order=order, seq=moved.version)
    assert moved.version == before + 1
    assert (event.action, event.from_state, event.to_state) == (row.action, row.state, row.target)


@pytest.mark.parametrize("state", list(OrderState))
def test_every_step_the_spec_does_not_list_is_refused_and_writes_nothing(state, merchant_org, provider_org, platform):
    order = _order_in(state, merchant_org, provider_org)
    refused = 0
    for action in ACTIONS:
        listed = {role for role, _ in _spec_moves(state, action)}
        for role in ROLES:
            if role in listed:
                continue
            if role not in SPEC_ROLES[action]:
                expected = errors.NotAllowed
            elif state in TERMINAL:
                expected = errors.OrderIsTerminal
            else:
                expected = errors.InvalidTransition
            with pytest.raises(expected):
                workflow.perform(order, action, _actor(role, order), **_params(action, order))
            refused += 1
    order.refresh_from_db()
    assert order.state == state
    assert OrderEvent.objects.filter(order=order).count() == order.version
    assert refused > 0


def test_printing_straight_from_appraised_is_refused_unless_no_appraisal_was_needed(order):
    appraised = advance(order, S.APPRAISED, result=AppraisalResult.PASS)
    with pytest.raises(errors.InvalidTransition):
        workflow.perform(appraised, A.PRINT_WAYBILL, _actor(PROVIDER, appraised))


def test_a_pickup_of_any_other_number_than_the_printed_waybill_does_not_ship(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    with pytest.raises(errors.NotOnlineWaybill):
        workflow.perform(printed, A.CARRIER_PICKUP, _actor(SYSTEM, printed), carrier="YTO", tracking_no="YT-OTHER-1")
    printed.refresh_from_db()
    assert printed.state == S.WAYBILL_PRINTED


@pytest.mark.parametrize("state", OPEN)
def test_screens_offer_each_person_the_spec_steps_from_this_state(state, merchant_org, provider_org, platform):
    order = _order_in(state, merchant_org, provider_org)
    for role in (MERCHANT, PROVIDER, PLATFORM):
        expected = {
            r.action
            for r in SPEC_ROWS
            # Unblocking needs a blocked order; printing straight from
            # appraised needs "not required", and this order passed.
            if r.state == state and r.role == role and r.action != A.UNBLOCK and r.result == AppraisalResult.PASS
        }
        assert set(workflow.allowed_actions(order, _actor(role, order))) == expected, role
