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

from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from orders.choices import FEE_RESULTS, OPEN_STATES, Action, AppraisalResult, OrderState, SplitChoice
from orders.models import Order, OrderEvent, SplitGroup, in_split_group
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
    arrived = Coalesce("inbound_delivered_at", "state_changed_at")
    verified = OrderEvent.objects.filter(
        order=OuterRef("pk"), action=Action.VERIFY_PENDING, occurred_at__gt=ctx.now - threshold
    )
    rows = (
        _base(orders)
        .filter(Q(state=S.ARRIVED) | Q(state=S.INBOUND, inbound_delivered_at__isnull=False))
        .annotate(arrived_at=arrived)
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
    """Orders a carrier reported moving under a number that is not their online waybill."""
    events = OrderEvent.objects.filter(action=Action.OFFLINE_SHIPMENT)
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


def _groups():
    """Split groups with their members counted, one row a group."""
    members = Order.objects.filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))

    def count(condition=None):
        qs = members.filter(condition) if condition is not None else members
        return Subquery(qs.values("trade_no").annotate(n=Count("pk")).values("n")[:1])

    first = members.order_by("pk")
    return SplitGroup.objects.annotate(
        size=Coalesce(count(), 0),
        open_orders=Coalesce(count(Q(state__in=_open_states)), 0),
        appraised=Coalesce(count(Q(appraisal_result__in=sorted(FEE_RESULTS))), 0),
        picked_up=Coalesce(count(Q(picked_up_at__isnull=False)), 0),
        not_refunded=Coalesce(count(~Q(state=S.REFUNDED)), 0),
        kept_and_delivered=Coalesce(
            count(
                Q(appraisal_result=AppraisalResult.NOT_REQUIRED, state__in=[S.DELIVERED, S.COMPLETED])
                | Q(appraisal_result__in=sorted(FEE_RESULTS))
            ),
            0,
        ),
        total=Coalesce(Subquery(members.values("trade_no").annotate(t=Sum("amount")).values("t")[:1]), Decimal(0)),
        first_order=Subquery(first.values("pk")[:1]),
        provider_id=Subquery(first.values("provider_id")[:1]),
        merchant_id=Subquery(first.values("merchant_id")[:1]),
        appraisal_fee=Subquery(first.values("provider__appraisal_fee")[:1]),
        logistics_fee=Subquery(first.values("provider__logistics_fee")[:1]),
        deadline=Subquery(first.values("auto_confirm_at")[:1]),
    ).filter(size__gt=1)


def _group_hit(ctx, rule, g, *, severity, fingerprint, money, owner_id=None) -> Hit:
    return Hit(
        rule=rule,
        subject=f"group:{g['trade_no']}/{g['sku']}",
        fingerprint=str(fingerprint),
        order_id=g["first_order"],
        trade_no=g["trade_no"],
        sku=g["sku"],
        owner_id=owner_id or g["provider_id"],
        severity=severity,
        due_at=ctx.due(rule),
        money_at_risk=money,
        details={"orders": g["size"], "choice": g["choice"]},
    )


GROUP_FIELDS = (
    "trade_no",
    "sku",
    "choice",
    "size",
    "open_orders",
    "appraised",
    "picked_up",
    "not_refunded",
    "kept_and_delivered",
    "total",
    "first_order",
    "provider_id",
    "appraisal_fee",
    "logistics_fee",
    "deadline",
)


def split_order(ctx) -> list[Hit]:
    """Split groups still open that do not yet match the merchant's choice:
    A, every extra order refunded; B, every extra order kept as "no appraisal
    needed" and delivered."""
    rows = _groups().filter(open_orders__gt=0).values(*GROUP_FIELDS)
    hits = []
    for g in rows:
        if g["choice"] == SplitChoice.REFUND_AND_REBUY and g["not_refunded"] <= 1:
            continue
        if (
            g["choice"] == SplitChoice.KEEP_NOT_REQUIRED
            and g["kept_and_delivered"] >= g["size"]
            and g["appraised"] <= 1
        ):
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
    """Split groups where more than one order carries pass or fail."""
    rows = _groups().filter(appraised__gt=1).values(*GROUP_FIELDS)
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_APPRAISAL_FEE,
            g,
            severity=Severity.CRITICAL,
            fingerprint=g["appraised"],
            money=(g["appraised"] - 1) * g["appraisal_fee"],
        )
        for g in rows
    ]


def duplicate_logistics_fee(ctx) -> list[Hit]:
    """Split groups with more than one waybill picked up, when the merchant did not choose B."""
    rows = _groups().filter(picked_up__gt=1).exclude(choice=SplitChoice.KEEP_NOT_REQUIRED).values(*GROUP_FIELDS)
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_LOGISTICS_FEE,
            g,
            severity=Severity.HIGH,
            fingerprint=g["picked_up"],
            money=(g["picked_up"] - 1) * g["logistics_fee"],
        )
        for g in rows
    ]


def unconfirmable_split_order(ctx, orders=None) -> list[Hit]:
    """ "No appraisal needed" orders of a split group that will never be confirmed:
    no waybill long after appraisal, or a waybill nobody picked up."""
    before = ctx.now - timedelta(hours=ctx.cfg.unconfirmable_hours)
    rows = (
        _base(orders)
        .filter(appraisal_result=AppraisalResult.NOT_REQUIRED)
        .filter(
            Q(state__in=[S.APPRAISED, S.INSPECTED, S.PACKED], waybill_no="", state_changed_at__lte=before)
            | Q(state=S.WAYBILL_PRINTED, waybill_printed_at__lte=before)
        )
        .filter(in_split_group())
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
