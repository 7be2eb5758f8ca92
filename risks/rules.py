"""The risk rules of SPEC §3, one function per rule code.

Each rule asks the database, with one or two indexed queries, which orders
or split groups hit it now, and returns them as ``Hit`` records: what the
case is about (``subject``), the evidence (``fingerprint``), its owner,
severity, due time and the money at risk. Rules read; the sweep decides
what to open and what to resolve.
"""

import datetime
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery

from orders.choices import FEE_RESULTS, OPEN_STATES, Action, AppraisalResult, OrderState, SplitChoice
from orders.models import ARRIVED_AT, Order, OrderEvent
from portal.choices import OrganisationKind
from portal.models import Organisation
from risks.choices import Rule, Severity

S = OrderState
_open_states = sorted(OPEN_STATES)

# How long the owner has to act on a new case of each rule.
RESPONSE_HOURS = {
    Rule.PENDING_SIGN_IN: 12,
    Rule.FLOW_BLOCKED: 4,
    Rule.OFFLINE_SHIPMENT: 4,
    Rule.SPLIT_ORDER: 24,
    Rule.DUPLICATE_APPRAISAL_FEE: 12,
    Rule.DUPLICATE_LOGISTICS_FEE: 12,
    Rule.UNCONFIRMABLE_SPLIT_ORDER: 12,
    Rule.STALLED: 12,
    Rule.DEADLINE_AT_RISK: 6,
}
# Rules whose cases go to the platform the moment they open.
ESCALATE_AT_ONCE = frozenset({Rule.FLOW_BLOCKED, Rule.OFFLINE_SHIPMENT})
# Who owns a stalled order, by state.
STALLED_OWNER = {
    S.AWAITING_SHIPMENT: OrganisationKind.MERCHANT,
    S.INBOUND: OrganisationKind.MERCHANT,
    S.SIGNED_IN: OrganisationKind.PROVIDER,
    S.APPRAISED: OrganisationKind.PROVIDER,
    S.INSPECTED: OrganisationKind.PROVIDER,
    S.PACKED: OrganisationKind.PROVIDER,
    S.WAYBILL_PRINTED: OrganisationKind.PROVIDER,
    S.OUTBOUND: OrganisationKind.PLATFORM,
}


@dataclass
class Hit:
    rule: str
    subject: str
    fingerprint: str
    order_id: int
    trade_no: str
    sku: str
    owner_id: int
    severity: str
    due_at: datetime.datetime
    money_at_risk: Decimal
    details: dict = field(default_factory=dict)


@dataclass
class Context:
    """What every rule needs for one sweep: the time, the thresholds, the platform."""

    now: datetime.datetime
    cfg: object
    platform_id: int | None
    groups: list | None = None

    @classmethod
    def build(cls, now, cfg):
        platform = (
            Organisation.objects.filter(kind=OrganisationKind.PLATFORM).order_by("pk").values_list("pk", flat=True)
        )
        return cls(now=now, cfg=cfg, platform_id=platform.first())

    def due(self, rule, deadline=None):
        """When a case opened now is due: its response time, but never after the
        point where escalating would come too late for the deadline."""
        due = self.now + timedelta(hours=RESPONSE_HOURS[rule])
        if deadline is not None:
            latest = deadline - timedelta(hours=self.cfg.escalate_overdue_after_hours + 6)
            due = max(self.now, min(due, latest))
        return due


def _base(orders):
    """All orders for the sweep, or just some when a workflow step asks about its own order."""
    return Order.objects.all() if orders is None else orders


ORDER_FIELDS = ("pk", "trade_no", "sku", "merchant_id", "provider_id", "amount", "auto_confirm_at", "state")


def _order_hit(ctx, rule, row, *, owner_id, severity, fingerprint, money=None, details=None) -> Hit:
    return Hit(
        rule=rule,
        subject=f"order:{row['pk']}",
        fingerprint=str(fingerprint),
        order_id=row["pk"],
        trade_no=row["trade_no"],
        sku=row["sku"],
        owner_id=owner_id,
        severity=severity,
        due_at=ctx.due(rule, row["auto_confirm_at"]),
        money_at_risk=row["amount"] if money is None else money,
        details=details or {"state": row["state"]},
    )


