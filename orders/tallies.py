"""Figures the dashboard reads instead of adding up every open order or every
split group's fees on each request: ``OpenOrderTally`` and
``DuplicateFeeTally``, replaced as a whole every minute (beat,
``portal.tasks.refresh_dashboard_tallies``, which passes the thresholds, the
deadline bands and the window the dashboard uses).

1. Open orders: one grouped pass over the covering index ``order_open_board``,
   per merchant, provider, state and deadline band: how many, their amount,
   how many are over their state's SLA (``over_sla_q``).
2. Duplicate fees: every charge of the split groups that can hold a charge of
   the window (open, or closed since it began: a group closes only after its
   last charge, as ``extra_charges`` reads them), in one query; then, per
   viewer (the platform, the order's merchant, the order's provider), each
   charge after the first of its kind in the group, counted only among the
   viewer's own orders, is beyond correct handling unless it is a logistics
   fee of a group whose merchant chose to keep the orders. That is
   ``orders.fees.extra_charges`` for every scope at once (a test holds them
   equal).
3. Both tables are replaced in one transaction: readers see the old figures
   until the new ones are committed, and two refreshes at once queue.
"""

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, Sum, Value, When
from django.utils import timezone

from orders.choices import FeeKind, SplitChoice
from orders.inputs import MAX_SCAN_AHEAD
from orders.models import DuplicateFeeTally, FeeCharge, OpenOrderTally, Order, SplitGroup, over_sla_q


def open_orders(now: datetime, sla: Mapping[str, timedelta], bands: Mapping[str, Q]) -> list[OpenOrderTally]:
    """The open orders per merchant, provider, state and band. ``bands`` maps
    each band's code to the orders whose deadline falls in it, in order; an
    order in none of them is in the last."""
    *firsts, last = bands
    band = Case(
        *(When(bands[code], then=Value(code)) for code in firsts), default=Value(last), output_field=CharField()
    )
    rows = (
        Order.objects.open()
        .annotate(band=band)
        .values("merchant_id", "provider_id", "state", "band")
        .annotate(n=Count("state"), money=Sum("amount"), over=Count("state", filter=over_sla_q(sla, now)))
        .order_by()
    )
    return [
        OpenOrderTally(
            merchant_id=row["merchant_id"],
            provider_id=row["provider_id"],
            state=row["state"],
            band=row["band"],
            orders=row["n"],
            amount=row["money"] or Decimal(0),
            over_sla=row["over"],
            computed_at=now,
        )
        for row in rows
    ]


def duplicate_fees(now: datetime, since: datetime) -> list[DuplicateFeeTally]:
    """The fees charged beyond correct handling since ``since``, per viewer and local day."""
    group = {"trade_no": OuterRef("order__trade_no"), "sku": OuterRef("order__sku")}
    recent = SplitGroup.objects.filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since - MAX_SCAN_AHEAD), **group)
    kept = SplitGroup.objects.filter(choice=SplitChoice.KEEP_NOT_REQUIRED, **group)
    charges = (
        FeeCharge.objects.filter(Exists(recent))
        .annotate(kept=Exists(kept))
        .values_list(
            "pk",
            "order_id",
            "kind",
            "amount",
            "charged_at",
            "kept",
            F("order__trade_no"),
            F("order__sku"),
            F("order__merchant_id"),
            F("order__provider_id"),
        )
        .order_by()
    )
    # Per group and kind: the charges, first to last.
    runs = defaultdict(list)
    for pk, order_id, kind, amount, charged_at, kept_orders, trade_no, sku, merchant, provider in charges:
        runs[trade_no, sku, kind].append((charged_at, pk, order_id, amount, kept_orders, merchant, provider))
    here = timezone.get_current_timezone()
    orders, amounts = defaultdict(set), defaultdict(Decimal)
    for (_trade_no, _sku, kind), run in runs.items():
        if len(run) < 2:
            continue
        run.sort()
        # A viewer's first charge of the kind in the group is due; its later ones are not.
        seen = set()
        for charged_at, _pk, order_id, amount, kept_orders, merchant, provider in run:
            viewers = [viewer for viewer in (None, merchant, provider) if viewer in seen]
            seen.update((None, merchant, provider))
            if not viewers or charged_at < since or (kind == FeeKind.LOGISTICS and kept_orders):
                continue
            day = charged_at.astimezone(here).date()
            for viewer in viewers:
                orders[viewer, day].add(order_id)
                amounts[viewer, day] += amount
    return [
        DuplicateFeeTally(
            viewer_id=viewer, day=day, orders=len(orders[viewer, day]), amount=amounts[viewer, day], computed_at=now
        )
        for viewer, day in sorted(orders, key=lambda key: (key[0] or 0, key[1]))
    ]


def refresh(now: datetime, *, sla: Mapping[str, timedelta], bands: Mapping[str, Q], since: datetime) -> dict:
    """Recompute both tallies as of ``now``: the open orders against the SLA
    limits ``sla`` and the deadline bands ``bands``, the duplicate fees
    charged since ``since``. Answers how many rows each table holds."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Writers queue behind one another; readers are not held up.
                cursor.execute("LOCK TABLE orders_openordertally, orders_duplicatefeetally IN SHARE ROW EXCLUSIVE MODE")
        open_rows = open_orders(now, sla, bands)
        fee_rows = duplicate_fees(now, since)
        OpenOrderTally.objects.all().delete()
        DuplicateFeeTally.objects.all().delete()
        OpenOrderTally.objects.bulk_create(open_rows, batch_size=1000)
        DuplicateFeeTally.objects.bulk_create(fee_rows, batch_size=1000)
    return {"open": len(open_rows), "fees": len(fee_rows)}
