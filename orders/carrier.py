"""Carrier scans: stored once, matched to orders, applied through the workflow.

A scan moves an order only along the online flow (SPEC §2.2, invariant 1):
the merchant's inbound parcel by its inbound tracking number, the outbound
parcel by the order's own online waybill. A scan that names an order under
any other number is recorded on the order as an offline shipment and moves
nothing. The carrier's ``occurred_at`` is the event time (invariant 7).
Scans that arrive before their order or their number, or before the scan
that must precede them, wait as ``pending`` and are applied when they fit.
"""

import contextvars
import logging

from django.db import DatabaseError, IntegrityError, OperationalError, transaction
from django.db.models import Q

from orders import errors, inputs, workflow
from orders.choices import FLOW_ORDER, TERMINAL_STATES, Action, OrderState, ScanOutcome, ScanStatus
from orders.models import CarrierScan, Order
from portal.choices import EventSource

S = OrderState
logger = logging.getLogger(__name__)
CARRIER = workflow.Actor.system(EventSource.CARRIER)
# Scans being applied right now: applying one can give its order a number,
# and the scans waiting for that number must not include the one at hand.
_resolving: contextvars.ContextVar[frozenset] = contextvars.ContextVar("resolving", default=frozenset())
LOCK_CONTENTION = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


def record_scan(*, carrier, tracking_no, status, occurred_at, order_no="") -> tuple[CarrierScan, bool]:
    """Store one scan and apply what it says. Returns ``(scan, created)``;
    a scan already stored is returned unchanged with ``created`` false."""
    with transaction.atomic():
        scan, created = store_scan(
            carrier=carrier, tracking_no=tracking_no, status=status, occurred_at=occurred_at, order_no=order_no
        )
        if created:
            scan = apply_scan(scan.pk)
    return scan, created


def store_scan(*, carrier, tracking_no, status, occurred_at, order_no="") -> tuple[CarrierScan, bool]:
    """Check one scan and store it as ``pending``, applying nothing yet.
    Returns ``(scan, created)``; raises ``errors.InvalidInput`` for a bad scan."""
    cleaned = inputs.clean_params(
        Action.OFFLINE_SHIPMENT, {"carrier": carrier, "tracking_no": tracking_no, "status": status}
    )
    if occurred_at is None:
        raise errors.InvalidInput(inputs.msg_required, field="occurred_at", name="occurred_at")
    occurred_at = inputs.clean_scan_time(occurred_at)
    order_no = inputs.clean_text({"order_no": order_no}, "order_no", required=False, max_length=64)
    identity = {
        "carrier": cleaned["carrier"],
        "tracking_no": cleaned["tracking_no"],
        "status": status,
        "occurred_at": occurred_at,
        "order_no": order_no,
    }
    try:
        with transaction.atomic():
            return CarrierScan.objects.create(outcome=ScanOutcome.PENDING, **identity), True
    except IntegrityError:
        return CarrierScan.objects.get(**identity), False


def apply_scan(pk: int) -> CarrierScan:
    """Apply a stored scan if it is still ``pending`` and fits now; returns it
    as it stands. A scan another transaction is resolving is left to it."""
    with transaction.atomic():
        scan = (
            CarrierScan.objects.select_for_update(skip_locked=True).filter(pk=pk, outcome=ScanOutcome.PENDING).first()
        )
        if scan is not None:
            for order in _resolve(scan):
                apply_waiting_scans(order)
    return CarrierScan.objects.select_related("order").get(pk=pk)


def apply_stored(pks, attempts: int = 3) -> int:
    """Apply scans that were stored first (the webhook), each in its own
    transaction; returns how many could not be applied now.

    A scan that meets lock contention is tried again, up to ``attempts``
    times; one that still fails, or that the workflow refuses, stays
    ``pending`` in the database and the periodic pass (``retry_pending``)
    applies it later. Nothing stored is lost by a failure here.
    """
    left = 0
    for pk in pks:
        for attempt in range(1, attempts + 1):
            try:
                apply_scan(pk)
                break
            except OperationalError as exc:
                if attempt < attempts and getattr(exc.__cause__, "sqlstate", None) in LOCK_CONTENTION:
                    continue
                logger.warning("carrier scan %s stored but not applied yet; the periodic pass will", pk, exc_info=True)
            except (DatabaseError, errors.WorkflowError):
                logger.warning("carrier scan %s stored but not applied yet; the periodic pass will", pk, exc_info=True)
            left += 1
            break
    return left


def on_step(order, event, actor, params):
    """After a workflow step (one of ``workflow.REACTIONS``): a new inbound
    number or waybill may be what scans that arrived early were waiting for.
    Applying one calls ``workflow.perform`` again."""
    if {"inbound_tracking_no", "waybill_no"} & event.payload["changes"].keys():
        apply_waiting_scans(order)


def on_created(orders, events, actor):
    """After orders are created (``workflow.CREATION_REACTIONS``): scans that
    named one of them before it existed apply now, found with one query."""
    waiting = set(
        CarrierScan.objects.filter(outcome=ScanOutcome.PENDING, order_no__in=[o.order_no for o in orders])
        .values_list("order_no", flat=True)
        .distinct()
    )
    for order in orders:
        if order.order_no in waiting:
            apply_waiting_scans(order)


