"""How long each provider takes over each stage of the online flow, and each
carrier over the journey to the buyer, from the order events:
``StageDuration``, refreshed as a whole every quarter of an hour
(``orders.tasks.refresh_stage_durations``) over a rolling window.

A stage is a state an order is moved out of along the flow: the provider's
five (``PROVIDER_STAGES``) and the outbound journey (``TRANSIT``, picked up →
delivered or returned). One sample is one order leaving the stage forward
within the window: the time from the state-changing event that brought it
into the stage to the one that took it out. Leaving by a refund or the
deadline is not a finished stage and is not counted; a blocked flow's report
does not change the state and so does not cut the stage short.

Three kinds of row (``StageDuration``): per provider and stage; per stage
over all providers (``provider`` empty: what a provider with too few samples
of its own is forecast by); and for the journey, per carrier (``carrier``
set, the carrier the delivery scan named).

1. Read the samples set-wise: the events that left a stage in the window,
   each with the time its order entered that stage (one correlated lookup on
   the ``(order, seq)`` index per event).
2. The median and the 90th percentile of each group, by ``percentile_cont``
   over grouping sets on PostgreSQL, and the same interpolation in Python
   elsewhere.
3. Replace the table's rows in one transaction: readers see the old figures
   until the new ones are committed, and two refreshes at once queue.
"""

import math
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, F, OuterRef, Q, Subquery, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.choices import FLOW_ORDER, Action, OrderState
from orders.models import OrderEvent, StageDuration

S = OrderState
# The provider's stages, in flow order: signed in → appraised → inspected →
# packed → waybill printed → picked up.
PROVIDER_STAGES = (S.SIGNED_IN, S.APPRAISED, S.INSPECTED, S.PACKED, S.WAYBILL_PRINTED)
# The journey to the buyer: picked up → delivered (or, after a failed
# appraisal, returned to the merchant).
TRANSIT = S.OUTBOUND
STAGES = (*PROVIDER_STAGES, TRANSIT)
# The step that normally ends each stage: what the provider is timed on.
STAGE_ENDS = {
    S.SIGNED_IN: Action.APPRAISE,
    S.APPRAISED: Action.INSPECT,
    S.INSPECTED: Action.PACK,
    S.PACKED: Action.PRINT_WAYBILL,
    S.WAYBILL_PRINTED: Action.CARRIER_PICKUP,
    S.OUTBOUND: Action.CARRIER_DELIVERY,
}
# The rolling window the figures are measured over (``FORECAST_WINDOW_DAYS``).
WINDOW = timedelta(days=settings.FORECAST_WINDOW_DAYS)
MEDIAN = 0.5
P90 = 0.9


def _leaves_forward() -> Q:
    """An event that takes an order out of one of ``STAGES`` to a later state of the flow."""
    condition = Q(pk__in=[])
    for stage in STAGES:
        later = FLOW_ORDER[FLOW_ORDER.index(stage) + 1 :]
        if stage == TRANSIT:
            later = [*later, S.RETURNED]
        condition |= Q(from_state=stage, to_state__in=[str(s) for s in later])
    return condition


def samples(now, window=WINDOW):
    """One row per order that finished a stage in ``(now - window, now]``:
    ``provider``, ``carrier`` (of the journey; empty for the provider's
    stages), ``stage``, ``entered_at``, ``left_at``. ``entered_at`` is
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
        .annotate(
            entered_at=Subquery(entered),
            carrier=Coalesce(
                KeyTextTransform("carrier", KeyTextTransform("params", "payload")), Value(""), output_field=CharField()
            ),
        )
        .order_by()
        .values(
            "entered_at", "carrier", provider=F("order__provider_id"), stage=F("from_state"), left_at=F("occurred_at")
        )
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
# Three grouping sets: per provider, over all providers, per carrier (the
# journey's only: the provider's stages have no carrier).
_FIGURES = """
WITH sample AS MATERIALIZED ({rows})
SELECT CASE WHEN GROUPING(provider) = 0 THEN provider END,
       CASE WHEN GROUPING(carrier) = 0 THEN carrier ELSE '' END,
       stage,
       percentile_cont({median}) WITHIN GROUP (ORDER BY left_at - entered_at),
       percentile_cont({p90}) WITHIN GROUP (ORDER BY left_at - entered_at),
       COUNT(*), %s, %s
FROM sample
WHERE entered_at IS NOT NULL
GROUP BY GROUPING SETS ((provider, stage), (stage), (carrier, stage))
HAVING GROUPING(carrier) = 1 OR (stage = %s AND carrier <> '')
"""
_COLUMNS = ("provider_id", "carrier", "stage", "median", "p90", "samples", "window", "computed_at")


def _figures_sql(now, window):
    sql, params = samples(now, window).query.sql_with_params()
    return _FIGURES.format(median=MEDIAN, p90=P90, rows=sql), [*params, window, now, TRANSIT]


def refresh(now=None, window=WINDOW) -> int:
    """Recompute every stage duration over ``window`` up to ``now``; returns
    how many rows the table holds now."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Writers queue behind one another; readers are not held up.
                cursor.execute("LOCK TABLE orders_stageduration IN SHARE ROW EXCLUSIVE MODE")
                cursor.execute("DELETE FROM orders_stageduration")
                sql, params = _figures_sql(now, window)
                columns = ", ".join(f'"{name}"' for name in _COLUMNS)
                cursor.execute(f"INSERT INTO orders_stageduration ({columns}) {sql}", params)
                return cursor.rowcount
        StageDuration.objects.all().delete()
        return len(StageDuration.objects.bulk_create(_in_python(samples(now, window), now, window)))


def figures(now, window=WINDOW) -> list[StageDuration]:
    """The rows ``refresh`` would write for ``now``, unsaved: what the figures
    were at a past moment (``risks.replay``)."""
    if connection.vendor != "postgresql":
        return _in_python(samples(now, window), now, window)
    with connection.cursor() as cursor:
        cursor.execute(*_figures_sql(now, window))
        return [StageDuration(**dict(zip(_COLUMNS, row, strict=True))) for row in cursor.fetchall()]


def _in_python(rows, now, window) -> list[StageDuration]:
    """The same figures as the PostgreSQL statement, computed here from the same rows."""
    spent = defaultdict(list)
    for row in rows.iterator(chunk_size=5000):
        if row["entered_at"] is None:
            continue
        took = row["left_at"] - row["entered_at"]
        spent[row["provider"], "", row["stage"]].append(took)
        spent[None, "", row["stage"]].append(took)
        if row["stage"] == TRANSIT and row["carrier"]:
            spent[None, row["carrier"], row["stage"]].append(took)
    found = []
    for (provider, carrier, stage), values in spent.items():
        values.sort()
        found.append(
            StageDuration(
                provider_id=provider,
                carrier=carrier,
                stage=stage,
                median=percentile_cont(values, MEDIAN),
                p90=percentile_cont(values, P90),
                samples=len(values),
                window=window,
                computed_at=now,
            )
        )
    return found
