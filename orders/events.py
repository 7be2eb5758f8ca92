"""Writing and replaying the order event log (SPEC §2.2, invariant 4).

Every event stores the fields it changed, so the log alone rebuilds an
order: ``replay`` folds the events in sequence and must equal the row.
"""

import datetime
from decimal import Decimal

from orders.models import Order, OrderEvent

# The fields an order's events rebuild: everything but the row's identity and
# bookkeeping (``id``, ``version``, ``created_at``).
TRACKED_FIELDS = tuple(f.attname for f in Order._meta.concrete_fields if f.name not in {"id", "version", "created_at"})


def to_json(value):
    """A field value as JSON keeps it, without losing precision (microseconds, cents)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def snapshot(order: Order, fields=TRACKED_FIELDS) -> dict:
    """The tracked fields of ``order`` as JSON values."""
    return {name: to_json(getattr(order, name)) for name in fields}


def build_event(order, *, action, actor, from_state, changes, params, occurred_at) -> OrderEvent:
    """An unsaved event for ``order`` after its version was bumped for this change."""
    return OrderEvent(
        order=order,
        seq=order.version,
        action=action,
        source=actor.source,
        actor_user=actor.user,
        actor_organisation=actor.organisation,
        from_state=from_state,
        to_state=order.state,
        payload={
            "changes": {name: to_json(value) for name, value in changes.items()},
            **({"params": {k: to_json(v) for k, v in params.items()}} if params else {}),
        },
        occurred_at=occurred_at,
    )


def replay(events) -> dict:
    """Fold events (in ``seq`` order) into the tracked fields they describe."""
    fields: dict = {}
    for event in events:
        fields.update(event.payload.get("changes", {}))
        fields["state"] = event.to_state
    return fields


def replay_order(order: Order) -> dict:
    """The tracked fields of ``order`` as its own event log rebuilds them."""
    return replay(order.events.order_by("seq"))
