"""Replaying the risk rules over recorded history: what would the rules, with
today's thresholds or others, have caught, how long before the money was
lost, and how often did they raise a case on an order that finished well?

No wall clock is read. Hour by hour from ``start`` to ``end`` the portal's
knowledge is rebuilt from the order events alone (SPEC §2.2 invariant 4: the
log rebuilds every order), and the rules of ``risks.rules.RULES`` run against
it unchanged, as the sweep runs them:

1. Before anything else, from the live tables: the orders in play (created by
   ``end`` and not finished by ``start``, with the other orders of their
   split groups), their events up to ``end``, the split groups' ids, the
   stage durations as they were at the start of each replayed day
   (``orders.durations.figures``), and the outcomes to judge against.
2. In one transaction that is always rolled back: temporary tables named as
   the order tables (``orders_order``, ``orders_orderevent``,
   ``orders_splitgroup``, ``orders_stageduration``). A temporary table hides
   the table of the same name from this connection's unqualified queries,
   so the rules read them without knowing. They start with each order as its
   events up to ``start`` rebuild it.
3. Each hour: that hour's events are added and folded into their orders
   (each event stores the fields it changed), each day the stage durations
   of that day are put in place, and every rule is evaluated at the hour's
   end. A hit with no live replayed case opens one; a live replayed case not
   hit resolves. Cases of a rule opened by a workflow step count from the
   step's own time.
4. The losses of the period, auto-refunds and duplicate fees, are each
   matched with the first replayed case about the order or its split group
   opened before the order's deadline; cases on orders that all finished
   well are false alarms.

Nothing is written to the live tables: the replayed cases exist only here,
and the transaction that held the temporary tables is rolled back. The
report (``Report``) is what the caller keeps (``ReplayRun``).
"""

import datetime
import json
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils.translation import gettext_lazy, pgettext_lazy

from orders import durations
from orders.choices import TERMINAL_STATES, Action, FeeKind, OrderState, SplitChoice
from orders.models import FeeCharge, Order, OrderEvent, SplitGroup
from risks import rules
from risks.choices import GROUP_RULES, Rule

S = OrderState
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The lead a catch needs to count in the headline: a day to act in.
HEADLINE_LEAD = timedelta(hours=24)
AUTO_REFUND, DUPLICATE_FEE = "auto_refund", "duplicate_fee"
_SHADOWED = ("orders_order", "orders_orderevent", "orders_splitgroup", "orders_stageduration")
_SOURCE = "replay_source"
_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_ORDER_FIELDS = {f.attname: f for f in Order._meta.concrete_fields}
_EVENT_COLUMNS = [f.column for f in OrderEvent._meta.concrete_fields]


class _RolledBack(Exception):
    """Raised at the end of the replay's transaction so that it never commits."""


@dataclass(slots=True)
class ReplayedCase:
    rule: str
    subject: str
    order_id: int
    fingerprint: str
    opened_at: datetime.datetime
    resolved_at: datetime.datetime | None = None


@dataclass(slots=True)
class Loss:
    """An order that ended as a loss in the period, and how it was caught."""

    order_id: int
    order_no: str
    provider_id: int
    outcome: str
    deadline: datetime.datetime
    money: object
    # The first replayed case before the deadline, with every rule, and without ``forecast_miss``.
    caught_at: datetime.datetime | None = None
    rule: str = ""
    caught_at_without_forecast: datetime.datetime | None = None
    rule_without_forecast: str = ""

    def lead(self, with_forecast=True) -> timedelta | None:
        caught = self.caught_at if with_forecast else self.caught_at_without_forecast
        return None if caught is None else self.deadline - caught