def pending_sign_in(ctx, orders=None) -> list[Hit]:
    """Parcels at the provider, unsigned for longer than the threshold and not
    verified within it (a verification is due again each threshold)."""
    threshold = timedelta(hours=ctx.cfg.pending_sign_in_hours)
    verified = OrderEvent.objects.filter(
        order=OuterRef("pk"), action=Action.VERIFY_PENDING, occurred_at__gt=ctx.now - threshold
    )
    rows = (
        _base(orders)
        .pending_sign_in()
        .annotate(arrived_at=ARRIVED_AT)
        .filter(arrived_at__lte=ctx.now - threshold)
        .exclude(Exists(verified))
        .values(*ORDER_FIELDS, "arrived_at")
    )
    high_before = ctx.now + timedelta(hours=ctx.cfg.pending_sign_in_high_within_hours)
    return [
        _order_hit(
            ctx,
            Rule.PENDING_SIGN_IN,
            r,
            owner_id=r["provider_id"],
            severity=Severity.HIGH if r["auto_confirm_at"] <= high_before else Severity.MEDIUM,
            fingerprint=r["arrived_at"].isoformat(),
            details={"state": r["state"], "arrived_at": r["arrived_at"].isoformat()},
        )
        for r in rows
    ]


def flow_blocked(ctx, orders=None) -> list[Hit]:
    """Open orders whose provider reported the online flow blocked."""
    reported = OrderEvent.objects.filter(order=OuterRef("pk"), action=Action.REPORT_BLOCKED).values("order")
    rows = (
        _base(orders)
        .filter(flow_blocked=True, state__in=_open_states)
        .annotate(reported_seq=Subquery(reported.annotate(m=Max("seq")).values("m")[:1]))
        .values(*ORDER_FIELDS, "blocked_stage", "reported_seq")
    )
    return [
        _order_hit(
            ctx,
            Rule.FLOW_BLOCKED,
            r,
            owner_id=ctx.platform_id,
            severity=Severity.HIGH,
            fingerprint=r["reported_seq"] or 0,
            details={"state": r["state"], "stage": r["blocked_stage"]},
        )
        for r in rows
    ]


def offline_shipment(ctx, orders=None) -> list[Hit]:
    """Open orders a carrier reported moving under a number that is not their
    online waybill. Once the order is finished its case closes, the loss (if
    any) on record in the case."""
    events = OrderEvent.objects.filter(action=Action.OFFLINE_SHIPMENT, order__state__in=_open_states)
    if orders is not None:
        events = events.filter(order__in=orders)
    rows = (
        events.values("order_id")
        .annotate(last_seq=Max("seq"), scans=Count("pk"))
        .values(
            "order_id",
            "last_seq",
            "scans",
            "order__trade_no",
            "order__sku",
            "order__amount",
            "order__auto_confirm_at",
            "order__state",
        )
    )
    return [
        Hit(
            rule=Rule.OFFLINE_SHIPMENT,
            subject=f"order:{r['order_id']}",
            fingerprint=str(r["last_seq"]),
            order_id=r["order_id"],
            trade_no=r["order__trade_no"],
            sku=r["order__sku"],
            owner_id=ctx.platform_id,
            severity=Severity.CRITICAL,
            due_at=ctx.due(Rule.OFFLINE_SHIPMENT),
            money_at_risk=r["order__amount"],
            details={"state": r["order__state"], "scans": r["scans"]},
        )
        for r in rows
    ]


# Each split group's members counted in one pass. The state and result codes
# are bound as parameters from their enums (see ``_read_groups``).
_GROUPS_SQL = """
SELECT g.id, g.trade_no, g.sku, g.choice,
       COUNT(*) AS size,
       COUNT(*) FILTER (WHERE o.state IN ({open})) AS open_orders,
       COUNT(*) FILTER (WHERE o.appraisal_result IN ({appraised})) AS appraised,
       COUNT(*) FILTER (WHERE o.picked_up_at IS NOT NULL) AS picked_up,
       COUNT(*) FILTER (WHERE o.state <> %(refunded)s) AS not_refunded,
       COUNT(*) FILTER (WHERE o.appraisal_result IN ({appraised})
                          OR (o.appraisal_result = %(not_required)s AND o.state IN ({delivered})))
           AS kept_and_delivered,
       SUM(o.amount) AS total,
       MIN(o.id) AS first_order,
       MIN(o.provider_id) AS provider_id
FROM orders_splitgroup g
JOIN orders_order o ON o.trade_no = g.trade_no AND o.sku = g.sku
WHERE g.closed_at IS NULL {only}
GROUP BY g.id, g.trade_no, g.sku, g.choice
"""
# The states of an order handed to the buyer: a kept "no appraisal needed"
# order counts once it reaches one.
_DELIVERED_STATES = (S.DELIVERED, S.COMPLETED)


