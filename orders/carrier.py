"""Carrier scans: stored once, matched to orders, applied through the workflow.

A scan moves an order only along the online flow (SPEC §2.2, invariant 1):
the merchant's inbound parcel by its inbound tracking number, the outbound
parcel by the order's own online waybill. A scan that names an order under
any other number is recorded on the order as an offline shipment and moves
nothing. The carrier's ``occurred_at`` is the event time (invariant 7).
Scans that arrive before their order or their number, or before the scan
that must precede them, wait as ``pending`` and are applied when they fit.

A carrier's webhook batch is stored with one statement (``store_scans``);
its scans that each move their order one step are then applied as one set
through ``workflow.perform_set``, and the rest scan by scan (``apply_batch``).
"""

import contextvars
import datetime
import functools
import logging
import operator
from collections import Counter

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

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
# A batch applies its one-step scans as a set from this many on. A batch of
# one new scan (a carrier reporting parcel by parcel) takes the per-scan path
# of ``record_scan`` and the scan stations: a set of one saves a few queries,
# not worth a second way through for the commonest small request.
SET_FROM = 2
# The columns that make a scan the same scan (``carrier_scan_once``).
_ONCE = next(c.fields for c in CarrierScan._meta.constraints if c.name == "carrier_scan_once")
# The inbound number and the waybill: a step that gives either may release
# scans that arrived before it.
_NUMBERS = frozenset({"inbound_tracking_no", "waybill_no"})


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
    identity = _identity(
        carrier=carrier, tracking_no=tracking_no, status=status, occurred_at=occurred_at, order_no=order_no
    )
    try:
        with transaction.atomic():
            return CarrierScan.objects.create(outcome=ScanOutcome.PENDING, **identity), True
    except IntegrityError:
        return CarrierScan.objects.get(**identity), False


def store_scans(events) -> list[tuple[CarrierScan, bool]]:
    """Check a batch of scans (dicts of ``store_scan``'s arguments) and store
    them as ``pending``, all or none, applying nothing yet. Returns ``(scan,
    created)`` for each event, in order; a scan stored before, or earlier in
    the same batch, comes back as stored with ``created`` false. Raises
    ``errors.InvalidInput`` for the first bad scan, storing nothing.

    One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` writes the new ones;
    the scans already stored are read in one more query, only when there are
    any. Rows go in sorted by the scan's identity, so two batches sharing scans
    take the unique index's locks in one order and do not deadlock each other.
    """
    identities = [_identity(**event) for event in events]
    keys = [tuple(identity[name] for name in _ONCE) for identity in identities]
    with transaction.atomic():
        created = _insert_new(sorted(dict(zip(keys, identities, strict=True)).items()))
        missing = {key for key in keys if key not in created}
        found = {}
        if missing:
            known = functools.reduce(operator.or_, (Q(**dict(zip(_ONCE, key, strict=True))) for key in missing))
            for scan in CarrierScan.objects.filter(known).select_related("order"):
                found[tuple(getattr(scan, name) for name in _ONCE)] = scan
    stored, seen = [], set()
    for key in keys:
        if key in created and key not in seen:
            stored.append((created[key], True))
        else:
            stored.append((created.get(key) or found[key], False))
        seen.add(key)
    return stored


def _identity(*, carrier, tracking_no, status, occurred_at, order_no="") -> dict:
    """A scan's identity, checked: the fields of ``carrier_scan_once``."""
    cleaned = inputs.clean_params(
        Action.OFFLINE_SHIPMENT, {"carrier": carrier, "tracking_no": tracking_no, "status": status}
    )
    if occurred_at is None:
        raise errors.InvalidInput(inputs.msg_required, field="occurred_at", name="occurred_at")
    occurred_at = inputs.clean_scan_time(occurred_at)
    order_no = inputs.clean_text({"order_no": order_no}, "order_no", required=False, max_length=64)
    return {
        "carrier": cleaned["carrier"],
        "tracking_no": cleaned["tracking_no"],
        "status": status,
        "occurred_at": occurred_at,
        "order_no": order_no,
    }


def _insert_new(rows) -> dict:
    """Insert the scans ``rows`` (``(key, identity)``) that are not stored
    yet; return the new ones by key, as instances."""
    meta = CarrierScan._meta
    quote = connection.ops.quote_name
    now = timezone.now()
    fields = [meta.get_field(name) for name in (*_ONCE, "outcome", "received_at")]
    columns = ", ".join(quote(f.column) for f in fields)
    once = ", ".join(quote(meta.get_field(name).column) for name in _ONCE)
    back = f"{quote(meta.pk.column)}, {once}"
    row = f"({', '.join(['%s'] * len(fields))})"
    at = _ONCE.index("occurred_at")
    scans = [CarrierScan(outcome=ScanOutcome.PENDING, received_at=now, **identity) for _key, identity in rows]
    written = {}
    size = max(connection.ops.bulk_batch_size(fields, scans), 1)  # SQLite's limit on parameters
    with connection.cursor() as cursor:
        for start in range(0, len(scans), size):
            chunk = scans[start : start + size]
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(chunk))} "
                f"ON CONFLICT ({once}) DO NOTHING RETURNING {back}",
                [f.get_db_prep_save(getattr(scan, f.attname), connection) for scan in chunk for f in fields],
            )
            for pk, *key in cursor.fetchall():
                key[at] = _moment(key[at])
                written[tuple(key)] = pk
    created = {}
    for (key, _identity), scan in zip(rows, scans, strict=True):
        if key in written:
            scan.pk = written[key]
            scan._state.adding, scan._state.db = False, connection.alias
            created[key] = scan
    return created