@dataclass
class Report:
    start: datetime.datetime
    end: datetime.datetime
    thresholds: dict
    orders: int = 0
    hours: int = 0
    seconds: float = 0.0
    losses: list = field(default_factory=list)
    # Per rule: cases opened, and those on orders that all finished well.
    opened: Counter = field(default_factory=Counter)
    false_alarms: Counter = field(default_factory=Counter)

    def share_caught(self, lead=HEADLINE_LEAD, with_forecast=True) -> float | None:
        """The share of losses first caught at least ``lead`` before their deadline."""
        if not self.losses:
            return None
        leads = [loss.lead(with_forecast) for loss in self.losses]
        return sum(1 for found in leads if found is not None and found >= lead) / len(self.losses)

    def per_rule(self) -> list[dict]:
        """One row per rule, in the sweep's order: cases opened, false alarms,
        losses it caught first, and the median and smallest lead of those."""
        firsts = defaultdict(list)
        for loss in self.losses:
            if loss.rule:
                firsts[loss.rule].append(loss.lead())
        found = []
        for code in rules.RULES:
            leads = firsts.get(code, [])
            found.append(
                {
                    "rule": str(code),
                    "opened": self.opened.get(code, 0),
                    "false_alarms": self.false_alarms.get(code, 0),
                    "caught_first": len(leads),
                    "median_lead_hours": _hours(statistics.median(leads)) if leads else None,
                    "least_lead_hours": _hours(min(leads)) if leads else None,
                }
            )
        return found

    def as_json(self) -> dict:
        """What ``ReplayRun.report`` keeps."""
        return {
            "rules": self.per_rule(),
            "losses": [
                {
                    "order": loss.order_id,
                    "order_no": loss.order_no,
                    "outcome": loss.outcome,
                    "deadline": loss.deadline.isoformat(),
                    "money": str(loss.money),
                    "caught_at": loss.caught_at.isoformat() if loss.caught_at else None,
                    "rule": loss.rule,
                    "lead_hours": _hours(loss.lead()),
                    "rule_without_forecast": loss.rule_without_forecast,
                    "lead_hours_without_forecast": _hours(loss.lead(False)),
                }
                for loss in self.losses
            ],
            "headline": {
                "losses": len(self.losses),
                "caught": sum(1 for loss in self.losses if loss.caught_at is not None),
                "share_24h": self.share_caught(),
                "share_24h_without_forecast": self.share_caught(with_forecast=False),
            },
        }


def _hours(delta):
    return None if delta is None else round(delta.total_seconds() / 3600, 1)


def replay(start, end, cfg, *, progress=None) -> Report:
    """Replay the rules with thresholds ``cfg`` (a ``RiskSettings``, saved
    or not) over ``(start, end]``, hour by hour. ``progress(hours_done)``
    is called after each hour."""
    if end <= start:
        raise ValueError("the replay must end after it starts")
    began = time.monotonic()
    report = Report(start, end, {})
    scope = _scope(start, end)
    report.orders = len(scope)
    platform = rules.Context.build(start, cfg).platform()
    groups = _group_ids(scope)
    days = {}
    day = start
    while day < end:
        days[day] = durations.figures(day)
        day += DAY
    losses = _losses(start, end, scope)
    cases: list[ReplayedCase] = []
    try:
        with transaction.atomic():
            _shadow(scope, end)
            knowledge = _Knowledge(groups)
            knowledge.advance(_EPOCH, start)
            live = {}
            moment = start
            while moment < end:
                following = min(moment + HOUR, end)
                happened = knowledge.advance(moment, following)
                if moment in days:
                    _put_figures(days[moment])
                knowledge.analyse()
                ctx = rules.Context(now=following, cfg=cfg, platform_id=platform)
                _evaluate(ctx, happened, live, cases)
                moment = following
                report.hours += 1
                if progress is not None:
                    progress(report.hours)
            raise _RolledBack
    except _RolledBack:
        pass
    _judge(report, cases, losses, scope)
    report.seconds = time.monotonic() - began
    return report


def _scope(start, end) -> dict:
    """The orders in play, ``id → (trade_no, sku)``: created by ``end`` and
    not finished by ``start``, and the other orders of their split groups
    (a group's rules count its finished orders too)."""
    finished = OrderEvent.objects.filter(
        order=OuterRef("pk"), to_state__in=sorted(TERMINAL_STATES), occurred_at__lte=start
    )
    created = OrderEvent.objects.filter(order=OuterRef("pk"), action=Action.CREATE, occurred_at__lte=end)
    rows = Order.objects.filter(Exists(created)).exclude(Exists(finished)).values_list("pk", "trade_no", "sku")
    scope = {pk: (trade_no, sku) for pk, trade_no, sku in rows.iterator(chunk_size=5000)}
    grouped = (
        Order.objects.values("trade_no", "sku").annotate(n=Count("pk")).filter(n__gt=1).values_list("trade_no", "sku")
    )
    keys = set(scope.values()) & set(grouped)
    members = Order.objects.filter(Exists(created), trade_no__in=sorted({trade_no for trade_no, _sku in keys}))
    for pk, trade_no, sku in members.values_list("pk", "trade_no", "sku").iterator(chunk_size=5000):
        if (trade_no, sku) in keys:
            scope[pk] = (trade_no, sku)
    return scope


