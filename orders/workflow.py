"""The one door through which an order is created and changes state (SPEC §2).

Views, API endpoints, carrier scans, Celery tasks and commands call
``create_order`` or ``perform``; a carrier's batch of one-step scans calls
``perform_set``, the same checks, effects and reactions for many orders at
once. Besides them only the set-wise deadline in ``orders.expiry`` writes
``Order.state``. Each call locks what it changes (``perform_set``'s caller
has locked it), checks that this actor may take this step from this state,
enforces the invariants of SPEC §2.2, and writes the order, its
``OrderEvent``, any fee (``charge_fees``) and what the ``REACTIONS`` do in
one transaction, or raises one of ``orders.errors`` and writes nothing.
"""

import datetime
import functools
import hashlib
import operator
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from orders import errors, inputs
from orders.choices import (
    FEE_RESULTS,
    OPEN_STATES,
    TERMINAL_STATES,
    Action,
    AppraisalResult,
    BlockedStage,
    FeeKind,
    OrderState,
    VerifyOutcome,
)
from orders.events import build_event, snapshot
from orders.models import FeeCharge, Order, OrderEvent, SplitGroup
from portal import bulk, kept
from portal.actors import SYSTEM, Actor
from portal.choices import OrganisationKind
from portal.models import Organisation

S = OrderState
A = Action
MERCHANT = OrganisationKind.MERCHANT
PROVIDER = OrganisationKind.PROVIDER
PLATFORM = OrganisationKind.PLATFORM


@dataclass(frozen=True)
class Move:
    """One row of the transition table: ``action`` takes ``source`` to ``target`` for ``roles``.

    ``when`` names a condition on the order that picks between rows with the
    same action and source state.
    """

    action: str
    source: str
    target: str
    roles: frozenset
    when: str = ""


def _moves(action, sources, target, roles, when=""):
    return [Move(action, s, target if target is not None else s, frozenset(roles), when) for s in sources]


_BEFORE_WAYBILL = [S.INBOUND, S.ARRIVED, S.SIGNED_IN, S.APPRAISED, S.INSPECTED, S.PACKED]
_OPEN = [s for s in S if s in OPEN_STATES]

# SPEC §2.1. A target of ``None`` records something without moving the order.
TRANSITIONS: tuple[Move, ...] = tuple(
    _moves(A.SHIP, [S.AWAITING_SHIPMENT], S.INBOUND, {MERCHANT})
    + _moves(A.CARRIER_PICKUP, [S.AWAITING_SHIPMENT], S.INBOUND, {SYSTEM})
    + _moves(A.CARRIER_DELIVERY, [S.INBOUND], S.ARRIVED, {SYSTEM})
    + _moves(A.SIGN_IN, [S.INBOUND, S.ARRIVED], S.SIGNED_IN, {PROVIDER})
    + _moves(A.SIGN_IN_ON_BEHALF, [S.ARRIVED], S.SIGNED_IN, {PLATFORM})
    # Verifying a parcel waiting to be signed for: "signed" signs it in, any
    # other outcome is recorded and leaves it where it is.
    + _moves(A.VERIFY_PENDING, [S.INBOUND, S.ARRIVED], S.SIGNED_IN, {PROVIDER}, when="verified_signed")
    + _moves(A.VERIFY_PENDING, [S.INBOUND, S.ARRIVED], None, {PROVIDER}, when="verified_unsigned")
    + _moves(A.APPRAISE, [S.SIGNED_IN], S.APPRAISED, {PROVIDER})
    + _moves(A.INSPECT, [S.APPRAISED], S.INSPECTED, {PROVIDER})
    + _moves(A.PACK, [S.INSPECTED], S.PACKED, {PROVIDER})
    + _moves(A.PRINT_WAYBILL, [S.PACKED], S.WAYBILL_PRINTED, {PROVIDER})
    + _moves(A.PRINT_WAYBILL, [S.APPRAISED], S.WAYBILL_PRINTED, {PROVIDER}, when="not_required")
    + _moves(A.CARRIER_PICKUP, [S.WAYBILL_PRINTED], S.OUTBOUND, {SYSTEM}, when="online_waybill")
    + _moves(A.CARRIER_DELIVERY, [S.OUTBOUND], S.DELIVERED, {SYSTEM}, when="not_failed")
    + _moves(A.CARRIER_DELIVERY, [S.OUTBOUND], S.RETURNED, {SYSTEM}, when="failed")
    + _moves(A.CONFIRM, [S.DELIVERED], S.COMPLETED, {PLATFORM})
    + _moves(A.EXPIRE, [S.DELIVERED], S.COMPLETED, {SYSTEM})
    + _moves(A.EXPIRE, [s for s in _OPEN if s != S.DELIVERED], S.AUTO_REFUNDED, {SYSTEM})
    + _moves(A.REFUND, _OPEN, S.REFUNDED, {PLATFORM})
    + _moves(A.REPORT_BLOCKED, _BEFORE_WAYBILL, None, {PROVIDER})
    + _moves(A.UNBLOCK, _BEFORE_WAYBILL, None, {PLATFORM})
    + _moves(A.EXTEND_DEADLINE, _OPEN, None, {PLATFORM})
    # A scan outside the online flow is recorded on an open order as
    # evidence, and moves nothing (invariant 1).
    + _moves(A.OFFLINE_SHIPMENT, _OPEN, None, {SYSTEM})
)