def group_rows(ctx) -> list[dict]:
    """Every split group not yet closed, its members counted, in one query per
    sweep (the three group rules share it). Groups whose orders are all
    finished are closed by the sweep and not read again."""
    if ctx.groups is None:
        ctx.groups = _read_groups()
    return ctx.groups


def only_group(ctx, trade_no, sku):
    """Have the group rules of ``ctx`` read one split group only (a workflow
    step asking about its own order's group)."""
    ctx.groups = _read_groups((trade_no, sku))
    return ctx


def _read_groups(only=None) -> list[dict]:
    from django.db import connection

    params = {"refunded": str(S.REFUNDED), "not_required": str(AppraisalResult.NOT_REQUIRED)}

    def listed(name, values):
        # Bound one by one: an IN list reads the same on PostgreSQL and SQLite.
        keys = [f"{name}_{i}" for i in range(len(values))]
        params.update({key: str(value) for key, value in zip(keys, values, strict=True)})
        return ", ".join(f"%({key})s" for key in keys)

    sql = _GROUPS_SQL.format(
        open=listed("open", _open_states),
        appraised=listed("appraised", sorted(FEE_RESULTS)),
        delivered=listed("delivered", _DELIVERED_STATES),
        only="AND g.trade_no = %(trade_no)s AND g.sku = %(sku)s" if only else "",
    )
    if only:
        params["trade_no"], params["sku"] = only
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    providers = Organisation.objects.filter(pk__in={r["provider_id"] for r in rows})
    fees = {
        pk: (appraisal, logistics)
        for pk, appraisal, logistics in providers.values_list("pk", "appraisal_fee", "logistics_fee")
    }
    for row in rows:
        row["appraisal_fee"], row["logistics_fee"] = fees[row["provider_id"]]
        row["total"] = Decimal(row["total"])
    return rows


def _group_hit(ctx, rule, g, *, severity, fingerprint, money) -> Hit:
    return Hit(
        rule=rule,
        subject=f"group:{g['trade_no']}/{g['sku']}",
        fingerprint=str(fingerprint),
        order_id=g["first_order"],
        trade_no=g["trade_no"],
        sku=g["sku"],
        owner_id=g["provider_id"],
        severity=severity,
        due_at=ctx.due(rule),
        money_at_risk=money,
        details={"orders": g["size"], "choice": g["choice"]},
    )


def split_order(ctx) -> list[Hit]:
    """Split groups still open that do not yet match the merchant's choice:
    A, every extra order refunded; B, every extra order kept as "no appraisal
    needed" and delivered."""
    hits = []
    for g in group_rows(ctx):
        if not g["open_orders"]:
            continue
        if g["choice"] == SplitChoice.REFUND_AND_REBUY and g["not_refunded"] <= 1:
            continue
        kept = g["kept_and_delivered"] >= g["size"] and g["appraised"] <= 1
        if g["choice"] == SplitChoice.KEEP_NOT_REQUIRED and kept:
            continue
        hits.append(
            _group_hit(
                ctx,
                Rule.SPLIT_ORDER,
                g,
                severity=Severity.MEDIUM,
                fingerprint=f"{g['size']}:{g['choice']}",
                money=g["total"],
            )
        )
    return hits


def duplicate_appraisal_fee(ctx) -> list[Hit]:
    """Split groups, not yet finished, where more than one order carries pass or fail."""
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_APPRAISAL_FEE,
            g,
            severity=Severity.CRITICAL,
            fingerprint=g["appraised"],
            money=(g["appraised"] - 1) * g["appraisal_fee"],
        )
        for g in group_rows(ctx)
        if g["open_orders"] and g["appraised"] > 1
    ]


def duplicate_logistics_fee(ctx) -> list[Hit]:
    """Split groups, not yet finished, with more than one waybill picked up,
    when the merchant did not choose B."""
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_LOGISTICS_FEE,
            g,
            severity=Severity.HIGH,
            fingerprint=g["picked_up"],
            money=(g["picked_up"] - 1) * g["logistics_fee"],
        )
        for g in group_rows(ctx)
        if g["open_orders"] and g["picked_up"] > 1 and g["choice"] != SplitChoice.KEEP_NOT_REQUIRED
    ]


