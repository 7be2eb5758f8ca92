"""The risk rules of SPEC §3: one function per rule code, and ``RULES``, the
table that declares each rule once with everything the portal does with its
cases (owner, severity, response time, escalation, what the owner is told).

Each rule asks the database, with one or two indexed queries, which orders
or split groups hit it now, and returns them as ``Hit`` records: what the
case is about (``subject``), the evidence (``fingerprint``), its owner,
severity, due time and the money at risk. Rules read; the sweep decides
what to open and what to resolve. The thresholds they read are
``RiskSettings`` fields, which administrators edit; ``RuleSpec.thresholds``
names them.
"""

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import Count, Exists, Func, Max, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from orders.choices import FEE_RESULTS, OPEN_STATES, TERMINAL_STATES, Action, AppraisalResult, OrderState, SplitChoice
from orders.forecast import Forecaster
from orders.models import ARRIVED_AT, KEPT_UNSHIPPED, OPEN_ORDERS, Order, OrderEvent, SplitGroup, any_over_sla
from portal.choices import OrganisationKind
from portal.models import NotificationKind, Organisation
from risks.choices import GROUP_RULES, EscalationCategory, Rule, Severity

S = OrderState
MERCHANT = OrganisationKind.MERCHANT
PROVIDER = OrganisationKind.PROVIDER
PLATFORM = OrganisationKind.PLATFORM
_open_states = sorted(OPEN_STATES)
# Said as the index conditions say it (``orders.models.OPEN_ORDERS``).
_finished_states = sorted(TERMINAL_STATES)


@dataclass(frozen=True)
class RuleSpec:
    """One rule of SPEC §3, declared once in ``RULES``: how it is evaluated and
    what the portal does with its cases.

    ``evaluate(ctx, orders=None)`` returns the rule's ``Hit`` records now.
    Every rule takes the same two arguments: ``orders`` narrows a rule about
    single orders to those orders (a workflow step asking about its own
    order); a group rule reads the split groups of ``ctx`` instead (every open
    group, or the one ``only_group`` chose) and leaves ``orders`` aside.
    """

    code: Rule
    evaluate: Callable
    # ``reads(ctx, orders=None)``: the rows the rule's hits come from, as a
    # queryset, before anything is decided in Python. No row, no hit: the
    # sweep asks whether any rule has a row, in one statement, before it
    # evaluates any (``risks.sweep``), so a sweep with nothing due costs a
    # few queries whatever the size of the history. And for a rule about
    # single orders, every row is a hit (``forecast_miss`` asks its forecast
    # in SQL exactly: tests/orders/test_forecast.py): the sweep compares
    # them with the live cases in SQL (``risks.sweep._evaluate``).
    reads: Callable
    # Whose case it is: an organisation kind, or one per order state.
    owner: str | Mapping[str, str]
    # The severity of its cases; a rule may raise it for one hit.
    severity: Severity
    # How long the owner has to act on a new case.
    response_hours: int
    # What an escalation of one of its cases is about.
    category: EscalationCategory
    # What the case page tells the owner to do.
    instructions: Promise
    # The ``RiskSettings`` fields it reads; administrators tune them there.
    thresholds: tuple[str, ...] = ()
    # The workflow step (an ``Action``) that is itself this risk: its case
    # opens with the step, not at the next sweep.
    opened_by: str = ""
    # Its cases go to the platform the moment they open.
    escalate_at_once: bool = False
    # Evidence that changes means a new case, not the old one carried on: an
    # order stalled in a new state is a new problem.
    restart_on_new_evidence: bool = False
    # The sides of the order ("merchant", "provider") told of a new case
    # besides its owner, and what they are sent.
    tells: tuple[str, ...] = ()
    tells_with: str = NotificationKind.CASE_OPENED
    # ``probes(ctx)``: ``reads`` in parts, for the sweep's probe, when one
    # condition over all of them leads PostgreSQL to walk every open order
    # to show there is none; each part is ordered as its index is, so the
    # planner takes the index, or asks from another side (the providers
    # with a row of ``reads``). ``[reads(ctx)]`` when not given.
    probes: Callable | None = None

    def subjects_hit(self, ctx, orders) -> set[str]:
        """The subjects the rule hits now among ``orders``: for a rule about
        single orders its rows (``reads``, each a hit) read as order ids
        alone, no hit built; a group rule is evaluated whole."""
        if self.group:
            return {hit.subject for hit in self.evaluate(ctx, orders)}
        read = self.reads(ctx, orders)
        return {order_subject(pk) for pk in read.values_list(order_column(read), flat=True)}

    def probe(self, ctx) -> list:
        """What the sweep's probe asks of this rule: any row of these."""
        return self.probes(ctx) if self.probes is not None else [self.reads(ctx)]

    @property
    def group(self) -> bool:
        """Whether the rule is about a whole split group (``GROUP_RULES``): its
        case belongs to every order of the group."""
        return self.code in GROUP_RULES

    def told(self, merchant_id, provider_id) -> list:
        """The organisations told of a new case about an order of that merchant and provider."""
        sides = {MERCHANT: merchant_id, PROVIDER: provider_id}
        return [sides[side] for side in self.tells if sides[side] is not None]

    def owner_of(self, state=None) -> str:
        """The kind of organisation that owns a case about an order in ``state``."""
        return self.owner[state] if isinstance(self.owner, Mapping) else self.owner