def _moment(value) -> datetime.datetime:
    # SQLite hands back the naive UTC time it stores; PostgreSQL an aware one.
    return value if timezone.is_aware(value) else timezone.make_aware(value, datetime.UTC)


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
                if attempt < attempts and _contended(exc):
                    continue
                logger.warning("carrier scan %s stored but not applied yet; the periodic pass will", pk, exc_info=True)
            except (DatabaseError, errors.WorkflowError):
                logger.warning("carrier scan %s stored but not applied yet; the periodic pass will", pk, exc_info=True)
            left += 1
            break
    return left


def apply_batch(scans, attempts: int = 3) -> dict[int, CarrierScan]:
    """Apply the scans of one webhook batch, just stored (``store_scans``'s
    new instances, whose fields are as stored), and return the ones whose
    outcome it settled, by pk and with their order, so that the answer need
    not read them again; the others are read back.

    1. Claim the scans still ``pending`` (one that another transaction is
       resolving is left to it) and lock, in one ``SELECT … FOR UPDATE ORDER
       BY id``, every order they name or carry the number of.
    2. Decide each scan on its order as locked (``_one_step``). A scan that
       moves its only order exactly one step along the online flow, with no
       other scan of the batch on that order, that number or that split
       group, joins the set. The rest (early or late scans, offline ones,
       numbers no order has, parcels of several orders, scans that would take
       several steps) keep the per-scan path, which decides step by step.
    3. Take the set's steps through ``workflow.perform_set``: the workflow's
       own table, guards, effects, events, fees and reactions. Mark their
       scans ``applied``, then apply the scans that were waiting for those
       orders, as ``apply_scan`` does after a step. A step the workflow
       refuses goes back to the per-scan path.
    4. Apply the rest one by one (``apply_stored``), in the carrier's order
       (the order of ``scans``).

    The set is one transaction, tried again on lock contention up to
    ``attempts`` times; if it still fails, its scans take the per-scan path,
    and whatever fails there too stays ``pending`` for the periodic pass.
    """
    scans = list(scans)
    settled = _try_set(scans, attempts) if len(scans) >= SET_FROM else {}
    apply_stored([scan.pk for scan in scans if scan.pk not in settled], attempts=attempts)
    return settled


def _try_set(scans, attempts) -> dict:
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return _apply_set(scans)
        except OperationalError as exc:
            if attempt < attempts and _contended(exc):
                continue
            logger.warning("carrier scans could not be applied as a set; one by one instead", exc_info=True)
        except (DatabaseError, errors.WorkflowError):
            logger.warning("carrier scans could not be applied as a set; one by one instead", exc_info=True)
        break
    return {}


