"""The sweep (SPEC §3): run every rule, open a case for each new hit,
resolve the cases whose condition cleared, escalate the overdue ones.

1. Each rule is evaluated; live cases whose condition cleared are resolved
   (in batches, each its own transaction).
2. In one transaction, under the sweep's lock: a case opens for each new hit
   (escalated at once when its rule says so), overdue cases are escalated,
   operators are reminded of escalations nobody took. What this tells people
   is gathered (``portal.notify.gathered``): each person gets one summary per
   kind, linking to the list of exactly those cases, written in the same
   transaction — never one notification per case.
3. Split groups whose orders are all finished are closed.

Safe to run on several machines at once: a partial unique constraint keeps
one live case per rule and subject (inserts that lose the race are dropped),
resolutions are conditional updates on live cases, and escalations are
unique per case. Step 2 holds a lock, so a second sweep running at once
writes after the first and finds nothing left to open or tell. Its queries
grow with the number of rules and batches, its work with the number of hits,
never with the number of orders.
"""

import gc
import logging
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_noop

from orders import workflow
from orders.models import Order, SplitGroup
from portal import bulk, notify
from portal.choices import OrganisationKind
from portal.models import NotificationKind
from risks import cases, escalations, rules
from risks.choices import LIVE_STATUSES, CaseEventKind, CaseStatus, Resolution, Rule
from risks.models import CaseEvent, RiskCase, RiskSettings

logger = logging.getLogger(__name__)
BATCH = 1000
LIVE = [s.value for s in LIVE_STATUSES]


@dataclass
class Summary:
    opened: dict = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)
    escalated: int = 0

    def line(self) -> str:
        opened = sum(self.opened.values())
        resolved = sum(self.resolved.values())
        return f"opened {opened}, resolved {resolved}, escalated {self.escalated}"


def run_sweep(now=None) -> Summary:
    """One sweep now; returns what it opened, resolved and escalated, per rule."""
    now = now or timezone.now()
    ctx = rules.Context.build(now, RiskSettings.current())
    with _collecting_garbage_after():
        summary = _sweep(ctx) if anything_due(ctx) else Summary()
    logger.info("risk sweep: %s", summary.line())
    return summary


def anything_due(ctx) -> bool:
    """Whether the sweep has anything to do, asked in one statement: a live
    case (to resolve, escalate or carry on), an escalation waiting for its
    reminder, a split group left to close, or a row some rule reads
    (``RuleSpec.reads``: every hit comes from one). False means a full sweep
    would write nothing, and it is skipped."""
    sql, params = _probe_statement(ctx)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchone()[0])


def _build_probe(ctx) -> tuple[str, list]:
    checks = [
        RiskCase.objects.filter(status__in=LIVE),
        escalations.waiting_for_reminder(ctx.now),
        rules.groups_due(),  # a split group some group rule holds for, or left to close
        *(part for spec in rules.RULES.values() for part in spec.probe(ctx)),
    ]
    parts, params = [], []
    for queryset in checks:
        # A part ordered as its index is keeps its order (``RuleSpec.probes``).
        queryset = queryset if queryset.query.order_by else queryset.order_by()
        try:
            sql, values = queryset.values("pk")[:1].query.sql_with_params()
        except EmptyResultSet:
            continue  # a rule that can read nothing now (no forecast figures yet)
        parts.append(f"EXISTS ({sql})")
        params.extend(values)
    return "SELECT " + (" OR ".join(parts) or "FALSE"), params


# The probe as last built, by its inputs: (the rule set, built for this
# time, statement, parameters); no statement when its times do not follow
# the clock, and it is built every sweep.
_kept_probe = {}
# How far apart the two builds are that show the probe's times follow the
# clock: days, hours, minutes, seconds and microseconds all moved, so that a
# time cut to the second, the minute or the day shows.
_PROBE_CHECK = timedelta(days=40, hours=3, minutes=7, seconds=11, microseconds=123)
# How long a kept probe serves before it is built (and checked) again.
_PROBE_KEPT_FOR = timedelta(hours=1)
# What a kept probe's parameters may hold: times (moved), and values the clock does not touch.
_CLOCK_FREE = (timedelta, str, int, float, Decimal, type(None))