@dataclass(slots=True)
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
    # The order's merchant and provider, when the rule read them: whom a
    # case about a deadline also tells.
    merchant_id: int | None = None
    provider_id: int | None = None


# ``Context.platform_id`` before it is first needed.
_UNREAD = object()


@dataclass
class Context:
    """What every rule needs for one sweep: the time, the thresholds, the platform."""

    now: datetime.datetime
    cfg: object
    # The platform organisation's id, read when a case first needs an owner
    # (``platform``): a sweep with nothing due never asks.
    platform_id: int | None = _UNREAD
    groups: list | None = None
    # What ``due``, ``owner_id`` and ``group_details`` work out once per rule
    # (per state, per kind of group) for the thousands of hits of a sweep.
    _answers: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, now, cfg):
        return cls(now=now, cfg=cfg)

    def platform(self) -> int | None:
        """The platform organisation's id (``None`` if there is none)."""
        if self.platform_id is _UNREAD:
            platform = Organisation.objects.filter(kind=OrganisationKind.PLATFORM).order_by("pk")
            self.platform_id = platform.values_list("pk", flat=True).first()
        return self.platform_id

    def due(self, rule, deadline=None):
        """When a case opened now is due: its response time, but never after the
        point where escalating would come too late for the deadline."""
        due = self._answers.get(("due", rule))
        if due is None:
            due = self._answers["due", rule] = self.now + timedelta(hours=RULES[rule].response_hours)
        if deadline is not None:
            margin = self._answers.get("margin")
            if margin is None:
                margin = self._answers["margin"] = timedelta(hours=self.cfg.escalate_overdue_after_hours + 6)
            due = max(self.now, min(due, deadline - margin))
        return due

    def forecaster(self) -> Forecaster:
        """The stage durations as forecasts read them, loaded once per sweep."""
        found = self._answers.get("forecaster")
        if found is None:
            found = self._answers["forecaster"] = Forecaster.load(
                self.cfg.forecast_min_samples, timedelta(hours=self.cfg.forecast_margin_hours)
            )
        return found

    def group_details(self, size, choice) -> dict:
        """A group case's details, one dict for every group of that size and
        choice (they are only read)."""
        details = self._answers.get(("details", size, choice))
        if details is None:
            details = self._answers["details", size, choice] = {"orders": size, "choice": choice}
        return details

    def owner_id(self, rule, state=None, *, merchant_id=None, provider_id=None):
        """The organisation that owns a case of ``rule`` about an order in
        ``state`` (of that merchant and provider): the rule's owner kind."""
        kind = self._answers.get(("owner", rule, state))
        if kind is None:
            kind = self._answers["owner", rule, state] = RULES[rule].owner_of(state)
        if kind == MERCHANT:
            return merchant_id
        if kind == PROVIDER:
            return provider_id
        return self.platform()


def _base(orders):
    """All orders for the sweep, or just some when a workflow step asks about
    its own order; in no particular order (the sweep sorts what it writes)."""
    return (Order.objects.all() if orders is None else orders).order_by()


class _MomentField(models.DateTimeField):
    def from_db_value(self, value, expression, connection):
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value)
            if value.tzinfo is not datetime.UTC:
                value = value.astimezone(datetime.UTC)
        return value


class _Moment(Func):
    """A moment of an order, for a rule that reads thousands of them: on
    PostgreSQL sent as its text and turned into a datetime here, much faster
    than the driver reads timestamps through Django. The same aware datetime
    either way."""

    template = "%(expressions)s"
    output_field = _MomentField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(%(expressions)s AS text)", **extra)


ORDER_FIELDS = ("pk", "trade_no", "sku", "merchant_id", "provider_id", "amount", "state")