def unconfirmable_split_order(ctx, orders=None) -> list[Hit]:
    """ "No appraisal needed" orders of a split group that will never be confirmed:
    no waybill long after appraisal, or a waybill nobody picked up."""
    groups = {(g["trade_no"], g["sku"]) for g in group_rows(ctx) if g["open_orders"]}
    if not groups:
        return []
    before = ctx.now - timedelta(hours=ctx.cfg.unconfirmable_hours)
    # The clock runs from the appraisal, however many steps came after it.
    appraised = OrderEvent.objects.filter(order=OuterRef("pk"), action=Action.APPRAISE).order_by("-seq")
    rows = (
        _base(orders)
        .filter(trade_no__in={trade_no for trade_no, _ in groups})
        .filter(appraisal_result=AppraisalResult.NOT_REQUIRED)
        .annotate(appraised_at=Subquery(appraised.values("occurred_at")[:1]))
        .filter(
            Q(state__in=[S.APPRAISED, S.INSPECTED, S.PACKED], waybill_no="", appraised_at__lte=before)
            | Q(state=S.WAYBILL_PRINTED, waybill_printed_at__lte=before)
        )
        .values(*ORDER_FIELDS)
    )
    return [
        _order_hit(
            ctx,
            Rule.UNCONFIRMABLE_SPLIT_ORDER,
            r,
            owner_id=r["provider_id"],
            severity=Severity.HIGH,
            fingerprint=r["state"],
        )
        for r in rows
        if (r["trade_no"], r["sku"]) in groups
    ]


def stalled(ctx, orders=None) -> list[Hit]:
    """Orders in one state longer than its SLA; each state has its owner."""
    sla = ctx.cfg.sla()
    condition = Q()
    for state, limit in sla.items():
        condition |= Q(state=state, state_changed_at__lte=ctx.now - limit)
    rows = _base(orders).filter(condition).values(*ORDER_FIELDS, "state_changed_at")
    owners = {OrganisationKind.MERCHANT: "merchant_id", OrganisationKind.PROVIDER: "provider_id"}
    hits = []
    for r in rows:
        kind = STALLED_OWNER[r["state"]]
        owner = r[owners[kind]] if kind in owners else ctx.platform_id
        hits.append(
            _order_hit(
                ctx,
                Rule.STALLED,
                r,
                owner_id=owner,
                severity=Severity.MEDIUM,
                fingerprint=f"{r['state']}@{r['state_changed_at'].isoformat()}",
                details={"state": r["state"], "since": r["state_changed_at"].isoformat()},
            )
        )
    return hits


def deadline_at_risk(ctx, orders=None) -> list[Hit]:
    """Orders not yet delivered whose confirmation deadline is close: a loss in the making."""
    soon = ctx.now + timedelta(hours=ctx.cfg.deadline_at_risk_hours)
    rows = (
        _base(orders)
        .filter(state__in=_open_states, auto_confirm_at__lte=soon)
        .exclude(state=S.DELIVERED)
        .values(*ORDER_FIELDS)
    )
    return [
        _order_hit(
            ctx,
            Rule.DEADLINE_AT_RISK,
            r,
            owner_id=ctx.platform_id,
            severity=Severity.HIGH,
            fingerprint=r["auto_confirm_at"].isoformat(),
            details={"state": r["state"], "deadline": r["auto_confirm_at"].isoformat()},
        )
        for r in rows
    ]


RULES = {
    Rule.PENDING_SIGN_IN: pending_sign_in,
    Rule.FLOW_BLOCKED: flow_blocked,
    Rule.OFFLINE_SHIPMENT: offline_shipment,
    Rule.SPLIT_ORDER: split_order,
    Rule.DUPLICATE_APPRAISAL_FEE: duplicate_appraisal_fee,
    Rule.DUPLICATE_LOGISTICS_FEE: duplicate_logistics_fee,
    Rule.UNCONFIRMABLE_SPLIT_ORDER: unconfirmable_split_order,
    Rule.STALLED: stalled,
    Rule.DEADLINE_AT_RISK: deadline_at_risk,
}
# Evidence that changes means a new case, not the old one carried on: an
# order stalled in a new state is a new problem.
RESTART_ON_NEW_EVIDENCE = frozenset({Rule.STALLED})