_CONDITIONS = {
    "": lambda order, params: True,
    "not_required": lambda order, params: order.appraisal_result == AppraisalResult.NOT_REQUIRED,
    "online_waybill": lambda order, params: params.get("tracking_no") == order.waybill_no,
    "failed": lambda order, params: order.appraisal_result == AppraisalResult.FAIL,
    "not_failed": lambda order, params: order.appraisal_result != AppraisalResult.FAIL,
    "verified_signed": lambda order, params: params.get("outcome") == VerifyOutcome.SIGNED,
    "verified_unsigned": lambda order, params: params.get("outcome") != VerifyOutcome.SIGNED,
}
# Conditions on what the person will enter, not on the order: an action that
# needs one of these is offered, and the input decides.
_INPUT_CONDITIONS = frozenset({"online_waybill", "verified_signed", "verified_unsigned"})

_ROLES_BY_ACTION: dict[str, frozenset] = {}
# The rows of the table by (source state, action), in the table's order:
# every step and every offered action looks its rows up here.
_MOVES: dict[tuple[str, str], tuple[Move, ...]] = {}
for _move in TRANSITIONS:
    _ROLES_BY_ACTION[_move.action] = _ROLES_BY_ACTION.get(_move.action, frozenset()) | _move.roles
    _MOVES[_move.source, _move.action] = (*_MOVES.get((_move.source, _move.action), ()), _move)


def roles_for(action) -> frozenset:
    """The roles that may ever take ``action``."""
    return _ROLES_BY_ACTION.get(action, frozenset())


def moves_from(state, action) -> tuple[Move, ...]:
    """The rows of the table that take ``action`` from ``state``."""
    return _MOVES.get((state, action), ())


# Actions people take (the rest come from carriers and the sweep), in the
# order a screen offers them.
PERSON_ACTIONS = (
    A.SHIP,
    A.VERIFY_PENDING,
    A.SIGN_IN,
    A.APPRAISE,
    A.INSPECT,
    A.PACK,
    A.PRINT_WAYBILL,
    A.REPORT_BLOCKED,
    A.SIGN_IN_ON_BEHALF,
    A.UNBLOCK,
    A.EXTEND_DEADLINE,
    A.CONFIRM,
    A.REFUND,
)
# Availability beyond the state: what a screen must not offer.
_OFFERED_WHEN = {
    A.PRINT_WAYBILL: lambda order: not order.flow_blocked,
    A.REPORT_BLOCKED: lambda order: not order.flow_blocked,
    A.UNBLOCK: lambda order: order.flow_blocked,
}


def allowed_actions(order: Order, actor: Actor) -> list[str]:
    """The actions ``actor`` may take on ``order`` as it is now, for screens to
    offer. ``perform`` still decides; this only avoids offering a refusal."""
    if order.state in TERMINAL_STATES:
        return []
    offered = []
    for action in PERSON_ACTIONS:
        try:
            _check_actor(order, action, actor, roles_for(action))
        except errors.NotAllowed:
            continue
        if not _OFFERED_WHEN.get(action, lambda o: True)(order):
            continue
        if any(m.when in _INPUT_CONDITIONS or _CONDITIONS[m.when](order, {}) for m in moves_from(order.state, action)):
            offered.append(action)
    return offered


_msg_exists = _("Order %(order_no)s already exists.")
_msg_invalid_order = _("The order is not valid; see the fields.")
_msg_not_own_order = _("A merchant creates its own orders only.")
_msg_not_kind = _("This organisation is not a %(kind)s.")

CENT = Decimal("0.01")

# What an order is created with (SPEC §6.2): the rest the workflow fills in.
CREATION_FIELDS = (
    "order_no",
    "trade_no",
    "merchant",
    "provider",
    "sku",
    "item_title",
    "quantity",
    "amount",
    "paid_at",
    "auto_confirm_at",
    "buyer_name",
    "buyer_phone",
    "buyer_address",
)


# --- reactions ------------------------------------------------------------------

# What other parts of the portal do after every step, in this order and
# inside the same transaction, so a failing reaction undoes the step. Each
# entry is a dotted path, resolved on first use: orders' engine names risks
# here but never imports it at module load. Each is called as
# ``reaction(order, event, actor, params)`` with the order as saved, its new
# ``OrderEvent`` and the cleaned parameters of the step. A reaction may
# carry a form for many steps at once (``set_wise``), which ``perform_set``
# calls once for its whole set; one without is called there once per step.
# Tests that need one more (say, a pause before commit) replace the tuple with
# ``monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, fn))``:
# an entry may also be the callable itself.
REACTIONS: tuple = (
    # Carrier scans that arrived before their number apply now; each applied
    # scan calls ``perform`` again (re-entry).
    "orders.carrier.on_step",
    # A blocked flow or an offline scan opens its risk case, a verification
    # answers or escalates its case (notifying the platform), and live cases
    # whose condition the step removed resolve.
    "risks.reactions.on_step",
)