def apply_waiting_scans(order: Order) -> int:
    """Apply pending scans that now fit ``order`` (it just got a number, was
    just created, or just moved); returns how many were applied."""
    applied = 0
    while True:
        numbers = [n for n in (order.inbound_tracking_no, order.waybill_no) if n]
        waiting = (
            CarrierScan.objects.filter(outcome=ScanOutcome.PENDING)
            .filter(Q(order_no=order.order_no) | Q(order_no="", tracking_no__in=numbers))
            .exclude(pk__in=_resolving.get())
            # a scan another transaction is resolving right now is left to it
            .select_for_update(skip_locked=True)
        )
        progressed = False
        for scan in waiting.order_by("occurred_at", "pk"):
            if _resolve(scan):
                applied += 1
                progressed = True
                order.refresh_from_db()
                break
        if not progressed:
            return applied


def retry_pending(page=500) -> int:
    """Apply waiting scans whose order has turned up meanwhile; returns how
    many were applied.

    Both sides of the match try when they arrive (a scan looks for its
    order, a new number looks for its scans), but a scan stored while the
    number was being given, each in its own open transaction, sees neither.
    Beat runs this, so such a scan waits minutes, not forever. Every order
    with a waiting scan is visited, a page at a time; one that fails (a lock
    held too long) is logged and left for the next pass.
    """
    pending = CarrierScan.objects.filter(outcome=ScanOutcome.PENDING)
    by_number = pending.filter(order_no="").values("tracking_no")
    matched = Order.objects.filter(
        Q(order_no__in=pending.exclude(order_no="").values("order_no"))
        | Q(inbound_tracking_no__in=by_number)
        | Q(waybill_no__in=by_number)
    ).order_by("pk")
    applied, after = 0, 0
    while True:
        pks = list(matched.filter(pk__gt=after).values_list("pk", flat=True)[:page])
        if not pks:
            return applied
        after = pks[-1]
        for pk in pks:
            try:
                with transaction.atomic():
                    order = Order.objects.filter(pk=pk).first()
                    if order is not None:
                        applied += apply_waiting_scans(order)
            except (DatabaseError, errors.WorkflowError):
                logger.warning("waiting scans of order %s could not be applied now", pk, exc_info=True)


def _resolve(scan) -> list[Order]:
    """Decide what ``scan`` means now, apply it, save its outcome; returns the orders it changed."""
    if scan.order_no:
        orders = list(Order.objects.filter(order_no=scan.order_no))
    else:
        orders = list(
            Order.objects.filter(Q(waybill_no=scan.tracking_no) | Q(inbound_tracking_no=scan.tracking_no)).order_by(
                "pk"
            )
        )
    outcomes, changed = [], []
    token = _resolving.set(_resolving.get() | {scan.pk})
    try:
        for order in orders:
            outcome = _apply(scan, order)
            outcomes.append(outcome)
            if outcome in (ScanOutcome.APPLIED, ScanOutcome.OFFLINE):
                changed.append(order)
    finally:
        _resolving.reset(token)
    for outcome in (ScanOutcome.OFFLINE, ScanOutcome.APPLIED, ScanOutcome.PENDING, ScanOutcome.IGNORED):
        if outcome in outcomes:
            scan.outcome = outcome
            break
    else:
        scan.outcome = ScanOutcome.PENDING
    scan.order = orders[0] if len(orders) == 1 else None
    scan.save(update_fields=["outcome", "order"])
    return changed


def _apply(scan, order) -> str:
    """Apply ``scan`` to ``order`` one workflow step at a time, deciding each
    step afresh: a step can itself release other waiting scans."""
    applied = False
    params = {"carrier": scan.carrier, "tracking_no": scan.tracking_no}
    while True:
        # Decide on the order as it is now, and hold it until commit: a
        # person's step in between would make the decided step wrong.
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.state in TERMINAL_STATES:
            break
        step = _next_step(scan, order)
        if step is None:
            workflow.perform(
                order,
                Action.OFFLINE_SHIPMENT,
                CARRIER,
                occurred_at=scan.occurred_at,
                expected_version=None,
                status=scan.status,
                **params,
            )
            return ScanOutcome.OFFLINE
        if step in (ScanOutcome.PENDING, ScanOutcome.IGNORED):
            return ScanOutcome.APPLIED if applied else step
        workflow.perform(order, step, CARRIER, occurred_at=scan.occurred_at, expected_version=None, **params)
        applied = True
    return ScanOutcome.APPLIED if applied else ScanOutcome.IGNORED


def _next_step(scan, order):
    """The next workflow action this scan takes on ``order``; ``PENDING`` when
    it came too early, ``IGNORED`` when the order is already past it, and
    ``None`` for a scan outside the online flow."""
    number, picked_up = scan.tracking_no, scan.status == ScanStatus.PICKED_UP
    if order.waybill_no and number == order.waybill_no:
        wanted = S.WAYBILL_PRINTED if picked_up else S.OUTBOUND
    elif order.inbound_tracking_no and number == order.inbound_tracking_no:
        wanted = S.AWAITING_SHIPMENT if picked_up else S.INBOUND
    elif scan.order_no and order.state == S.AWAITING_SHIPMENT and not order.inbound_tracking_no:
        # The carrier reports the merchant's parcel before the merchant did:
        # its number becomes the inbound number (a delivery implies the pickup).
        return Action.CARRIER_PICKUP
    elif scan.order_no:
        return None
    else:
        return ScanOutcome.PENDING
    here, there = _position(order.state), _position(wanted)
    if here == there:
        return Action.CARRIER_PICKUP if picked_up else Action.CARRIER_DELIVERY
    return ScanOutcome.PENDING if here < there else ScanOutcome.IGNORED


def _position(state) -> int:
    return FLOW_ORDER.index(state)