def _probe_statement(ctx) -> tuple[str, list]:
    """The probe for ``ctx``, built once for the thresholds and stage
    durations in force and kept for the next sweeps of the hour.

    Building it is most of a quiet sweep's Python (a dozen querysets
    compiled), and between two sweeps only the clock moves: every time in
    it is the sweep's time plus a fixed amount. That is checked when it is
    built: its parameters are times and plain values only (no dates), and
    built again 40 days, 3 hours, 7 minutes, 11 seconds and 123
    microseconds later it is the same statement with its times moved as
    much. A probe that fails the check is built every sweep."""
    inputs = (
        connection.vendor,
        timezone.get_current_timezone_name(),
        tuple(field.value_from_object(ctx.cfg) for field in ctx.cfg._meta.concrete_fields),
        ctx.forecaster().key(),
    )
    kept = _kept_probe.get(inputs)
    if kept is not None and kept[0] is rules.RULES:
        _rules, built_for, sql, params = kept
        if sql is None:
            return _build_probe(ctx)
        if abs(ctx.now - built_for) <= _PROBE_KEPT_FOR:
            return sql, _shifted(params, ctx.now - built_for)
    sql, params = _build_probe(ctx)
    later = rules.Context(now=ctx.now + _PROBE_CHECK, cfg=ctx.cfg, _answers={"forecaster": ctx.forecaster()})
    follows = _clock_free_or_times(params) and _build_probe(later) == (sql, _shifted(params, _PROBE_CHECK))
    _kept_probe.clear()
    _kept_probe[inputs] = (rules.RULES, ctx.now, sql, params) if follows else (rules.RULES, ctx.now, None, None)
    return sql, params


def _clock_free_or_times(params) -> bool:
    return all(
        _clock_free_or_times(value) if isinstance(value, list) else isinstance(value, (datetime, *_CLOCK_FREE))
        for value in params
    )


def _shifted(params, by):
    """``params`` with every time in them (in lists too) moved by ``by``."""
    if not by:
        return params
    return [_shifted(value, by) if isinstance(value, list) else _moved(value, by) for value in params]


def _moved(value, by):
    return value + by if isinstance(value, datetime) else value


@receiver(setting_changed)
def _forget_the_probe(**kwargs):
    _kept_probe.clear()


def _sweep(ctx) -> Summary:
    now = ctx.now
    summary = Summary()
    live = _live_cases()
    fresh = {}
    for rule, spec in rules.RULES.items():
        current = live.get(rule, {})
        hits, still = _evaluate(spec, ctx, current)
        cleared = [case for subject, case in current.items() if subject not in still]
        restarted = [
            case
            for subject, case in current.items()
            if subject in still and spec.restart_on_new_evidence and case["fingerprint"] != hits[subject].fingerprint
        ]
        resolved = resolve_rows(cleared, Resolution.CONDITION_CLEARED, now)
        resolved += resolve_rows(restarted, Resolution.SUPERSEDED, now)
        still_live = still - {c["subject"] for c in restarted}
        fresh[rule] = [hit for subject, hit in hits.items() if subject not in still_live]
        if resolved:
            summary.resolved[rule] = resolved
    with transaction.atomic(), notify.gathered(now, link=summary_link):
        _hold_the_sweep_lock()
        opened = open_all(fresh, now)
        summary.opened = {rule: opened[rule] for rule in rules.RULES if opened.get(rule)}
        summary.escalated = _escalate_overdue(ctx)
        escalations.remind_unassigned(now, settings.ESCALATION_REMINDER_HOURS)
    _close_finished_groups(ctx, now)
    return summary


def _evaluate(spec, ctx, current) -> tuple[dict, set]:
    """The rule's hits to act on, by subject, and the subjects of its live
    cases (``current``) that it still hits.

    A rule about single orders whose case stands whatever its evidence shows
    (not ``restart_on_new_evidence``) is compared with its live cases in
    SQL: its rows (``RuleSpec.reads``, each a hit) come back as order ids,
    each marked with whether the order has a live case of the rule, and
    hits are built only for the orders that have none. In a steady sweep
    nearly every hit has its case already, so those rows are never built.
    Other rules are evaluated whole and compared here."""
    if spec.group or spec.restart_on_new_evidence or not current:
        hits = {hit.subject: hit for hit in spec.evaluate(ctx)}
        return hits, {subject for subject in current if subject in hits}
    read = spec.reads(ctx)
    column = rules.order_column(read)
    with_case = Exists(RiskCase.objects.filter(rule=spec.code, status__in=LIVE, order=OuterRef(column)))
    still, new = set(), set()
    for order_id, has_case in read.annotate(has_live_case=with_case).values_list(column, "has_live_case"):
        (still if has_case else new).add(order_id)
    hits = {}
    if new:
        hits = {hit.subject: hit for hit in spec.evaluate(ctx, Order.objects.filter(pk__in=sorted(new)))}
    return hits, {rules.order_subject(order_id) for order_id in still}