# What happens after orders are created (``create_orders``), called once per
# creation with every new order: ``reaction(orders, events, actor)``. A new
# order is no risk yet (the sweep judges it from then on); only scans that
# named its number before it existed are waiting for it.
CREATION_REACTIONS: tuple = ("orders.carrier.on_created",)


@functools.cache
def _resolve(entries) -> tuple:
    return tuple(import_string(e) if isinstance(e, str) else e for e in entries)


def _react(order, event, actor, params) -> None:
    for reaction in _resolve(REACTIONS):
        reaction(order, event, actor, params)


def set_wise(many):
    """Give a reaction its form for many steps at once: ``perform_set`` calls
    ``many(steps, actor)`` once, with ``(order, event, params)`` for every step
    it took, where it would call the reaction once per step. The reaction stays
    what ``perform`` calls; both forms must do the same."""

    def mark(reaction):
        reaction.set_wise = many
        return reaction

    return mark


def _react_set(steps, actor) -> None:
    # Reaction by reaction over the whole set; ``perform_set`` takes only
    # orders that cannot see each other's steps (one per split group), so
    # this ends as reacting step by step would.
    for reaction in _resolve(REACTIONS):
        many = getattr(reaction, "set_wise", None)
        if many is not None:
            many(steps, actor)
            continue
        for order, event, params in steps:
            reaction(order, event, actor, params)


# --- the door -------------------------------------------------------------------

_FROM_INSTANCE = object()


@dataclass
class _Change:
    order: Order
    move: Move
    actor: Actor
    params: dict
    occurred_at: datetime.datetime
    fields: dict = field(default_factory=dict)


def perform(
    order: Order,
    action: str,
    actor: Actor,
    *,
    occurred_at=None,
    expected_version=_FROM_INSTANCE,
    held_group=None,
    **params,
):
    """Take ``action`` on ``order`` as ``actor`` and return the order as it now is.

    ``expected_version`` is the version the actor saw; by default the version
    of the ``order`` instance passed. If the order changed since,
    ``errors.Conflict`` is raised and nothing is written. System sources
    (carrier, sweep) pass ``None`` to act on the order as it is now.
    ``occurred_at`` is when it happened (the carrier's time for a scan);
    it defaults to now. Raises an ``errors.WorkflowError`` on any refusal.

    In the same transaction, after the order and its event are saved, it
    charges the step's fees (``charge_fees``, SPEC §2.3) and runs the
    ``REACTIONS`` in order:

    1. ``orders.carrier.on_step``: when the step gave the order a new inbound
       number or waybill, carrier scans that were waiting for it apply. Each
       applied scan calls ``perform`` again, so ``perform`` may re-enter
       itself through the carrier (nested, in this same transaction);
    2. ``risks.reactions.on_step``: a blocked flow or an offline scan opens
       its risk case, a verification of a pending parcel answers or escalates
       its case (escalations notify the platform through the outbox), and live
       cases whose condition the step removed resolve.

    ``held_group``: the order's whole split group (the order among them),
    which the caller read and locked in the transaction it is in
    (``lock_in_scope``); the order is then taken as read, not read again.
    """
    if expected_version is _FROM_INSTANCE:
        expected_version = order.version
    cleaned, when = _admit(order, action, actor, params, occurred_at)

    if held_group is not None and not transaction.get_connection().in_atomic_block:
        raise ValueError("a held group is held only within the transaction that locked it")
    # A held group's transaction is the caller's: no savepoint of its own
    # (a refusal ends that transaction, as the caller lets it).
    with transaction.atomic(savepoint=held_group is None):
        current, group = _lock(order, action, cleaned) if held_group is None else _held(order, held_group)
        if expected_version is not None and current.version != expected_version:
            raise errors.Conflict()
        _save(_decide(current, action, actor, cleaned, when, group))
    return current


class Step(NamedTuple):
    """One step of ``perform_set``: ``action`` with ``params`` on ``order``,
    at ``occurred_at`` (now when ``None``)."""

    order: Order
    action: str
    params: dict
    occurred_at: datetime.datetime | None = None