def _group_ids(scope) -> dict:
    """The live split groups' ids of the orders in play, by ``(trade_no, sku)``."""
    keys = set(scope.values())
    rows = SplitGroup.objects.filter(trade_no__in=sorted({trade_no for trade_no, _sku in keys}))
    return {(t, s): pk for t, s, pk in rows.values_list("trade_no", "sku", "pk") if (t, s) in keys}


def _losses(start, end, scope) -> list[Loss]:
    """The orders in play that ended as a loss in the period: refunded
    automatically at their deadline, or carrying a second appraisal fee (or
    a second logistics fee where the merchant did not choose to bear them)
    in their split group."""
    facts = {
        pk: row
        for pk, *row in Order.objects.filter(pk__in=list(scope))
        .values_list("pk", "order_no", "provider_id", "auto_confirm_at", "amount")
        .iterator(chunk_size=5000)
    }
    found = []
    refunded = OrderEvent.objects.filter(
        action=Action.EXPIRE, to_state=S.AUTO_REFUNDED, occurred_at__gt=start, occurred_at__lte=end
    )
    for pk, at in refunded.values_list("order_id", "occurred_at").iterator(chunk_size=5000):
        if pk in facts:
            order_no, provider, _deadline, amount = facts[pk]
            found.append(Loss(pk, order_no, provider, AUTO_REFUND, at, amount))
    keep = {
        (t, s)
        for t, s in SplitGroup.objects.filter(choice=SplitChoice.KEEP_NOT_REQUIRED).values_list("trade_no", "sku")
    }
    fees = FeeCharge.objects.filter(order_id__in=list(scope), charged_at__lte=end).order_by("charged_at", "pk")
    seen = Counter()
    for pk, kind, amount, charged_at in fees.values_list("order_id", "kind", "amount", "charged_at"):
        group = scope[pk]
        seen[group, kind] += 1
        if seen[group, kind] < 2 or charged_at <= start:
            continue
        if kind == FeeKind.LOGISTICS and group in keep:
            continue
        order_no, provider, deadline, _amount = facts[pk]
        found.append(Loss(pk, order_no, provider, DUPLICATE_FEE, deadline, amount))
    return found


# --- the rebuilt knowledge ------------------------------------------------------


def _shadow(scope, end) -> None:
    """Copy the events in play into ``replay_source``, then create the
    temporary tables that hide the order tables (empty)."""
    ids = sorted(scope)
    names = [f.attname for f in OrderEvent._meta.concrete_fields]
    columns = ", ".join(f'"{c}"' for c in _EVENT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {_SOURCE} AS SELECT {columns} FROM orders_orderevent WHERE 1 = 0")
        for chunk in range(0, len(ids), 5000):
            events = OrderEvent.objects.filter(order_id__in=ids[chunk : chunk + 5000], occurred_at__lte=end)
            sql, params = events.order_by().values_list(*names).query.sql_with_params()
            cursor.execute(f"INSERT INTO {_SOURCE} ({columns}) {sql}", params)
        cursor.execute(f"CREATE INDEX replay_source_time ON {_SOURCE} (occurred_at)")
        for table in _SHADOWED:
            if connection.vendor == "postgresql":
                cursor.execute(f"CREATE TEMP TABLE {table} (LIKE {table} INCLUDING ALL)")
                continue
            cursor.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = %s", [table])
            (sql,) = cursor.fetchone()
            # A temporary table cannot refer to the live ones.
            sql = re.sub(r'\s+REFERENCES\s+"\w+"\s*\("\w+"\)(\s+DEFERRABLE INITIALLY DEFERRED)?', "", sql)
            cursor.execute(sql.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))


def _put_figures(rows) -> None:
    """The stage durations as they were at the start of the replayed day
    (``durations.figures``: unsaved rows, each day's written once)."""
    from orders.models import StageDuration

    StageDuration.objects.all().delete()
    StageDuration.objects.bulk_create(rows)


def _to_time(value) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