def _order_rows(orders, *fields, **moments):
    """What an order hit is made of (``_order_hit``): ``ORDER_FIELDS``, its
    deadline, and ``fields`` and ``moments`` (names of timestamps) besides."""
    return orders.values(
        *ORDER_FIELDS,
        *fields,
        deadline=_Moment("auto_confirm_at"),
        **{name: _Moment(column) for name, column in moments.items()},
    )


def order_column(rows) -> str:
    """The column holding the order's id in a rule's rows (``RuleSpec.reads``):
    orders, or events of an order."""
    return "pk" if rows.model is Order else "order_id"


def order_subject(order_id) -> str:
    """The subject of a case about one order."""
    return f"order:{order_id}"


def _order_hit(ctx, rule, row, *, fingerprint, severity=None, money=None, details=None) -> Hit:
    return Hit(
        rule=rule,
        subject=order_subject(row["pk"]),
        fingerprint=str(fingerprint),
        order_id=row["pk"],
        trade_no=row["trade_no"],
        sku=row["sku"],
        owner_id=ctx.owner_id(rule, row["state"], merchant_id=row["merchant_id"], provider_id=row["provider_id"]),
        severity=severity or RULES[rule].severity,
        due_at=ctx.due(rule, row["deadline"]),
        money_at_risk=row["amount"] if money is None else money,
        details=details or {"state": row["state"]},
        merchant_id=row["merchant_id"],
        provider_id=row["provider_id"],
    )


def _pending_sign_in_rows(ctx, orders=None):
    threshold = timedelta(hours=ctx.cfg.pending_sign_in_hours)
    verified = OrderEvent.objects.filter(
        order=OuterRef("pk"), action=Action.VERIFY_PENDING, occurred_at__gt=ctx.now - threshold
    )
    return (
        _base(orders)
        .pending_sign_in()
        .annotate(arrived_at=ARRIVED_AT)
        .filter(arrived_at__lte=ctx.now - threshold)
        .exclude(Exists(verified))
    )


def pending_sign_in(ctx, orders=None) -> list[Hit]:
    """Parcels at the provider, unsigned for longer than the threshold and not
    verified within it (a verification is due again each threshold)."""
    rows = _order_rows(_pending_sign_in_rows(ctx, orders), arrived="arrived_at")
    high_before = ctx.now + timedelta(hours=ctx.cfg.pending_sign_in_high_within_hours)
    return [
        _order_hit(
            ctx,
            Rule.PENDING_SIGN_IN,
            r,
            # The rule's severity (medium) until the deadline comes near.
            severity=Severity.HIGH if r["deadline"] <= high_before else None,
            fingerprint=r["arrived"].isoformat(),
            details={"state": r["state"], "arrived_at": r["arrived"].isoformat()},
        )
        for r in rows
    ]


def _flow_blocked_rows(ctx, orders=None):
    return _base(orders).filter(OPEN_ORDERS, flow_blocked=True)


def flow_blocked(ctx, orders=None) -> list[Hit]:
    """Open orders whose provider reported the online flow blocked."""
    reported = OrderEvent.objects.filter(order=OuterRef("pk"), action=Action.REPORT_BLOCKED).values("order")
    rows = _flow_blocked_rows(ctx, orders).annotate(
        reported_seq=Subquery(reported.annotate(m=Max("seq")).values("m")[:1])
    )
    rows = _order_rows(rows, "blocked_stage", "reported_seq")
    return [
        _order_hit(
            ctx,
            Rule.FLOW_BLOCKED,
            r,
            fingerprint=r["reported_seq"] or 0,
            details={"state": r["state"], "stage": r["blocked_stage"]},
        )
        for r in rows
    ]


def _offline_shipment_rows(ctx, orders=None):
    # The offline shipments are read from their own partial index
    # (``order_event_offline``), not from the whole event log.
    events = OrderEvent.objects.filter(~Q(order__state__in=_finished_states), action=Action.OFFLINE_SHIPMENT)
    return events if orders is None else events.filter(order__in=orders)


def offline_shipment(ctx, orders=None) -> list[Hit]:
    """Open orders a carrier reported moving under a number that is not their
    online waybill. Once the order is finished its case closes, the loss (if
    any) on record in the case."""
    rows = (
        _offline_shipment_rows(ctx, orders)
        .values("order_id")
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
            subject=order_subject(r["order_id"]),
            fingerprint=str(r["last_seq"]),
            order_id=r["order_id"],
            trade_no=r["order__trade_no"],
            sku=r["order__sku"],
            owner_id=ctx.owner_id(Rule.OFFLINE_SHIPMENT, r["order__state"]),
            severity=RULES[Rule.OFFLINE_SHIPMENT].severity,
            due_at=ctx.due(Rule.OFFLINE_SHIPMENT),
            money_at_risk=r["order__amount"],
            details={"state": r["order__state"], "scans": r["scans"]},
        )
        for r in rows
    ]


