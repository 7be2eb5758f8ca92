"""The one door through which an order is created and changes state (SPEC §2).

Views, API endpoints, carrier scans, Celery tasks and commands call
``create_order``, ``perform`` or ``apply_deadlines``; nothing else writes
``Order.state``. Each call locks what it changes, checks that this actor may
take this step from this state, enforces the invariants of SPEC §2.2, and
writes the order, its ``OrderEvent`` and any fee in one transaction, or
raises one of ``orders.errors`` and writes nothing.
"""

import datetime
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors, inputs
from orders.choices import (
    FEE_RESULTS,
    OPEN_STATES,
    TERMINAL_STATES,
    Action,
    AppraisalResult,
    BlockedStage,
    EventSource,
    FeeKind,
    OrderState,
    VerifyOutcome,
)
from orders.events import build_event, snapshot
from orders.models import FeeCharge, Order, OrderEvent, SplitGroup
from portal.choices import OrganisationKind

S = OrderState
A = Action
MERCHANT = OrganisationKind.MERCHANT
PROVIDER = OrganisationKind.PROVIDER
PLATFORM = OrganisationKind.PLATFORM
SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who acts, for which organisation, and through which channel."""

    source: str
    user: object = None
    organisation: object = None

    @classmethod
    def of_user(cls, user, source=EventSource.WEB):
        return cls(source=source, user=user, organisation=user.organisation if user.organisation_id else None)

    @classmethod
    def of_organisation(cls, organisation, source=EventSource.API):
        return cls(source=source, organisation=organisation)

    @classmethod
    def system(cls, source):
        return cls(source=source)

    @property
    def role(self) -> str | None:
        if self.organisation is not None:
            return self.organisation.kind
        return SYSTEM if self.user is None else None


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
for _move in TRANSITIONS:
    _ROLES_BY_ACTION[_move.action] = _ROLES_BY_ACTION.get(_move.action, frozenset()) | _move.roles


def roles_for(action) -> frozenset:
    """The roles that may ever take ``action``."""
    return _ROLES_BY_ACTION.get(action, frozenset())


def moves_from(state, action) -> list[Move]:
    return [m for m in TRANSITIONS if m.action == action and m.source == state]


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


# --- reactions ------------------------------------------------------------------

# What other parts of the portal must do in the same transaction as a step
# (carrier scans waiting for a new number apply; a blocked flow opens its risk
# case and reaches the platform at once). The apps that own those reactions
# register them when they start.
_REACTIONS: list = []


def on_step(reaction):
    """Register ``reaction(order, event, actor)`` to run after every step, inside its transaction."""
    if reaction not in _REACTIONS:
        _REACTIONS.append(reaction)
    return reaction


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


def perform(order: Order, action: str, actor: Actor, *, occurred_at=None, expected_version=_FROM_INSTANCE, **params):
    """Take ``action`` on ``order`` as ``actor`` and return the order as it now is.

    ``expected_version`` is the version the actor saw; by default the version
    of the ``order`` instance passed. If the order changed since,
    ``errors.Conflict`` is raised and nothing is written. System sources
    (carrier, sweep) pass ``None`` to act on the order as it is now.
    ``occurred_at`` is when it happened (the carrier's time for a scan);
    it defaults to now. Raises an ``errors.WorkflowError`` on any refusal.
    """
    if expected_version is _FROM_INSTANCE:
        expected_version = order.version
    cleaned = inputs.clean_params(action, params)
    when = inputs.clean_time(occurred_at)
    roles = roles_for(action)
    if not roles:
        raise errors.InvalidInput(inputs.msg_unknown_action, field="action", action=action)
    _check_actor(order, action, actor, roles)

    with transaction.atomic():
        current, group = _lock(order, action, cleaned)
        if expected_version is not None and current.version != expected_version:
            raise errors.Conflict()
        if current.state in TERMINAL_STATES:
            raise errors.OrderIsTerminal(state=S(current.state).label)
        move = _find_move(current, action, cleaned)
        change = _Change(current, move, actor, cleaned, when)
        _GUARDS.get(action, _no_guard)(change, group)
        _EFFECTS.get(action, _no_effect)(change)
        _save(change)
    return current


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
    if action == A.APPRAISE and params.get("result") in FEE_RESULTS:
        group = list(locked.split_group(order.trade_no, order.sku).order_by("pk"))
        for member in group:
            if member.pk == order.pk:
                return member, group
        raise Order.DoesNotExist  # pragma: no cover - the caller holds the order
    return locked.get(pk=order.pk), None


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
    order = change.order
    from_state = order.state
    if change.move.target != from_state:
        change.fields["state"] = change.move.target
        change.fields["state_changed_at"] = change.occurred_at
    for name, value in change.fields.items():
        setattr(order, name, value)
    order.version += 1
    order.save(update_fields=[*change.fields, "version"])
    event = build_event(
        order,
        action=change.move.action,
        actor=change.actor,
        from_state=from_state,
        changes=change.fields,
        params=change.params,
        occurred_at=change.occurred_at,
    )
    event.save()
    _charge_fees(order, change)
    for reaction in _REACTIONS:
        reaction(order, event, change.actor)


def _charge_fees(order, change):
    """SPEC §2.3: a logistics fee when the online waybill is picked up, an
    appraisal fee when a pass/fail order completes or returns."""
    move = change.move
    if move.action == A.CARRIER_PICKUP and move.target == S.OUTBOUND:
        _charge(order, FeeKind.LOGISTICS, order.provider.logistics_fee, change.occurred_at, order.waybill_no)
    if move.target in (S.COMPLETED, S.RETURNED) and order.appraisal_result in FEE_RESULTS:
        _charge(order, FeeKind.APPRAISAL, order.provider.appraisal_fee, change.occurred_at)


def _charge(order, kind, amount, when, waybill_no=""):
    FeeCharge.objects.create(order=order, kind=kind, amount=amount, charged_at=when, waybill_no=waybill_no)


# --- creation -------------------------------------------------------------------


def create_order(actor: Actor, **fields) -> Order:
    """Create an order as the platform and write its first event.

    ``fields`` are the §6.2 creation fields with organisations as instances.
    Raises ``errors.NotAllowed`` for any actor but the platform,
    ``errors.TradeOfOtherMerchant`` if the trade has orders of another
    merchant and ``errors.Conflict`` if the order number exists.
    """
    if actor.role != PLATFORM:
        raise errors.NotAllowed(action=A.CREATE.label)
    order = Order(state=S.AWAITING_SHIPMENT, state_changed_at=fields.get("paid_at") or timezone.now(), **fields)
    try:
        order.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise errors.InvalidInput(_msg_invalid_order, fields=exc.message_dict) from None
    try:
        with transaction.atomic():
            # The trade's own lock (an empty SKU) as well as the group's: two
            # orders of one trade for two merchants, created at once with
            # different SKUs, must not both pass the check below.
            lock_split_groups([(order.trade_no, order.sku), (order.trade_no, "")])
            if Order.objects.filter(trade_no=order.trade_no).exclude(merchant_id=order.merchant_id).exists():
                raise errors.TradeOfOtherMerchant(trade_no=order.trade_no)
            order.save(force_insert=True)
            # The log starts from the row as stored (e.g. 100 becomes 100.00).
            order.refresh_from_db()
            event = build_event(
                order,
                action=A.CREATE,
                actor=actor,
                from_state="",
                changes=snapshot(order),
                params={},
                occurred_at=order.paid_at,
            )
            event.save()
            if Order.objects.split_group(order.trade_no, order.sku).exclude(pk=order.pk).exists():
                # A second order of the same trade and SKU: the group is tracked from now on.
                group, _created = SplitGroup.objects.get_or_create(trade_no=order.trade_no, sku=order.sku)
                if group.closed_at is not None:
                    SplitGroup.objects.filter(pk=group.pk).update(closed_at=None)
            for reaction in _REACTIONS:
                reaction(order, event, actor)
    except IntegrityError:
        raise errors.Conflict(_msg_exists, order_no=order.order_no) from None
    order.refresh_from_db()
    return order


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


# --- the deadline, set-wise ------------------------------------------------------


def apply_deadlines(now=None, batch_size=500) -> dict:
    """SPEC §2.1: past ``auto_confirm_at``, a delivered order completes and any
    other open order is auto-refunded (a loss).

    Works in batches of locked rows (``SKIP LOCKED`` on PostgreSQL) with a
    state condition on every update, so two runs at once share the work and
    never move an order twice. The event time is the deadline itself. Returns
    how many orders were completed and auto-refunded.
    """
    now = now or timezone.now()
    totals = {"completed": 0, "auto_refunded": 0}
    actor = Actor.system(EventSource.SWEEP)
    while True:
        with transaction.atomic():
            rows = list(
                Order.objects.open()
                .filter(auto_confirm_at__lte=now)
                .select_for_update(skip_locked=True)
                .order_by("auto_confirm_at", "pk")
                .values("pk", "state", "version", "auto_confirm_at", "appraisal_result", "provider_id")[:batch_size]
            )
            if not rows:
                return totals
            _expire_batch(rows, actor, totals)


def _expire_batch(rows, actor, totals):
    events, fees = [], []
    for target in (S.COMPLETED, S.AUTO_REFUNDED):
        batch = [r for r in rows if _expiry_target(r["state"]) == target]
        if not batch:
            continue
        updates = {"state": target, "state_changed_at": F("auto_confirm_at"), "version": F("version") + 1}
        if target == S.COMPLETED:
            updates["confirmed_at"] = F("auto_confirm_at")
        moved = Order.objects.filter(pk__in=[r["pk"] for r in batch], state__in=[r["state"] for r in batch]).update(
            **updates
        )
        if moved != len(batch):
            # Cannot happen under the row locks; refuse rather than log events that did not happen.
            raise errors.Conflict()
        totals[target.value] += moved
        for row in batch:
            changes = {"state_changed_at": row["auto_confirm_at"]}
            if target == S.COMPLETED:
                changes["confirmed_at"] = row["auto_confirm_at"]
                if row["appraisal_result"] in FEE_RESULTS:
                    fees.append(row)
            stub = Order(pk=row["pk"], state=target, version=row["version"] + 1)
            events.append(
                build_event(
                    stub,
                    action=A.EXPIRE,
                    actor=actor,
                    from_state=row["state"],
                    changes=changes,
                    params={},
                    occurred_at=row["auto_confirm_at"],
                )
            )
    OrderEvent.objects.bulk_create(events)
    if fees:
        _charge_appraisal_fees(fees)


def _expiry_target(state):
    (move,) = moves_from(state, A.EXPIRE)
    return move.target


def _charge_appraisal_fees(rows):
    from portal.models import Organisation

    fee_by_provider = dict(
        Organisation.objects.filter(pk__in={r["provider_id"] for r in rows}).values_list("pk", "appraisal_fee")
    )
    FeeCharge.objects.bulk_create(
        [
            FeeCharge(
                order_id=r["pk"],
                kind=FeeKind.APPRAISAL,
                amount=fee_by_provider[r["provider_id"]],
                charged_at=r["auto_confirm_at"],
            )
            for r in rows
        ]
    )