class _Knowledge:
    """The temporary order tables, moved forward an hour at a time."""

    def __init__(self, group_ids):
        self.group_ids = group_ids
        self.members = Counter()
        self.groups_made = set()
        self.synthetic = -1
        # Orders created so far, and when the statistics were last gathered.
        self.orders = 0
        self.analysed = 0

    def advance(self, after, until) -> list[tuple]:
        """Add the events of ``(after, until]`` and fold them into their
        orders; returns ``(order_id, action, occurred_at)`` of each."""
        ops = connection.ops
        bounds = [ops.adapt_datetimefield_value(after), ops.adapt_datetimefield_value(until)]
        window = f"FROM {_SOURCE} WHERE occurred_at > %s AND occurred_at <= %s"
        columns = ", ".join(f'"{c}"' for c in _EVENT_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO orders_orderevent ({columns}) SELECT {columns} {window}", bounds)
            cursor.execute(
                f"SELECT order_id, seq, action, to_state, payload, occurred_at {window} ORDER BY order_id, seq", bounds
            )
            rows = cursor.fetchall()
        created, changed, choices, happened = {}, {}, [], []
        for order_id, seq, action, to_state, payload, occurred_at in rows:
            if isinstance(payload, str):
                payload = json.loads(payload)
            happened.append((order_id, action, _to_time(occurred_at)))
            fields = payload.get("changes", {})
            if action == Action.CREATE:
                created[order_id] = {**fields, "state": to_state, "version": seq}
                continue
            if action == Action.SPLIT_CHOICE:
                choices.append((order_id, payload.get("params", {}).get("choice", ""), _to_time(occurred_at)))
            target = created[order_id] if order_id in created else changed.setdefault(order_id, {})
            target.update(fields)
            target["state"], target["version"] = to_state, seq
        self._create(created)
        self._update(changed)
        self._choose(choices)
        return happened

    def _create(self, created) -> None:
        orders = []
        for pk, fields in created.items():
            order = Order(pk=pk, **{name: _ORDER_FIELDS[name].to_python(v) for name, v in fields.items()})
            orders.append(order)
            self.members[order.trade_no, order.sku] += 1
        Order.objects.bulk_create(orders, batch_size=2000)
        self.orders += len(orders)
        groups = []
        for key, n in self.members.items():
            if n > 1 and key not in self.groups_made:
                self.groups_made.add(key)
                pk = self.group_ids.get(key)
                if pk is None:
                    pk, self.synthetic = self.synthetic, self.synthetic - 1
                groups.append(SplitGroup(pk=pk, trade_no=key[0], sku=key[1]))
        SplitGroup.objects.bulk_create(groups)

    def _update(self, changed) -> None:
        by_columns = defaultdict(list)
        for pk, fields in changed.items():
            names = tuple(sorted(fields))
            values = [
                _ORDER_FIELDS[name].get_db_prep_save(_ORDER_FIELDS[name].to_python(fields[name]), connection)
                for name in names
            ]
            by_columns[names].append([*values, pk])
        with connection.cursor() as cursor:
            for names, rows in by_columns.items():
                columns = [_ORDER_FIELDS[name].column for name in names]
                if connection.vendor != "postgresql":
                    assignments = ", ".join(f'"{column}" = %s' for column in columns)
                    cursor.executemany(f'UPDATE orders_order SET {assignments} WHERE "id" = %s', rows)
                    continue
                # One statement per shape of change: the rows as a VALUES list,
                # each value cast to its column's type (a NULL has none).
                casts = [f"%s::{_ORDER_FIELDS[name].db_type(connection)}" for name in names] + ["%s::bigint"]
                row = "(" + ", ".join(casts) + ")"
                assignments = ", ".join(f'"{column}" = v."{column}"' for column in columns)
                named = ", ".join(f'"{column}"' for column in [*columns, "id"])
                for start in range(0, len(rows), 1000):
                    batch = rows[start : start + 1000]
                    cursor.execute(
                        f"UPDATE orders_order AS o SET {assignments} "
                        f"FROM (VALUES {', '.join([row] * len(batch))}) AS v ({named}) WHERE o.id = v.id",
                        [value for values in batch for value in values],
                    )

    def _choose(self, choices) -> None:
        for order_id, choice, at in choices:
            key = Order.objects.filter(pk=order_id).values_list("trade_no", "sku").first()
            if key is not None:
                SplitGroup.objects.filter(trade_no=key[0], sku=key[1]).update(choice=choice, chosen_at=at)

    def analyse(self) -> None:
        """Fresh statistics for the planner (temporary tables get none by
        themselves), whenever the orders have grown by half since the last."""
        if connection.vendor != "postgresql" or self.orders < self.analysed * 1.5 + 100:
            return
        self.analysed = self.orders
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE orders_order, orders_orderevent, orders_splitgroup")


def _evaluate(ctx, happened, live, cases) -> None:
    """Run every rule at ``ctx.now``: open a replayed case for each new hit,
    resolve the live ones no longer hit."""
    stepped = {(order_id, action): at for order_id, action, at in happened}
    for code, spec in rules.RULES.items():
        hit = set()
        for found in spec.evaluate(ctx):
            key = (code, found.subject)
            hit.add(key)
            current = live.get(key)
            if current is not None:
                if not spec.restart_on_new_evidence or current.fingerprint == found.fingerprint:
                    continue
                current.resolved_at = ctx.now
            opened = ctx.now
            if spec.opened_by:
                # A step that is itself the risk opens its case at once.
                opened = stepped.get((found.order_id, spec.opened_by), ctx.now)
            live[key] = ReplayedCase(code, found.subject, found.order_id, found.fingerprint, opened)
            cases.append(live[key])
        for key in [key for key in live if key[0] == code and key not in hit]:
            live.pop(key).resolved_at = ctx.now


def _judge(report, cases, losses, scope) -> None:
    """Match each loss with the first replayed case about it before its
    deadline, and count the cases on orders that all finished well."""
    about = defaultdict(list)
    for case in cases:
        about[case.subject].append(case)
        report.opened[case.rule] += 1
    order = {code: index for index, code in enumerate(rules.RULES)}
    for loss in losses:
        trade_no, sku = scope[loss.order_id]
        found = sorted(
            (
                c
                for c in about[f"order:{loss.order_id}"] + about[f"group:{trade_no}/{sku}"]
                if c.opened_at < loss.deadline
            ),
            key=lambda c: (c.opened_at, order[c.rule]),
        )
        if found:
            loss.caught_at, loss.rule = found[0].opened_at, found[0].rule
        without = [c for c in found if c.rule != Rule.FORECAST_MISS]
        if without:
            loss.caught_at_without_forecast, loss.rule_without_forecast = without[0].opened_at, without[0].rule
    report.losses = sorted(losses, key=lambda loss: (loss.deadline, loss.order_id))
    lost = {loss.order_id for loss in losses}
    final = dict(Order.objects.filter(pk__in=list(scope)).values_list("pk", "state").iterator(chunk_size=5000))
    well = {
        pk for pk, state in final.items() if state in TERMINAL_STATES and state != S.AUTO_REFUNDED and pk not in lost
    }
    members = defaultdict(list)
    for pk, key in scope.items():
        members[key].append(pk)
    for case in cases:
        if case.rule in GROUP_RULES:
            orders = members[scope[case.order_id]] if case.order_id in scope else []
        else:
            orders = [case.order_id]
        if orders and all(pk in well for pk in orders):
            report.false_alarms[case.rule] += 1


# --- thresholds and what is written out ------------------------------------------

# The thresholds a replay may change: every ``RiskSettings`` field a rule or the
# overdue escalation reads.
THRESHOLDS = tuple(
    sorted({name for spec in rules.RULES.values() for name in spec.thresholds} | {"escalate_overdue_after_hours"})
)


def thresholds(changes: dict):
    """The thresholds in force with ``changes`` applied (unsaved), and the
    changes as applied; a name that is not a threshold, or a value its field
    refuses, raises ``ValidationError`` saying which and why."""
    from django.core.exceptions import ValidationError

    from risks.models import RiskSettings

    cfg = RiskSettings.current()
    applied = {}
    for name, value in changes.items():
        if name not in THRESHOLDS:
            raise ValidationError(
                "%(name)s is not a threshold; the thresholds are: %(known)s",
                params={"name": name, "known": ", ".join(THRESHOLDS)},
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(
                "%(name)s must be a whole number, not %(value)r", params={"name": name, "value": value}
            )
        model_field = RiskSettings._meta.get_field(name)
        try:
            applied[name] = model_field.clean(value, cfg)
        except ValidationError as refused:
            raise ValidationError(
                "%(name)s: %(why)s", params={"name": name, "why": " ".join(refused.messages)}
            ) from refused
        setattr(cfg, name, applied[name])
    return cfg, applied


# The columns of a replay's losses, as the Replay page, its download (headed in
# the reader's language) and the command (in English) write them.
LOSS_COLUMNS = (
    ("order_no", gettext_lazy("Order")),
    ("outcome", pgettext_lazy("loss", "Outcome")),
    ("deadline", gettext_lazy("Deadline")),
    ("money", gettext_lazy("Amount (CNY)")),
    ("caught_at", gettext_lazy("First caught at")),
    ("rule", gettext_lazy("By rule")),
    ("lead_hours", gettext_lazy("Hours before the deadline")),
    ("rule_without_forecast", gettext_lazy("By rule, without the forecast rule")),
    ("lead_hours_without_forecast", gettext_lazy("Hours before the deadline, without the forecast rule")),
)