# Each split group's members counted in one pass. The state and result codes
# are bound as parameters from their enums (see ``_read_groups``).
_GROUP_COUNTS = """
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
"""
# On PostgreSQL each group's orders are counted through the split-group index
# (``order_split_group``), a few rows per group, rather than by joining the
# groups to a scan of every order: the groups are a small part of the orders.
# A group without an open order (``order_open_split_group`` answers that from
# the index) is not counted at all: it comes back with nothing counted, to be
# closed.
_GROUPS_SQL = {
    "postgresql": """
SELECT g.id, g.trade_no, g.sku, g.choice, m.*
FROM orders_splitgroup g
CROSS JOIN LATERAL (
  SELECT {counts}
  FROM orders_order o
  WHERE o.trade_no = g.trade_no AND o.sku = g.sku
    AND EXISTS (SELECT 1 FROM orders_order p
                WHERE p.trade_no = g.trade_no AND p.sku = g.sku AND NOT p.state IN ({finished}))
) m
WHERE g.closed_at IS NULL {only}
""",
    "other": """
SELECT g.id, g.trade_no, g.sku, g.choice, {counts}
FROM orders_splitgroup g
JOIN orders_order o ON o.trade_no = g.trade_no AND o.sku = g.sku
WHERE g.closed_at IS NULL {only}
GROUP BY g.id, g.trade_no, g.sku, g.choice
""",
}
# What each group rule asks of a group's counts, decided in SQL beside them:
# the rules read these flags, and the sweep's probe (``RuleSpec.reads``) asks
# whether any group has one set, or has no open order left (to be closed).
_GROUP_DUE = {
    # Not yet as the merchant chose: A, every extra order refunded; B, every
    # extra order kept as "no appraisal needed" and delivered.
    Rule.SPLIT_ORDER: """c.open_orders > 0 AND NOT (
        (c.choice = %(refund_and_rebuy)s AND c.not_refunded <= 1)
        OR (c.choice = %(keep_not_required)s AND c.kept_and_delivered >= c.size AND c.appraised <= 1))""",
    Rule.DUPLICATE_APPRAISAL_FEE: "c.open_orders > 0 AND c.appraised > 1",
    Rule.DUPLICATE_LOGISTICS_FEE: "c.open_orders > 0 AND c.picked_up > 1 AND c.choice <> %(keep_not_required)s",
}
_CLOSABLE = "c.open_orders = 0"
_GROUP_FLAGS = """
SELECT c.*, {flags}
FROM ({groups}) c
"""
# The states of an order handed to the buyer: a kept "no appraisal needed"
# order counts once it reaches one.
_DELIVERED_STATES = (S.DELIVERED, S.COMPLETED)


@dataclass(slots=True)
class GroupRow:
    """One split group not yet closed, its members counted (``group_rows``);
    also read by name like a mapping (``g["open_orders"]``). Of a group
    without an open order only that may be counted (no rule reads the rest:
    the sweep closes it)."""

    id: int
    trade_no: str
    sku: str
    choice: str
    size: int
    open_orders: int
    appraised: int
    picked_up: int
    not_refunded: int
    kept_and_delivered: int
    total: Decimal
    first_order: int | None
    provider_id: int | None
    # Whether each group rule holds for the group (``_GROUP_DUE``).
    split_due: bool
    appraisal_due: bool
    logistics_due: bool
    # The provider's fees, what a duplicate costs.
    appraisal_fee: Decimal | None
    logistics_fee: Decimal | None

    def __getitem__(self, name):
        return getattr(self, name)


# The columns of the split groups' query, in GroupRow's order.
_GROUP_COLUMNS = [name for name in GroupRow.__slots__ if not name.endswith("_fee")]


def group_rows(ctx) -> list[GroupRow]:
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


_FLAG_NAMES = {
    Rule.SPLIT_ORDER: "split_due",
    Rule.DUPLICATE_APPRAISAL_FEE: "appraisal_due",
    Rule.DUPLICATE_LOGISTICS_FEE: "logistics_due",
}