def perform_set(steps, actor: Actor) -> list:
    """Take one step on each of many orders at once, as ``actor``, by the
    rules ``perform`` takes it by; return, for each of ``steps`` in order, the
    order as it now is or the ``errors.WorkflowError`` that refused its step.

    For a system source (a carrier's batch of scans) acting on orders as they
    are now, like ``perform`` with ``expected_version=None``. The caller holds
    the orders: it read them with ``select_for_update`` in the current
    transaction (one ``SELECT … FOR UPDATE ORDER BY id`` for them all) and
    decided each step on them as read. Each order appears once, and no two
    share a split group, so that no step's reactions could have seen another
    step of the set; an appraisal that could charge a second fee locks its
    group and goes through ``perform``.

    Each step is checked as ``perform`` checks it (its parameters, the actor,
    a terminal order, the row of the transition table, its guard) and takes
    the table's effects; a refused step writes nothing and the others go on.
    Then, in one transaction: the orders in one ``UPDATE`` conditional on the
    version each was read at (``errors.Conflict`` if one changed after all),
    their events in one insert, the fees through ``charge_fees``, and the
    ``REACTIONS``, each once for the set when it has a set-wise form
    (``set_wise``), otherwise once per step. On an error the order instances
    passed are left half-changed: read them again.
    """
    results: list = [None] * len(steps)
    taken: list[tuple[int, _Change]] = []
    orders, groups = set(), set()
    for index, (order, action, params, occurred_at) in enumerate(steps):
        if order.pk in orders or (order.trade_no, order.sku) in groups:
            raise ValueError(f"order {order.pk} is not alone in its split group in this set")
        orders.add(order.pk)
        groups.add((order.trade_no, order.sku))
        try:
            cleaned, when = _admit(order, action, actor, params, occurred_at)
            if _locks_group(action, cleaned):
                raise ValueError(f"{action} may charge a second fee in its split group: take it through perform")
            taken.append((index, _decide(order, action, actor, cleaned, when, None)))
        except errors.WorkflowError as refusal:
            results[index] = refusal
    if taken:
        with transaction.atomic():
            _save_set([change for _index, change in taken], actor)
    for index, change in taken:
        results[index] = change.order
    return results


def _admit(order, action, actor, params, occurred_at):
    """What ``action`` needs before any lock: its parameters cleaned, its
    time, and an actor who may take it on ``order``."""
    cleaned = inputs.clean_params(action, params)
    when = inputs.clean_time(occurred_at)
    roles = roles_for(action)
    if not roles:
        raise errors.InvalidInput(inputs.msg_unknown_action, field="action", action=action)
    _check_actor(order, action, actor, roles)
    return cleaned, when


def _decide(current, action, actor, params, when, group) -> _Change:
    """The change ``action`` makes to the locked order ``current``: its row of
    the table, checked by its guard, with its effects; raises the refusal."""
    if current.state in TERMINAL_STATES:
        raise errors.OrderIsTerminal(state=S(current.state).label)
    move = _find_move(current, action, params)
    change = _Change(current, move, actor, params, when)
    _GUARDS.get(action, _no_guard)(change, group)
    _EFFECTS.get(action, _no_effect)(change)
    return change


def _check_actor(order, action, actor, roles):
    role = actor.role
    label = Action(action).label
    if role not in roles:
        raise errors.NotAllowed(action=label)
    if role == MERCHANT and actor.organisation.pk != order.merchant_id:
        raise errors.NotAllowed(action=label)
    if role == PROVIDER and actor.organisation.pk != order.provider_id:
        raise errors.NotAllowed(action=label)


def _lock(order, action, params):
    """Lock the order, or its whole split group (in id order) when an
    appraisal result could charge a second fee, so two appraisals in one
    group cannot both pass the check."""
    locked = Order.objects.select_for_update()
    if _locks_group(action, params):
        group = list(locked.split_group(order.trade_no, order.sku).order_by("pk"))
        for member in group:
            if member.pk == order.pk:
                return member, group
        raise Order.DoesNotExist  # pragma: no cover - the caller holds the order
    return locked.get(pk=order.pk), None


def lock_in_scope(organisation, order_no) -> tuple[Order, list[Order]]:
    """The order numbered ``order_no`` in ``organisation``'s scope and its
    whole split group, read and locked in one statement, in id order as
    ``perform`` locks a group, each with its organisations' codes
    (``merchant_code``, ``provider_code``); for ``perform``'s ``held_group``
    in the same transaction. Raises ``Order.DoesNotExist`` when no such
    order is in the scope."""
    if not organisation.is_active:
        raise Order.DoesNotExist(f"no order {order_no} in scope")
    group = _LOCK_IN_SCOPE.instances((order_no, organisation.pk), (organisation.kind,))
    for member in group:
        if member.order_no == order_no:
            return member, group
    raise Order.DoesNotExist(f"no order {order_no} in scope")