@contextmanager
def _collecting_garbage_after():
    """Pause Python's cycle collector while the sweep runs. A sweep over a
    backlog builds tens of thousands of small objects (hits, rows) that all
    live until it ends, and the collector would walk them again and again as
    they are made; they hold no cycles, so reference counting frees them as
    before, and whatever cycles remain are collected as usual afterwards."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


# pg_advisory_xact_lock's two-key form, apart from the one-key locks of split groups.
SWEEP_LOCK = (0x5357_4550, 1)


def _hold_the_sweep_lock():
    """Hold the sweep's writing step until commit, so that two sweeps at once
    write one after the other: the second finds the cases open and the people
    told. SQLite runs one writing transaction at a time already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", SWEEP_LOCK)


def summary_link(kind, recipient, at) -> str:
    """The list that shows exactly what a sweep's summary of ``kind`` sums up
    for ``recipient``: the cases it opened (or escalated) at ``at``, the
    person's organisation's own or, for deadlines, its orders'; for reminders
    the escalations still waiting for a first response."""
    if kind == NotificationKind.CASE_OPENED_SUMMARY and recipient.organisation.kind == OrganisationKind.MERCHANT:
        # A merchant is also told of cases others own about its orders
        # (``RuleSpec.tells``): the cases opened then on its orders.
        query = {"opened": at, "status": ""}
    elif kind == NotificationKind.CASE_OPENED_SUMMARY:
        query = {"owner": recipient.organisation.code, "opened": at, "status": ""}
    elif kind == NotificationKind.DEADLINE_AT_RISK_SUMMARY:
        query = {"rule": Rule.DEADLINE_AT_RISK, "opened": at, "status": ""}
    elif kind == NotificationKind.ESCALATION_OPENED_SUMMARY:
        query = {"escalated": at, "status": ""}
    else:
        return f"/escalations/?{urlencode({'overdue': 'yes'})}"
    # Paths as the other links of notifications write them: the sweep runs in
    # workers that need not load the URL configuration.
    return f"/cases/?{urlencode(query)}"


def _live_cases() -> dict:
    found: dict = {}
    for row in RiskCase.objects.filter(status__in=LIVE).values("pk", "rule", "subject", "fingerprint"):
        found.setdefault(row["rule"], {})[row["subject"]] = row
    return found


def resolve_rows(rows, resolution, now, why=None) -> int:
    """Close live cases whose condition cleared (a conditional update: a case a
    person or another sweep closed meanwhile is left alone). ``why`` is the
    note, as source text; by default the sweep's own."""
    done = 0
    # System notes are stored as their source text and translated when shown.
    why = (
        why
        or {
            Resolution.CONDITION_CLEARED: gettext_noop("The condition cleared; the sweep closed the case."),
            Resolution.SUPERSEDED: gettext_noop("The order moved on; a new case follows it."),
        }[resolution]
    )
    for start in range(0, len(rows), BATCH):
        ids = [row["pk"] for row in rows[start : start + BATCH]]
        # No savepoint of its own: inside a step's transaction nothing would
        # roll back to it (an error fails the step), and the sweep runs it on
        # its own.
        with transaction.atomic(savepoint=False):
            closing = list(
                RiskCase.objects.select_for_update(skip_locked=True)
                .filter(pk__in=ids, status__in=LIVE)
                .values_list("pk", flat=True)
            )
            RiskCase.objects.filter(pk__in=closing).update(
                status=CaseStatus.RESOLVED, resolution=resolution, resolved_at=now, updated_at=now
            )
            CaseEvent.objects.bulk_create(
                [CaseEvent(case_id=pk, kind=CaseEventKind.RESOLVED, note=why, at=now) for pk in closing]
            )
        done += len(closing)
    return done