def _groups_sql(only=None) -> tuple[str, dict]:
    """The split groups' query (every group not yet closed, or the one
    ``only`` names), its counts and flags, with its named parameters."""
    from django.db import connection

    params = {
        "refunded": str(S.REFUNDED),
        "not_required": str(AppraisalResult.NOT_REQUIRED),
        "refund_and_rebuy": str(SplitChoice.REFUND_AND_REBUY),
        "keep_not_required": str(SplitChoice.KEEP_NOT_REQUIRED),
    }

    def listed(name, values):
        # Bound one by one: an IN list reads the same on PostgreSQL and SQLite.
        keys = [f"{name}_{i}" for i in range(len(values))]
        params.update({key: str(value) for key, value in zip(keys, values, strict=True)})
        return ", ".join(f"%({key})s" for key in keys)

    open_states = listed("open", _open_states)
    counts = _GROUP_COUNTS.format(
        open=open_states,
        appraised=listed("appraised", sorted(FEE_RESULTS)),
        delivered=listed("delivered", _DELIVERED_STATES),
    )
    sql = _GROUPS_SQL.get(connection.vendor, _GROUPS_SQL["other"]).format(
        counts=counts,
        finished=listed("finished", _finished_states),
        only="AND g.trade_no = %(trade_no)s AND g.sku = %(sku)s" if only else "",
    )
    if only:
        params["trade_no"], params["sku"] = only
    flags = ", ".join(f"({_GROUP_DUE[rule]}) AS {name}" for rule, name in _FLAG_NAMES.items())
    return _GROUP_FLAGS.format(flags=flags, groups=sql), params


def groups_due(rule=None):
    """The split groups for which ``rule`` holds, as a queryset; with no rule,
    those for which any group rule holds or with no open order left (which
    the sweep closes): what the sweep's probe asks, once for all of them."""
    sql, named = _groups_sql()
    flags = [f"c.{name}" for name in _FLAG_NAMES.values()]
    condition = f"c.{_FLAG_NAMES[rule]}" if rule else " OR ".join([*flags, _CLOSABLE])
    # As positional parameters, in the order they appear, to sit in a queryset.
    sql = f"SELECT c.id FROM ({sql}) c WHERE {condition}"
    order = re.findall(r"%\((\w+)\)s", sql)
    return SplitGroup.objects.filter(pk__in=RawSQL(re.sub(r"%\((\w+)\)s", "%s", sql), [named[k] for k in order]))


def _read_groups(only=None) -> list[GroupRow]:
    from django.db import connection

    sql, params = _groups_sql(only)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if [c[0] for c in cursor.description] != list(_GROUP_COLUMNS):
            raise ImproperlyConfigured("the split groups' query and GroupRow disagree")
        rows = cursor.fetchall()
    providers = Organisation.objects.filter(pk__in={row[12] for row in rows})
    fees = {
        pk: (appraisal, logistics)
        for pk, appraisal, logistics in providers.values_list("pk", "appraisal_fee", "logistics_fee")
    }
    return [
        GroupRow(*row[:10], Decimal(row[10] or 0), *row[11:13], *map(bool, row[13:]), *fees.get(row[12], (None, None)))
        for row in rows
    ]


def _group_hit(ctx, rule, g, *, fingerprint, money) -> Hit:
    return Hit(
        rule=rule,
        subject=f"group:{g.trade_no}/{g.sku}",
        fingerprint=str(fingerprint),
        order_id=g.first_order,
        trade_no=g.trade_no,
        sku=g.sku,
        owner_id=ctx.owner_id(rule, provider_id=g.provider_id),
        severity=RULES[rule].severity,
        due_at=ctx.due(rule),
        money_at_risk=money,
        details=ctx.group_details(g.size, g.choice),
    )


def split_order(ctx, orders=None) -> list[Hit]:
    """Split groups still open that do not yet match the merchant's choice:
    A, every extra order refunded; B, every extra order kept as "no appraisal
    needed" and delivered. A group rule: it reads the groups of ``ctx``
    (``group_rows``), whatever ``orders`` are given."""
    return [
        _group_hit(ctx, Rule.SPLIT_ORDER, g, fingerprint=f"{g.size}:{g.choice}", money=g.total)
        for g in group_rows(ctx)
        if g.split_due
    ]


def duplicate_appraisal_fee(ctx, orders=None) -> list[Hit]:
    """Split groups, not yet finished, where more than one order carries pass
    or fail. A group rule, as ``split_order``."""
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_APPRAISAL_FEE,
            g,
            fingerprint=g.appraised,
            money=(g.appraised - 1) * g.appraisal_fee,
        )
        for g in group_rows(ctx)
        if g.appraisal_due
    ]


