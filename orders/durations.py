"""How long each provider takes over each stage of the online flow, from the
order events: ``StageDuration``, refreshed as a whole every quarter of an hour
(``orders.tasks.refresh_stage_durations``) over a rolling window.

A stage is a state a provider moves an order out of (``STAGES``). One sample
is one order leaving the stage forward along the flow (``FLOW_ORDER``) within
the window: the time from the state-changing event that brought it into the
stage to the one that took it out. Leaving by a refund or the deadline is not
a finished stage and is not counted; a blocked flow's report does not change
the state and so does not cut the stage short.

1. Read the samples set-wise: the events that left a stage in the window,
   each with the time its order entered that stage (one correlated lookup on
   the ``(order, seq)`` index per event).
2. Per provider and stage, the median and the 90th percentile, by
   ``percentile_cont`` on PostgreSQL, and the same interpolation in Python
   elsewhere.
3. Replace the table's rows in one transaction: readers see the old figures
   until the new ones are committed, and two refreshes at once queue.
"""

import math
from collections import defaultdict
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from orders.choices import FLOW_ORDER, Action, OrderState
from orders.models import OrderEvent, StageDuration

S = OrderState
# The provider's stages, in flow order: signed in → appraised → inspected →
# packed → waybill printed → picked up.
STAGES = (S.SIGNED_IN, S.APPRAISED, S.INSPECTED, S.PACKED, S.WAYBILL_PRINTED)
# The step that normally ends each stage: what the provider is timed on.
STAGE_ENDS = {
    S.SIGNED_IN: Action.APPRAISE,
    S.APPRAISED: Action.INSPECT,
    S.INSPECTED: Action.PACK,
    S.PACKED: Action.PRINT_WAYBILL,
    S.WAYBILL_PRINTED: Action.CARRIER_PICKUP,
}
WINDOW = timedelta(days=30)
MEDIAN = 0.5
P90 = 0.9


def _leaves_forward() -> Q:
    """An event that takes an order out of one of ``STAGES`` to a later state of the flow."""
    condition = Q(pk__in=[])
    for stage in STAGES:
        later = FLOW_ORDER[FLOW_ORDER.index(stage) + 1 :]
        condition |= Q(from_state=stage, to_state__in=[str(s) for s in later])
    return condition


def samples(now, window=WINDOW):
    """One row per order that finished a stage in ``(now - window, now]``:
    ``provider``, ``stage``, ``entered_at``, ``left_at``. ``entered_at`` is
    ``None`` when the order's history lacks the step that began the stage
    (a row to skip)."""
    entered = (
        OrderEvent.objects.filter(
            order_id=OuterRef("order_id"), seq__lt=OuterRef("seq"), to_state=OuterRef("from_state")
        )
        .exclude(from_state=F("to_state"))
        .order_by("-seq")
        .values("occurred_at")[:1]
    )
    return (
        OrderEvent.objects.filter(_leaves_forward(), occurred_at__gt=now - window, occurred_at__lte=now)
        .annotate(entered_at=Subquery(entered))
        .order_by()
        .values("entered_at", provider=F("order__provider_id"), stage=F("from_state"), left_at=F("occurred_at"))
    )


def percentile_cont(ordered: list, fraction: float):
    """The value at ``fraction`` of the way through ``ordered`` (sorted, not
    empty), interpolating linearly between neighbours: PostgreSQL's
    ``percentile_cont``."""
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


# The samples are materialised first, so that each one's entry into its
# stage is looked up once (inlined, the lookup would run once per mention).
_INSERT = """
WITH sample AS MATERIALIZED ({rows})
INSERT INTO orders_stageduration (provider_id, stage, median, p90, samples, "window", computed_at)
SELECT provider, stage,
       percentile_cont({median}) WITHIN GROUP (ORDER BY left_at - entered_at),
       percentile_cont({p90}) WITHIN GROUP (ORDER BY left_at - entered_at),
       COUNT(*), %s, %s
FROM sample
WHERE entered_at IS NOT NULL
GROUP BY provider, stage
"""


def refresh(now=None, window=WINDOW) -> int:
    """Recompute every provider's stage durations over ``window`` up to
    ``now``; returns how many (provider, stage) rows the table holds now."""
    now = now or timezone.now()
    rows = samples(now, window)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Writers queue behind one another; readers are not held up.
                cursor.execute("LOCK TABLE orders_stageduration IN SHARE ROW EXCLUSIVE MODE")
                cursor.execute("DELETE FROM orders_stageduration")
                sql, params = rows.query.sql_with_params()
                cursor.execute(_INSERT.format(median=MEDIAN, p90=P90, rows=sql), [*params, window, now])
                return cursor.rowcount
        StageDuration.objects.all().delete()
        return len(StageDuration.objects.bulk_create(_in_python(rows, now, window)))


def _in_python(rows, now, window) -> list[StageDuration]:
    """The same figures as the PostgreSQL statement, computed here from the same rows."""
    spent = defaultdict(list)
    for row in rows.iterator(chunk_size=5000):
        if row["entered_at"] is not None:
            spent[row["provider"], row["stage"]].append(row["left_at"] - row["entered_at"])
    found = []
    for (provider, stage), values in sorted(spent.items()):
        values.sort()
        found.append(
            StageDuration(
                provider_id=provider,
                stage=stage,
                median=percentile_cont(values, MEDIAN),
                p90=percentile_cont(values, P90),
                samples=len(values),
                window=window,
                computed_at=now,
            )
        )
    return found
