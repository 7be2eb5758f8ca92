"""The confirmation deadline, applied set-wise (SPEC §2.1).

Past ``auto_confirm_at``, a delivered order completes and any other open order
is auto-refunded (a loss). Beat runs ``apply_deadlines`` (``orders.tasks``):

1. take a batch of due open orders, locked (``SKIP LOCKED`` on PostgreSQL), so
   two runs at once share the work;
2. move each target state's rows with one conditional ``UPDATE`` (the state
   each row was read in), so no order moves twice;
3. write one ``EXPIRE`` event per order, in one insert, dated at the deadline;
4. charge the appraisal fees through ``workflow.charge_fees``, the function
   ``perform`` charges through, so SPEC §2.3 has one home;
5. repeat until no due order is left.

It is the one writer of ``Order.state`` besides ``orders.workflow``, and it
takes its targets from the workflow's transition table.

It runs no reactions (``workflow.REACTIONS``), on purpose: per-order reactions
would turn this set-wise pass into a Python loop over every due order. Nothing
is lost: the carrier reaction has nothing to do here (an expiry gives no new
number), and the risk sweep, the safety net for changes made set-wise,
resolves the cases of expired orders on its next pass. See
``docs/decisions.md``, "Batch expiry runs no reactions".
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders import errors
from orders.choices import Action, OrderState
from orders.events import build_event
from orders.models import Order, OrderEvent
from orders.workflow import FeeDue, charge_fees, moves_from
from portal.actors import Actor
from portal.choices import EventSource

S = OrderState


def apply_deadlines(now=None, batch_size=500) -> dict:
    """Complete the delivered orders and auto-refund the other open orders
    whose ``auto_confirm_at`` is at or before ``now`` (default: now).

    Works in batches of ``batch_size`` locked rows, each batch in its own
    transaction, with a state condition on every update. The event time is
    the deadline itself. Returns how many orders were completed and
    auto-refunded.
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
            fees.append(
                FeeDue(
                    row["pk"],
                    row["provider_id"],
                    Action.EXPIRE,
                    target,
                    row["appraisal_result"],
                    row["auto_confirm_at"],
                )
            )
            stub = Order(pk=row["pk"], state=target, version=row["version"] + 1)
            events.append(
                build_event(
                    stub,
                    action=Action.EXPIRE,
                    actor=actor,
                    from_state=row["state"],
                    changes=changes,
                    params={},
                    occurred_at=row["auto_confirm_at"],
                )
            )
    OrderEvent.objects.bulk_create(events)
    charge_fees(fees)


def _expiry_target(state):
    (move,) = moves_from(state, Action.EXPIRE)
    return move.target