def duplicate_logistics_fee(ctx, orders=None) -> list[Hit]:
    """Split groups, not yet finished, with more than one waybill picked up,
    when the merchant did not choose B. A group rule, as ``split_order``."""
    return [
        _group_hit(
            ctx,
            Rule.DUPLICATE_LOGISTICS_FEE,
            g,
            fingerprint=g.picked_up,
            money=(g.picked_up - 1) * g.logistics_fee,
        )
        for g in group_rows(ctx)
        if g.logistics_due
    ]


def _open_groups(ctx, orders=None):
    """The split groups the group rules read (``group_rows``): those not yet closed."""
    return SplitGroup.objects.filter(closed_at__isnull=True)


def _asked_with_the_groups(ctx):
    # The group rules are asked at once, with the groups left to close
    # (``groups_due()`` in the sweep's probe): one read of the groups, not four.
    return []


def _reads_groups(rule):
    """A group rule's ``reads``: the groups it holds for (``groups_due``)."""

    def reads(ctx, orders=None):
        return groups_due(rule)

    return reads


def _unconfirmable_rows(ctx, orders=None):
    before = ctx.now - timedelta(hours=ctx.cfg.unconfirmable_hours)
    # The clock runs from the appraisal, however many steps came after it.
    appraised = OrderEvent.objects.filter(order=OuterRef("pk"), action=Action.APPRAISE).order_by("-seq")
    # Every such order (a short partial index, ``order_kept_unshipped``) whose
    # split group is still open, joined in SQL: a kept order is open, so its
    # group has an open order until the sweep closes it.
    group = _open_groups(ctx).filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
    return (
        _base(orders)
        .filter(KEPT_UNSHIPPED)
        .filter(Exists(group))
        .annotate(appraised_at=Subquery(appraised.values("occurred_at")[:1]))
        .filter(
            Q(state__in=[S.APPRAISED, S.INSPECTED, S.PACKED], waybill_no="", appraised_at__lte=before)
            | Q(state=S.WAYBILL_PRINTED, waybill_printed_at__lte=before)
        )
    )


def unconfirmable_split_order(ctx, orders=None) -> list[Hit]:
    """ "No appraisal needed" orders of a split group that will never be confirmed:
    no waybill long after appraisal, or a waybill nobody picked up."""
    return [
        _order_hit(
            ctx,
            Rule.UNCONFIRMABLE_SPLIT_ORDER,
            r,
            fingerprint=r["state"],
        )
        for r in _order_rows(_unconfirmable_rows(ctx, orders))
    ]


def _stalled_rows(ctx, orders=None):
    return _base(orders).over_sla(ctx.cfg.sla(), ctx.now)


def _stalled_probes(ctx):
    # A range of ``order_open_state_age`` for each state, asked once.
    return [_base(None).filter(any_over_sla(ctx.cfg.sla(), ctx.now))]


def _pending_sign_in_probes(ctx):
    # One state at a time: the arrived parcels, and those still inbound with
    # the carrier's delivery scan; each a narrow read rather than a walk of
    # every open order by deadline.
    rows = _pending_sign_in_rows(ctx)
    return [rows.filter(state=S.ARRIVED), rows.filter(state=S.INBOUND, inbound_delivered_at__isnull=False)]


def stalled(ctx, orders=None) -> list[Hit]:
    """Orders in one state longer than its SLA; each state has its owner."""
    rows = _order_rows(_stalled_rows(ctx, orders), since="state_changed_at")
    return [
        _order_hit(
            ctx,
            Rule.STALLED,
            r,
            fingerprint=f"{r['state']}@{r['since'].isoformat()}",
            details={"state": r["state"], "since": r["since"].isoformat()},
        )
        for r in rows
    ]


def _deadline_at_risk_rows(ctx, orders=None):
    soon = ctx.now + timedelta(hours=ctx.cfg.deadline_at_risk_hours)
    return _base(orders).filter(OPEN_ORDERS, auto_confirm_at__lte=soon).exclude(state=S.DELIVERED)


def deadline_at_risk(ctx, orders=None) -> list[Hit]:
    """Orders not yet delivered whose confirmation deadline is close: a loss in the making."""
    rows = _order_rows(_deadline_at_risk_rows(ctx, orders))
    return [
        _order_hit(
            ctx,
            Rule.DEADLINE_AT_RISK,
            r,
            fingerprint=r["deadline"].isoformat(),
            details={"state": r["state"], "deadline": r["deadline"].isoformat()},
        )
        for r in rows
    ]