def _lock_in_scope(order_no, organisation_pk, kind):
    scope = Order.objects.visible_to_organisation(Organisation(pk=organisation_pk, kind=kind, is_active=True))
    asked = scope.filter(order_no=order_no, trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
    return (
        Order.objects.filter(Exists(asked))
        .annotate(merchant_code=F("merchant__code"), provider_code=F("provider__code"))
        .select_for_update(of=("self",))
        .order_by("pk")
    )


_LOCK_IN_SCOPE = kept.Kept(_lock_in_scope, (("kept-order-a", -7001), ("kept-order-b", -7002)), model=Order)


def _held(order, group):
    if not any(member is order for member in group):
        raise ValueError(f"order {order.pk} is not one of the held group")
    return order, group


def _locks_group(action, params) -> bool:
    return action == A.APPRAISE and params.get("result") in FEE_RESULTS


def _find_move(order, action, params) -> Move:
    candidates = moves_from(order.state, action)
    for move in candidates:
        if _CONDITIONS[move.when](order, params):
            return move
    if action == A.CARRIER_PICKUP and any(m.when == "online_waybill" for m in candidates):
        raise errors.NotOnlineWaybill(tracking_no=params.get("tracking_no", ""))
    raise errors.InvalidTransition(action=Action(action).label, state=S(order.state).label)


# Guards: the invariants that depend on more than the state.


def _no_guard(change, group):
    return None


def _guard_appraise(change, group):
    if change.params["result"] not in FEE_RESULTS:
        return
    for other in group:
        if other.pk != change.order.pk and other.appraisal_result in FEE_RESULTS:
            raise errors.SplitGroupAlreadyAppraised(other=other.order_no)


def _guard_print_waybill(change, group):
    if change.order.flow_blocked:
        raise errors.FlowBlocked(stage=BlockedStage(change.order.blocked_stage).label)


def _guard_report_blocked(change, group):
    if change.order.flow_blocked:
        raise errors.AlreadyBlocked()


def _guard_unblock(change, group):
    if not change.order.flow_blocked:
        raise errors.NotBlocked()


_GUARDS = {
    A.APPRAISE: _guard_appraise,
    A.PRINT_WAYBILL: _guard_print_waybill,
    A.REPORT_BLOCKED: _guard_report_blocked,
    A.UNBLOCK: _guard_unblock,
}


# Effects: the fields each step sets besides the state.


def _no_effect(change):
    return None


def _effect_ship(change):
    change.fields.update(inbound_carrier=change.params["carrier"], inbound_tracking_no=change.params["tracking_no"])


def _effect_pickup(change):
    if change.move.source == S.AWAITING_SHIPMENT:
        # The carrier reports the merchant's parcel before the merchant did.
        change.fields.update(inbound_carrier=change.params["carrier"], inbound_tracking_no=change.params["tracking_no"])
    else:
        change.fields["picked_up_at"] = change.occurred_at


def _effect_delivery(change):
    if change.move.source == S.INBOUND:
        change.fields["inbound_delivered_at"] = change.occurred_at
    else:
        change.fields["delivered_at"] = change.occurred_at


def _effect_appraise(change):
    change.fields["appraisal_result"] = change.params["result"]


def _effect_print_waybill(change):
    change.fields.update(waybill_no=_new_waybill_no(change.order), waybill_printed_at=change.occurred_at)


def _effect_report_blocked(change):
    change.fields.update(
        flow_blocked=True, blocked_stage=change.params["stage"], blocked_reason=change.params["reason"]
    )


def _effect_unblock(change):
    change.fields.update(flow_blocked=False, blocked_stage="", blocked_reason="")


def _effect_extend(change):
    change.fields["auto_confirm_at"] = change.order.auto_confirm_at + timedelta(hours=change.params["hours"])


def _effect_complete(change):
    if change.move.target == S.COMPLETED:
        change.fields["confirmed_at"] = change.occurred_at


_EFFECTS = {
    A.SHIP: _effect_ship,
    A.CARRIER_PICKUP: _effect_pickup,
    A.CARRIER_DELIVERY: _effect_delivery,
    A.APPRAISE: _effect_appraise,
    A.PRINT_WAYBILL: _effect_print_waybill,
    A.REPORT_BLOCKED: _effect_report_blocked,
    A.UNBLOCK: _effect_unblock,
    A.EXTEND_DEADLINE: _effect_extend,
    A.CONFIRM: _effect_complete,
    A.EXPIRE: _effect_complete,
}


def _new_waybill_no(order) -> str:
    # The order id makes it unique; the random tail makes it unguessable.
    return f"AXJ{order.pk:010d}{secrets.randbelow(10**6):06d}"


def _save(change):
    event, fee = _record(change)
    _update_locked(change.order, (*change.fields, "version"))
    event.save()
    charge_fees([fee])
    _react(change.order, event, change.actor, change.params)


def _update_locked(order, names):
    """Write the fields ``names`` of the locked ``order`` (what
    ``save(update_fields=names)`` writes, in the statement it writes)."""
    if _UPDATE_ORDER.execute((order.pk, *(getattr(order, name) for name in names)), (tuple(names),)) != 1:
        raise Order.DoesNotExist(f"order {order.pk} is gone")  # pragma: no cover - the row is locked


# Every step writes its order: the statement written by the ORM once per set of fields.
_UPDATE_ORDER = kept.updating(Order)


def _save_set(changes, actor):
    """``_save`` for many changes at once: the same rows, a statement per table."""
    written = [(change, *_record(change)) for change in changes]
    orders = [change.order for change in changes]
    fields = sorted({name for change in changes for name in change.fields} | {"version"})
    # Under the caller's locks every row is as it was read; one that is not
    # is refused rather than logged as moved.
    if _update_as_read(orders, fields) != len(orders):
        raise errors.Conflict()
    events = (event for _change, event, _fee in written)
    bulk.append(
        OrderEvent, _SET_EVENT_COLUMNS, ([getattr(event, name) for name in _SET_EVENT_COLUMNS] for event in events)
    )
    charge_fees([fee for _change, _event, fee in written])
    _react_set([(change.order, event, change.params) for change, event, _fee in written], actor)


def _update_as_read(orders, fields) -> int:
    """Write ``fields`` of ``orders`` (their version already bumped), each row
    only if it still has the version it was read at; returns how many rows
    were written."""
    if connection.vendor != "postgresql":
        as_read = functools.reduce(operator.or_, (Q(pk=order.pk, version=order.version - 1) for order in orders))
        return Order.objects.filter(as_read).bulk_update(orders, fields)
    # PostgreSQL: one array per column, unnested into rows; a CASE per field
    # and row (``bulk_update``) costs more to build than the update itself.
    quote = connection.ops.quote_name
    table = quote(Order._meta.db_table)
    columns = [Order._meta.get_field(name) for name in fields]
    names = [quote(column.column) for column in columns]
    arrays = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    sql = (
        f"UPDATE {table} SET {', '.join(f'{name} = v.{name}' for name in names)} "
        f"FROM unnest(%s::bigint[], %s::bigint[], {arrays}) AS v(row_id, read_at, {', '.join(names)}) "
        f"WHERE {table}.{quote(Order._meta.pk.column)} = v.row_id AND {table}.{quote('version')} = v.read_at"
    )
    params = [[order.pk for order in orders], [order.version - 1 for order in orders]]
    for column in columns:
        params.append([column.get_db_prep_save(getattr(order, column.attname), connection) for order in orders])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _record(change) -> tuple[OrderEvent, "FeeDue"]:
    """Apply ``change`` to its order instance (fields, state, version) and
    build what the step writes besides the row: its event, unsaved, and its
    ``FeeDue`` for ``charge_fees``."""
    order = change.order
    from_state = order.state
    if change.move.target != from_state:
        change.fields["state"] = change.move.target
        change.fields["state_changed_at"] = change.occurred_at
    for name, value in change.fields.items():
        setattr(order, name, value)
    order.version += 1
    event = build_event(
        order,
        action=change.move.action,
        actor=change.actor,
        from_state=from_state,
        changes=change.fields,
        params=change.params,
        occurred_at=change.occurred_at,
    )
    move = change.move
    fee = FeeDue(
        order.pk,
        order.provider_id,
        move.action,
        move.target,
        order.appraisal_result,
        change.occurred_at,
        order.waybill_no,
    )
    return event, fee


class FeeDue(NamedTuple):
    """One step whose fees are to be charged: the order it moved, by which
    action to which state, its appraisal result then, and when."""

    order_id: int
    provider_id: int
    action: str
    target: str
    appraisal_result: str
    occurred_at: datetime.datetime
    waybill_no: str = ""


def fees_due(action, target, appraisal_result) -> tuple:
    """SPEC §2.3: the fees a step charges. A logistics fee when the online
    waybill is picked up, an appraisal fee when a pass/fail order completes
    (confirmed or past its deadline) or returns."""
    kinds = []
    if action == A.CARRIER_PICKUP and target == S.OUTBOUND:
        kinds.append(FeeKind.LOGISTICS)
    if target in (S.COMPLETED, S.RETURNED) and appraisal_result in FEE_RESULTS:
        kinds.append(FeeKind.APPRAISAL)
    return tuple(kinds)


# The provider's fee each kind charges, at the moment of the step.
_FEE_FIELDS = {FeeKind.LOGISTICS: "logistics_fee", FeeKind.APPRAISAL: "appraisal_fee"}


def charge_fees(steps) -> int:
    """Charge the fees of ``steps`` (``FeeDue`` rows), at the provider's
    amounts now, in one insert; returns how many were charged. Both ``perform``
    and the batch expiry (``orders.expiry``) charge through here."""
    due = [(step, kind) for step in steps for kind in fees_due(step.action, step.target, step.appraisal_result)]
    if not due:
        return 0
    providers = {
        row["pk"]: row
        for row in Organisation.objects.filter(pk__in={step.provider_id for step, _kind in due}).values(
            "pk", *_FEE_FIELDS.values()
        )
    }
    FeeCharge.objects.bulk_create(
        [
            FeeCharge(
                order_id=step.order_id,
                kind=kind,
                amount=providers[step.provider_id][_FEE_FIELDS[kind]],
                charged_at=step.occurred_at,
                waybill_no=step.waybill_no if kind == FeeKind.LOGISTICS else "",
            )
            for step, kind in due
        ]
    )
    return len(due)


# --- creation -------------------------------------------------------------------


class Creation(NamedTuple):
    """What ``create_orders`` did with one row: ``order`` created (``created``),
    or found as the row describes it (not ``created``), or ``error`` refused it."""

    order: Order | None
    created: bool = False
    error: errors.WorkflowError | None = None


def create_order(actor: Actor, **fields) -> Order:
    """Create one order (``create_orders`` with one row) and return it.

    Raises what refused it: ``errors.NotAllowed`` for an actor who may not
    create it, ``errors.InvalidInput``, ``errors.TradeOfOtherMerchant`` if the
    trade has orders of another merchant and ``errors.Conflict`` if the order
    number exists (however it was created).
    """
    (result,) = create_orders(actor, [fields])
    if result.error is not None:
        raise result.error
    if not result.created:
        raise errors.Conflict(_msg_exists, order_no=result.order.order_no)
    return result.order


def create_orders(actor: Actor, rows: list[dict]) -> list[Creation]:
    """Create the orders ``rows`` describe and write each one's first event,
    in one transaction; return one ``Creation`` per row, in order.

    Each row holds the §6.2 creation fields with organisations as instances.
    The platform creates any order, a merchant only its own. Creation is
    idempotent on the order number: a row naming an order that exists as the
    row describes it (as it was created; the deadline may have been extended
    since) is found, not created again; one that differs is refused with
    ``errors.Conflict``. A refused row (invalid, another merchant's trade, a
    conflict) never stops the others. Orders of one trade and SKU form a split
    group, tracked from its second order on. The ``CREATION_REACTIONS`` run
    with all the new orders at once.
    """
    results: list[Creation | None] = [None] * len(rows)
    candidates = {}  # row index -> unsaved Order
    for index, fields in enumerate(rows):
        refusal = _creation_refusal(actor, fields)
        if refusal is not None:
            results[index] = Creation(None, error=refusal)
            continue
        order = Order(state=S.AWAITING_SHIPMENT, state_changed_at=fields.get("paid_at") or timezone.now(), **fields)
        try:
            # The organisations are instances whose kind was checked above;
            # the table's own constraints hold at insert (the fields' validators
            # refuse what would break them).
            order.full_clean(exclude=["merchant", "provider"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            results[index] = Creation(None, error=errors.InvalidInput(_msg_invalid_order, fields=exc.message_dict))
            continue
        candidates[index] = order
    for attempt in range(3 if candidates else 0):
        try:
            with transaction.atomic():
                _insert_new(actor, candidates, results)
            break
        except _Raced:
            # An order number created meanwhile by someone else: read again
            # and judge that row as a repeat.
            if attempt == 2:
                raise
    return results


class _Raced(Exception):
    pass


# Every column of the row as built (what a caller gave beyond the creation
# fields, as tests and the demo do, is kept too).
_ORDER_COLUMNS = [f.attname for f in Order._meta.concrete_fields if not f.primary_key]
_EVENT_COLUMNS = [
    "order_id",
    "seq",
    "action",
    "source",
    "actor_user_id",
    "actor_organisation_id",
    "from_state",
    "to_state",
    "payload",
    "occurred_at",
    "recorded_at",
]
# A set's events are written when they are recorded (``bulk.append``).
_SET_EVENT_COLUMNS = [name for name in _EVENT_COLUMNS if name != "recorded_at"]


def _creation_refusal(actor: Actor, fields: dict) -> errors.WorkflowError | None:
    merchant, provider = fields.get("merchant"), fields.get("provider")
    if actor.role == MERCHANT:
        if merchant is None or merchant.pk != actor.organisation.pk:
            return errors.NotAllowed(_msg_not_own_order)
    elif actor.role != PLATFORM:
        return errors.NotAllowed(action=A.CREATE.label)
    if merchant is None or merchant.kind != MERCHANT:
        return errors.InvalidInput(_msg_not_kind, field="merchant", kind=OrganisationKind.MERCHANT.label)
    if provider is None or provider.kind != PROVIDER:
        return errors.InvalidInput(_msg_not_kind, field="provider", kind=OrganisationKind.PROVIDER.label)
    return None


def _insert_new(actor: Actor, candidates: dict, results: list) -> None:
    """Inside the transaction: judge the candidates against what is stored,
    insert the new orders and their events, track their split groups."""
    orders = list(candidates.values())
    # The trades' own locks (an empty SKU) as well as the groups': two orders
    # of one trade for two merchants, created at once with different SKUs,
    # must not both pass the trade check below.
    lock_split_groups({(o.trade_no, o.sku) for o in orders} | {(o.trade_no, "") for o in orders})
    stored = {
        event.order.order_no: event
        for event in OrderEvent.objects.filter(
            order__order_no__in={o.order_no for o in orders}, action=A.CREATE
        ).select_related("order", "order__merchant", "order__provider")
    }
    merchants_of_trade: dict[str, set] = {}
    trades = Order.objects.filter(trade_no__in={o.trade_no for o in orders})
    for trade_no, merchant_id in trades.values_list("trade_no", "merchant_id").distinct():
        merchants_of_trade.setdefault(trade_no, set()).add(merchant_id)
    new: dict[int, Order] = {}
    claimed: dict[str, Order] = {}  # order number -> the row of this call that takes it
    for index, order in candidates.items():
        first = stored.get(order.order_no)
        if first is not None:
            found = first.order
            results[index] = (
                Creation(found)
                if same_creation(first.payload["changes"], order)
                else Creation(None, error=errors.Conflict(_msg_exists, order_no=order.order_no))
            )
            continue
        if order.order_no in claimed:
            twin = claimed[order.order_no]
            results[index] = (
                Creation(twin)
                if same_creation(snapshot(twin), order)
                else Creation(None, error=errors.Conflict(_msg_exists, order_no=order.order_no))
            )
            continue
        merchants = merchants_of_trade.setdefault(order.trade_no, set())
        if merchants - {order.merchant_id}:
            results[index] = Creation(None, error=errors.TradeOfOtherMerchant(trade_no=order.trade_no))
            continue
        merchants.add(order.merchant_id)
        claimed[order.order_no] = order
        new[index] = order
    if not new:
        return
    now = timezone.now()
    for order in new.values():
        # The log starts from the row as stored: 100 is kept as 100.00.
        order.amount = Decimal(order.amount).quantize(CENT)
        order.created_at = now
    # ``COPY`` on PostgreSQL (``portal.bulk``): building and adapting a model
    # instance per row would cost more than the database's own work.
    numbered = dict(
        bulk.insert(
            Order,
            _ORDER_COLUMNS,
            ([getattr(order, name) for name in _ORDER_COLUMNS] for order in new.values()),
            returning=("order_no", "id"),
        )
    )
    if len(numbered) < len(new):
        raise _Raced  # an order number committed meanwhile by someone else
    for order in new.values():
        order.pk = numbered[order.order_no]
        order._state.adding, order._state.db = False, connection.alias
    events = [
        build_event(
            order,
            action=A.CREATE,
            actor=actor,
            from_state="",
            changes=snapshot(order),
            params={},
            occurred_at=order.paid_at,
        )
        for order in new.values()
    ]
    for event in events:
        event.recorded_at = now
    ids = dict(
        bulk.insert(
            OrderEvent,
            _EVENT_COLUMNS,
            ([getattr(event, name) for name in _EVENT_COLUMNS] for event in events),
            returning=("order", "id"),
        )
    )
    for event in events:
        event.pk = ids[event.order_id]
        event._state.adding, event._state.db = False, connection.alias
    for index, order in new.items():
        results[index] = Creation(order, created=True)
    _track_split_groups({(o.trade_no, o.sku) for o in new.values()})
    created = list(new.values())
    for reaction in _resolve(CREATION_REACTIONS):
        reaction(created, events, actor)


def _track_split_groups(keys) -> None:
    """Track (or open again) the split groups among ``keys`` that now hold
    more than one order."""
    trades = {trade_no for trade_no, _sku in keys}
    grouped = {
        (row["trade_no"], row["sku"])
        for row in Order.objects.filter(trade_no__in=trades)
        .values("trade_no", "sku")
        .annotate(orders=Count("id"))
        .filter(orders__gt=1)
    } & set(keys)
    if not grouped:
        return
    SplitGroup.objects.bulk_create(
        [SplitGroup(trade_no=trade_no, sku=sku) for trade_no, sku in sorted(grouped)], ignore_conflicts=True
    )
    reopen = functools.reduce(operator.or_, (Q(trade_no=t, sku=s) for t, s in grouped))
    SplitGroup.objects.filter(reopen, closed_at__isnull=False).update(closed_at=None)


def same_creation(changes: dict, order: Order) -> bool:
    """Whether the unsaved ``order`` describes the order whose creation event
    recorded ``changes``: every creation field alike (compared as stored, so
    100 and 100.00 are one amount)."""
    for name in CREATION_FIELDS:
        field = Order._meta.get_field(name)
        recorded = changes.get(field.attname, "")
        if field.to_python(getattr(order, field.attname)) != (None if recorded is None else field.to_python(recorded)):
            return False
    return True


def lock_split_groups(groups) -> None:
    """Hold the split groups ``(trade_no, sku)`` until commit.

    Creating an order takes its group's lock, so of two orders created at once
    the second sees the first and the group is tracked; the sweep takes it
    before closing a finished group, so an order being created in it is seen
    first. Locks are taken in one order, so two holders never deadlock.
    SQLite runs one writing transaction at a time already.
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted(
        {
            int.from_bytes(hashlib.blake2b(f"{trade_no}\0{sku}".encode(), digest_size=8).digest(), "big", signed=True)
            for trade_no, sku in groups
        }
    )
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", [keys])