# Evidence a person already resolved (``Resolution.BY_OWNER``) is not opened again.
_RESOLVED_BY_OWNER = (
    "EXISTS (SELECT 1 FROM risks_riskcase AS done WHERE done.rule = staged.rule AND done.subject = staged.subject"
    " AND done.fingerprint = staged.fingerprint AND done.status = %s AND done.resolution = %s)",
    [CaseStatus.RESOLVED.value, Resolution.BY_OWNER.value],
)

CASE_ROW = [
    "rule",
    "subject",
    "fingerprint",
    "order_id",
    "trade_no",
    "sku",
    "owner_id",
    "severity",
    "due_at",
    "money_at_risk",
    "details",
    "opened_at",
    "status",
    "escalated_at",
    "updated_at",
]


def open_hits(rule, hits, now) -> int:
    """Open a case for each of ``hits`` of ``rule`` (``open_all``); returns how many opened."""
    return open_all({rule: hits}, now).get(rule, 0)


def open_all(fresh, now) -> dict:
    """Open a case for each hit of ``fresh`` (``{rule: hits}``) that has none
    live and whose evidence no person resolved, in a few statements whatever
    their number: the cases are inserted and come back as written (a hit
    another sweep or step opened meanwhile is skipped by the database), each
    gets its first event, the owners are told, and the cases of rules that
    escalate at once go to the platform. Returns how many opened, per rule."""
    how, by_key, ordered = {}, {}, []
    stamped = timezone.now()
    for rule, hits in fresh.items():
        code = str(rule)
        if rules.RULES[rule].escalate_at_once:
            # Written as escalated at once: the state escalating them leaves.
            how[rule] = (code, CaseStatus.ESCALATED, now, now)
        else:
            how[rule] = (code, CaseStatus.OPEN, None, stamped)
        for hit in hits:
            by_key[(code, hit.subject)] = hit
        ordered += hits
    if not ordered:
        return {}
    # Written in the order of the orders' ids: the database then checks each
    # case's order (its foreign key) page after page rather than at random.
    ordered.sort(key=attrgetter("order_id"))

    def row(hit):
        code, status, escalated_at, updated_at = how[hit.rule]
        return (
            code,
            hit.subject,
            hit.fingerprint,
            hit.order_id,
            hit.trade_no,
            hit.sku,
            hit.owner_id,
            hit.severity,
            hit.due_at,
            hit.money_at_risk,
            hit.details,
            now,
            status,
            escalated_at,
            updated_at,
        )

    written = bulk.insert(
        RiskCase,
        CASE_ROW,
        map(row, ordered),
        returning=("id", "rule", "subject"),
        unless=_RESOLVED_BY_OWNER,
        then=(CaseEvent, "case", {"kind": CaseEventKind.OPENED, "at": now}),
    )
    # Cases in the order of their ids: their escalations follow it.
    written.sort()
    created = [pk for pk, _rule, _subject in written]
    _announce(created, now, hits=[by_key[(rule, subject)] for _pk, rule, subject in written])
    at_once = {code for code, status, _at, _updated in how.values() if status == CaseStatus.ESCALATED}
    escalating = [pk for pk, rule, _subject in written if rule in at_once]
    cases.escalate_by_rule(escalating, gettext_noop("Sent to the platform at once, as this rule requires."), now)
    return dict(Counter(rule for _pk, rule, _subject in written))


def _close_finished_groups(ctx, now):
    """Split groups whose orders are all finished need no more reading."""
    finished = [g for g in rules.group_rows(ctx) if not g.open_orders]
    # An order created in the group since it was read keeps it open: wait for
    # any creation in progress (its group lock), then look again.
    still_open = Order.objects.open().filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
    for start in range(0, len(finished), BATCH):
        batch = finished[start : start + BATCH]
        with transaction.atomic():
            workflow.lock_split_groups((g.trade_no, g.sku) for g in batch)
            SplitGroup.objects.filter(
                ~Exists(still_open), pk__in=bulk.among(g.id for g in batch), closed_at__isnull=True
            ).update(closed_at=now)