def _forecast_miss_rows(ctx, orders=None):
    # The forecast's own test, asked of the database: only the orders it
    # makes late are read (and the forecast is worked out again for each).
    return _base(orders).filter(ctx.forecaster().late_q(ctx.now))


def _forecast_miss_probes(ctx):
    # Provider by provider and state by state: a few index entries each,
    # rather than every open order due before the slowest provider's
    # longest forecast. Every order's provider is an organisation of that
    # kind (``Order.provider``).
    providers = Organisation.objects.filter(kind=OrganisationKind.PROVIDER)
    return [providers.filter(ctx.forecaster().late_providers_q(ctx.now))]


def forecast_miss(ctx, orders=None) -> list[Hit]:
    """Orders signed for whose expected delivery (``orders.forecast``: what is
    left of the provider's stages and the journey, at their 90th
    percentiles) is later than the deadline less the margin. Seen the day an
    order is signed in on a slow provider, before any stage overruns its SLA;
    the case resolves when the forecast recovers (a stage done fast, the
    deadline extended)."""
    forecaster = ctx.forecaster()
    hits = []
    for r in _order_rows(_forecast_miss_rows(ctx, orders), since="state_changed_at"):
        forecast = forecaster.forecast(
            provider_id=r["provider_id"], state=r["state"], since=r["since"], deadline=r["deadline"], now=ctx.now
        )
        if forecast is None or not forecast.late:
            continue
        hits.append(
            _order_hit(
                ctx,
                Rule.FORECAST_MISS,
                r,
                fingerprint=r["deadline"].isoformat(),
                details={
                    "state": r["state"],
                    "deadline": r["deadline"].isoformat(),
                    "expected_at": forecast.expected_at.isoformat(),
                    "own": forecast.own,
                },
            )
        )
    return hits


def _one_per_code(*specs) -> Mapping:
    """The declarations by code, in the order given (the order the sweep runs
    them). A rule declared twice, or not at all, is refused at import."""
    codes = [spec.code for spec in specs]
    if sorted(codes) != sorted(Rule):
        raise ImproperlyConfigured(f"risks.rules.RULES must declare every Rule once; it declares {codes}")
    return MappingProxyType({spec.code: spec for spec in specs})