def _apply_set(stored) -> dict:
    """Inside the set's transaction: steps 1 to 3 of ``apply_batch``. Returns
    the scans applied, by pk; the rest take the per-scan path."""
    pks = [scan.pk for scan in stored]
    # Only the claim is read: a scan still pending is as it was stored (its
    # outcome and order are all that ever change).
    claimed = set(
        CarrierScan.objects.select_for_update(skip_locked=True)
        .filter(pk__in=pks, outcome=ScanOutcome.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    scans = sorted((scan for scan in stored if scan.pk in claimed), key=operator.attrgetter("pk"))
    named = {scan.order_no for scan in scans if scan.order_no}
    numbers = {scan.tracking_no for scan in scans if not scan.order_no}
    # Each number column is read through its partial index (non-empty
    # numbers), however many numbers the batch carries.
    orders = list(
        Order.objects.select_for_update()
        .filter(
            Q(order_no__in=named)
            | (Q(waybill_no__in=numbers) & ~Q(waybill_no=""))
            | (Q(inbound_tracking_no__in=numbers) & ~Q(inbound_tracking_no=""))
        )
        .order_by("pk")
    )
    matched = _match(scans, orders)
    on_order = Counter(order.pk for found in matched.values() for order in found)
    on_number = Counter(scan.tracking_no for scan in scans)
    on_group = Counter((o.trade_no, o.sku) for o in {o.pk: o for found in matched.values() for o in found}.values())
    chosen = []
    for scan in scans:
        found = matched[scan.pk]
        if len(found) != 1:
            continue
        order = found[0]
        if on_order[order.pk] > 1 or on_number[scan.tracking_no] > 1 or on_group[(order.trade_no, order.sku)] > 1:
            continue
        action = _one_step(scan, order)
        if action is not None:
            chosen.append((scan, order, action))
    if len(chosen) < SET_FROM:
        return {}
    steps = [
        workflow.Step(order, action, {"carrier": scan.carrier, "tracking_no": scan.tracking_no}, scan.occurred_at)
        for scan, order, action in chosen
    ]
    # The set's own scans are not waiting for the orders they are moving.
    token = _resolving.set(_resolving.get() | {scan.pk for scan, _order, _action in chosen})
    try:
        results = workflow.perform_set(steps, CARRIER)
    finally:
        _resolving.reset(token)
    applied = []
    for (scan, order, _action), result in zip(chosen, results, strict=True):
        if not isinstance(result, errors.WorkflowError):
            scan.outcome, scan.order = ScanOutcome.APPLIED, order
            applied.append(scan)
    _save_applied(applied)
    _apply_waiting([scan.order for scan in applied])
    return {scan.pk: scan for scan in applied}


def _save_applied(scans) -> None:
    """Save the outcome ``applied`` and the order of each of ``scans``."""
    if connection.vendor != "postgresql":
        CarrierScan.objects.bulk_update(scans, ["outcome", "order"])
        return
    # PostgreSQL: the pairs as two arrays; a CASE arm per scan costs more to
    # build than the update itself.
    meta, quote = CarrierScan._meta, connection.ops.quote_name
    table, key = quote(meta.db_table), quote(meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {quote(meta.get_field('outcome').column)} = %s, "
            f"{quote(meta.get_field('order').column)} = v.order_id "
            f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(scan_id, order_id) WHERE {table}.{key} = v.scan_id",
            [ScanOutcome.APPLIED.value, [scan.pk for scan in scans], [scan.order_id for scan in scans]],
        )


def _match(scans, orders) -> dict[int, list[Order]]:
    """The orders each scan is about, as ``_resolve`` finds them: the order
    it names, or else every order with its number as inbound number or
    waybill, in id order."""
    by_no = {order.order_no: order for order in orders}
    by_number: dict[str, list[Order]] = {}
    for order in orders:
        for number in {order.inbound_tracking_no, order.waybill_no} - {""}:
            by_number.setdefault(number, []).append(order)
    return {
        scan.pk: ([by_no[scan.order_no]] if scan.order_no in by_no else [])
        if scan.order_no
        else by_number.get(scan.tracking_no, [])
        for scan in scans
    }


def _one_step(scan, order):
    """The action ``scan`` takes on ``order`` when that is the whole of it: one
    step, on the order's own inbound number or waybill, from where the order
    is. ``None`` for anything else (early, late, offline, finished, a number
    the scan would give the order first)."""
    if order.state in TERMINAL_STATES or scan.tracking_no not in {order.inbound_tracking_no, order.waybill_no} - {""}:
        return None
    # From here a step never leads to another for the same scan: after it the
    # order is past what the scan reports, or finished (see ``_apply``).
    step = _next_step(scan, order)
    return step if step in (Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY) else None


def _apply_waiting(orders) -> None:
    """``apply_waiting_scans`` for those of ``orders`` that have a scan
    waiting, found for them all in one query."""
    if not orders:
        return
    numbers = {number for order in orders for number in (order.inbound_tracking_no, order.waybill_no) if number}
    waiting = set(
        CarrierScan.objects.filter(outcome=ScanOutcome.PENDING)
        .filter(
            (Q(order_no__in={order.order_no for order in orders}) & ~Q(order_no=""))
            | Q(order_no="", tracking_no__in=numbers)
        )
        .exclude(pk__in=_resolving.get())
        .order_by()
        .values_list("order_no", "tracking_no")
        .distinct()
    )
    if not waiting:
        return
    named = {order_no for order_no, _number in waiting if order_no}
    numbered = {number for order_no, number in waiting if not order_no}
    for order in orders:
        if order.order_no in named or {order.inbound_tracking_no, order.waybill_no} & numbered:
            apply_waiting_scans(order)


def _contended(exc) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in LOCK_CONTENTION


def on_steps(steps, actor):
    """``on_step`` for a set of steps (``workflow.perform_set``): the scans
    waiting for any of the new numbers are found in one query."""
    _apply_waiting([order for order, event, _params in steps if _NUMBERS & event.payload["changes"].keys()])


@workflow.set_wise(on_steps)
def on_step(order, event, actor, params):
    """After a workflow step (one of ``workflow.REACTIONS``): a new inbound
    number or waybill may be what scans that arrived early were waiting for.
    Applying one calls ``workflow.perform`` again."""
    if _NUMBERS & event.payload["changes"].keys():
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