def _announce(case_ids, now, hits):
    """Tell the owners of new cases, and the merchant and provider of an order
    whose deadline is at risk: one notification per case for a step on an
    order, counted into the summaries when a sweep gathers (from ``hits``,
    the cases' own facts)."""
    if not case_ids:
        return
    gathering = notify.gathering()
    if gathering is not None:
        _count_in(gathering, hits)
        return
    rows = list(
        RiskCase.objects.filter(pk__in=case_ids).values(
            "pk",
            "rule",
            "severity",
            "owner_id",
            "money_at_risk",
            "due_at",
            "order__order_no",
            "order__state",
            "order__auto_confirm_at",
            "order__merchant_id",
            "order__provider_id",
        )
    )
    told = {r["pk"]: rules.RULES[r["rule"]].told(r["order__merchant_id"], r["order__provider_id"]) for r in rows}
    people = notify.users_of({r["owner_id"] for r in rows} | {org for orgs in told.values() for org in orgs})
    items = []
    for r in rows:
        context = {
            "case": r["pk"],
            "rule": r["rule"],
            "severity": r["severity"],
            "order_no": r["order__order_no"],
            "money": str(r["money_at_risk"]),
            "due": r["due_at"].isoformat(),
        }
        link = f"/cases/{r['pk']}/"
        items.append(
            (NotificationKind.CASE_OPENED, r["pk"], people.get(r["owner_id"], []), context, link, r["severity"])
        )
        if told[r["pk"]]:
            kind = rules.RULES[r["rule"]].tells_with
            both = [person for org in told[r["pk"]] for person in people.get(org, [])]
            about = {**context, "deadline": r["order__auto_confirm_at"].isoformat(), "state": r["order__state"]}
            items.append((kind, r["pk"], both, about, link, r["severity"]))
    notify.announce_many(items, now=now)


def _count_in(gathering, hits):
    """Count new cases into a sweep's summaries from what the rules found:
    nothing is read back. The merchant and provider of an order whose
    deadline is at risk come with its hit; an order's are looked up only
    when its hit lacks them."""
    telling = [hit for hit in hits if rules.RULES[hit.rule].tells]
    sides = {hit.order_id: (hit.merchant_id, hit.provider_id) for hit in telling if hit.merchant_id is not None}
    unknown = {hit.order_id for hit in telling} - sides.keys()
    if unknown:
        rows = Order.objects.filter(pk__in=bulk.among(unknown)).values_list("pk", "merchant_id", "provider_id")
        sides.update({pk: (merchant, provider) for pk, merchant, provider in rows})
    owned, told = Counter(), Counter()
    money = defaultdict(Decimal)
    for hit in hits:
        owned[(hit.rule, hit.severity, hit.owner_id)] += 1
        money[(hit.rule, hit.severity, hit.owner_id)] += hit.money_at_risk
        spec = rules.RULES[hit.rule]
        for organisation in spec.told(*sides.get(hit.order_id, (None, None))) if spec.tells else ():
            told[(spec.tells_with, hit.rule, hit.severity, organisation)] += 1
            money[(spec.tells_with, hit.rule, hit.severity, organisation)] += hit.money_at_risk
    people = gathering.people_of({owner for _rule, _severity, owner in owned} | {key[-1] for key in told})
    for (rule, severity, owner), n in owned.items():
        facts = {"count": n, "money": money[(rule, severity, owner)], "severity": severity, "topic": rule}
        gathering.add(NotificationKind.CASE_OPENED, people.get(owner, []), **facts)
    for (kind, rule, severity, organisation), n in told.items():
        facts = {"count": n, "money": money[(kind, rule, severity, organisation)], "severity": severity}
        gathering.add(kind, people.get(organisation, []), topic=rule, **facts)


def _escalate_overdue(ctx) -> int:
    """Cases still open or acknowledged well past their due time go to the
    platform, in batches, within the sweep's writing transaction."""
    limit = ctx.now - timedelta(hours=ctx.cfg.escalate_overdue_after_hours)
    reason = gettext_noop("Still not handled long after it was due; the sweep sent it to the platform.")
    escalated = 0
    while True:
        with transaction.atomic(savepoint=False):
            overdue = list(
                RiskCase.objects.select_for_update(skip_locked=True)
                .filter(status__in=[CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED], due_at__lte=limit)
                .order_by("due_at")
                .values_list("pk", flat=True)[:BATCH]
            )
            escalated += cases.escalate_by_rule(overdue, reason, ctx.now)
        if len(overdue) < BATCH:
            return escalated