# SPEC §3, one rule per entry.
RULES = _one_per_code(
    RuleSpec(
        code=Rule.PENDING_SIGN_IN,
        evaluate=pending_sign_in,
        reads=_pending_sign_in_rows,
        probes=_pending_sign_in_probes,
        owner=PROVIDER,
        severity=Severity.MEDIUM,  # high within pending_sign_in_high_within_hours of the deadline
        response_hours=12,
        category=EscalationCategory.SIGN_IN,
        thresholds=("pending_sign_in_hours", "pending_sign_in_high_within_hours"),
        instructions=_(
            "Find out why the parcel has not been signed for — ask the merchant — and record it on the order "
            "with “Verify pending sign-in”. If you cannot tell, or the system refuses to sign it, say so: the "
            "platform takes it over at once."
        ),
    ),
    RuleSpec(
        code=Rule.FLOW_BLOCKED,
        evaluate=flow_blocked,
        reads=_flow_blocked_rows,
        owner=PLATFORM,
        severity=Severity.HIGH,
        response_hours=4,
        category=EscalationCategory.FLOW_BLOCKED,
        opened_by=Action.REPORT_BLOCKED,
        escalate_at_once=True,
        instructions=_(
            "The provider cannot go on in the online flow. An operator fixes the cause and unblocks the order; "
            "the provider then prints the online waybill. Shipping offline is forbidden."
        ),
    ),
    RuleSpec(
        code=Rule.OFFLINE_SHIPMENT,
        evaluate=offline_shipment,
        reads=_offline_shipment_rows,
        owner=PLATFORM,
        severity=Severity.CRITICAL,
        response_hours=4,
        category=EscalationCategory.OFFLINE_SHIPMENT,
        opened_by=Action.OFFLINE_SHIPMENT,
        escalate_at_once=True,
        instructions=_(
            "A carrier reported this order moving under a number that is not its online waybill. The online "
            "flow is broken: without a pickup of the online waybill the order is refunded at its deadline. The "
            "platform must step in."
        ),
    ),
    RuleSpec(
        code=Rule.SPLIT_ORDER,
        evaluate=split_order,
        reads=_reads_groups(Rule.SPLIT_ORDER),
        probes=_asked_with_the_groups,
        # The provider contacts the merchant, who chooses (``orders.splits``).
        owner=PROVIDER,
        severity=Severity.MEDIUM,
        response_hours=24,
        category=EscalationCategory.SPLIT_ORDER,
        instructions=_(
            "The buyer's purchase was split into several orders with the appraisal service. The provider "
            "contacts the merchant; the merchant chooses A or B below."
        ),
    ),
    RuleSpec(
        code=Rule.DUPLICATE_APPRAISAL_FEE,
        evaluate=duplicate_appraisal_fee,
        reads=_reads_groups(Rule.DUPLICATE_APPRAISAL_FEE),
        probes=_asked_with_the_groups,
        owner=PROVIDER,
        severity=Severity.CRITICAL,
        response_hours=12,
        category=EscalationCategory.SPLIT_ORDER,
        instructions=_(
            "More than one order of this split group carries pass or fail: the merchant would pay the appraisal "
            "fee more than once. Correct it before the orders complete."
        ),
    ),
    RuleSpec(
        code=Rule.DUPLICATE_LOGISTICS_FEE,
        evaluate=duplicate_logistics_fee,
        reads=_reads_groups(Rule.DUPLICATE_LOGISTICS_FEE),
        probes=_asked_with_the_groups,
        owner=PROVIDER,
        severity=Severity.HIGH,
        response_hours=12,
        category=EscalationCategory.SPLIT_ORDER,
        instructions=_(
            "More than one waybill of this split group was picked up, and the merchant did not choose to bear "
            "the logistics fees. Stop the extra waybills."
        ),
    ),
    RuleSpec(
        code=Rule.UNCONFIRMABLE_SPLIT_ORDER,
        evaluate=unconfirmable_split_order,
        reads=_unconfirmable_rows,
        owner=PROVIDER,
        severity=Severity.HIGH,
        response_hours=12,
        category=EscalationCategory.SPLIT_ORDER,
        thresholds=("unconfirmable_hours",),
        instructions=_(
            "This order needs no appraisal, but without a waybill that is picked up and delivered it can never "
            "be confirmed. Print its waybill and have it picked up."
        ),
    ),
    RuleSpec(
        code=Rule.FORECAST_MISS,
        evaluate=forecast_miss,
        reads=_forecast_miss_rows,
        probes=_forecast_miss_probes,
        owner=PROVIDER,
        severity=Severity.HIGH,
        response_hours=12,
        category=EscalationCategory.DEADLINE,
        thresholds=("forecast_margin_hours", "forecast_min_samples"),
        tells=(MERCHANT,),
        instructions=_(
            "At this provider's usual pace the order reaches the buyer after its automatic confirmation deadline, "
            "and is then refunded. Speed it through the remaining steps, or ask the platform to extend the "
            "deadline. The case closes by itself once the forecast is back before the deadline."
        ),
    ),
    RuleSpec(
        code=Rule.STALLED,
        evaluate=stalled,
        reads=_stalled_rows,
        probes=_stalled_probes,
        owner=MappingProxyType(
            {
                S.AWAITING_SHIPMENT: MERCHANT,
                S.INBOUND: MERCHANT,
                S.SIGNED_IN: PROVIDER,
                S.APPRAISED: PROVIDER,
                S.INSPECTED: PROVIDER,
                S.PACKED: PROVIDER,
                S.WAYBILL_PRINTED: PROVIDER,
                S.OUTBOUND: PLATFORM,
            }
        ),
        severity=Severity.MEDIUM,
        response_hours=12,
        category=EscalationCategory.OVERDUE_CASE,
        thresholds=(
            "sla_awaiting_shipment_hours",
            "sla_inbound_hours",
            "sla_signed_in_hours",
            "sla_appraised_hours",
            "sla_inspected_hours",
            "sla_packed_hours",
            "sla_waybill_printed_hours",
            "sla_outbound_hours",
        ),
        restart_on_new_evidence=True,
        instructions=_("The order has been in this state longer than it should. Move it on."),
    ),
    RuleSpec(
        code=Rule.DEADLINE_AT_RISK,
        evaluate=deadline_at_risk,
        reads=_deadline_at_risk_rows,
        # The merchant and the provider are told at once as well (``risks.sweep``).
        owner=PLATFORM,
        severity=Severity.HIGH,
        response_hours=6,
        category=EscalationCategory.DEADLINE,
        thresholds=("deadline_at_risk_hours",),
        tells=(MERCHANT, PROVIDER),
        tells_with=NotificationKind.DEADLINE_AT_RISK,
        instructions=_(
            "The automatic confirmation deadline is close and the order is not delivered. Finish the flow, or "
            "have an operator extend the deadline, or the money shown is lost."
        ),
    ),
)
