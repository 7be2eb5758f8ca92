"""The sweep (SPEC §3): run every rule, open a case for each new hit,
resolve the cases whose condition cleared, escalate the overdue ones.

Safe to run on several machines at once: a partial unique constraint keeps
one live case per rule and subject (inserts that lose the race are dropped),
resolutions are conditional updates on live cases, and escalations are
unique per case. Its queries grow with the number of rules and batches, its
work with the number of hits, never with the number of orders.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext_noop

from orders import workflow
from orders.models import Order, SplitGroup
from portal import bulk, notify
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
    summary = Summary()
    live = _live_cases()
    for rule, spec in rules.RULES.items():
        hits = {hit.subject: hit for hit in spec.evaluate(ctx)}
        current = live.get(rule, {})
        cleared = [case for subject, case in current.items() if subject not in hits]
        restarted = [
            case
            for subject, case in current.items()
            if subject in hits and spec.restart_on_new_evidence and case["fingerprint"] != hits[subject].fingerprint
        ]
        resolved = resolve_rows(cleared, Resolution.CONDITION_CLEARED, now)
        resolved += resolve_rows(restarted, Resolution.SUPERSEDED, now)
        still_live = {s for s in current if s in hits} - {c["subject"] for c in restarted}
        fresh = [hit for subject, hit in hits.items() if subject not in still_live]
        opened = open_hits(rule, fresh, now)
        if opened:
            summary.opened[rule] = opened
        if resolved:
            summary.resolved[rule] = resolved
    _close_finished_groups(ctx, now)
    summary.escalated = _escalate_overdue(ctx)
    escalations.remind_unassigned(now, settings.ESCALATION_REMINDER_HOURS)
    logger.info("risk sweep: %s", summary.line())
    return summary


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
        with transaction.atomic():
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


def _suppressed(rule, hits) -> set:
    """Subjects whose exact evidence a person already resolved."""
    if not hits:
        return set()
    resolved = set(
        RiskCase.objects.filter(
            rule=rule,
            status=CaseStatus.RESOLVED,
            resolution=Resolution.BY_OWNER,
            subject__in=[hit.subject for hit in hits],
        ).values_list("subject", "fingerprint")
    )
    return {hit.subject for hit in hits if (hit.subject, hit.fingerprint) in resolved}


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
]


def open_hits(rule, hits, now) -> int:
    opened = 0
    for start in range(0, len(hits), BATCH):
        batch = hits[start : start + BATCH]
        skip = _suppressed(rule, batch)
        batch = [hit for hit in batch if hit.subject not in skip]
        if not batch:
            continue
        with transaction.atomic():
            bulk.insert(
                RiskCase,
                CASE_ROW,
                [
                    (
                        rule,
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
                    )
                    for hit in batch
                ],
            )
            # Only the cases this sweep made (opened_at == now, no history yet)
            # get their first event; a racing sweep's cases are its own.
            created = list(
                RiskCase.objects.filter(rule=rule, subject__in=[h.subject for h in batch], opened_at=now)
                .filter(status=CaseStatus.OPEN)
                .exclude(events__kind=CaseEventKind.OPENED)
                .values_list("pk", flat=True)
            )
            bulk.insert(CaseEvent, ["case_id", "kind", "at"], [(pk, CaseEventKind.OPENED, now) for pk in created])
            _announce(created, now)
            if rules.RULES[rule].escalate_at_once:
                cases.escalate_many_by_rule(
                    list(RiskCase.objects.filter(pk__in=created).select_related("owner", "order")),
                    gettext_noop("Sent to the platform at once, as this rule requires."),
                    now,
                )
        opened += len(created)
    return opened


def _close_finished_groups(ctx, now):
    """Split groups whose orders are all finished need no more reading."""
    finished = [g for g in rules.group_rows(ctx) if not g["open_orders"]]
    # An order created in the group since it was read keeps it open: wait for
    # any creation in progress (its group lock), then look again.
    still_open = Order.objects.open().filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
    for start in range(0, len(finished), BATCH):
        batch = finished[start : start + BATCH]
        with transaction.atomic():
            workflow.lock_split_groups((g["trade_no"], g["sku"]) for g in batch)
            SplitGroup.objects.filter(
                ~Exists(still_open), pk__in=[g["id"] for g in batch], closed_at__isnull=True
            ).update(closed_at=now)


def _announce(case_ids, now):
    """Tell the owners of new cases, and the merchant and provider of an order whose deadline is at risk."""
    if not case_ids:
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
    people = notify.users_of(
        {r["owner_id"] for r in rows}
        | {r["order__merchant_id"] for r in rows if r["rule"] == Rule.DEADLINE_AT_RISK}
        | {r["order__provider_id"] for r in rows if r["rule"] == Rule.DEADLINE_AT_RISK}
    )
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
        if r["rule"] == Rule.DEADLINE_AT_RISK:
            both = people.get(r["order__merchant_id"], []) + people.get(r["order__provider_id"], [])
            deadline = {**context, "deadline": r["order__auto_confirm_at"].isoformat(), "state": r["order__state"]}
            items.append((NotificationKind.DEADLINE_AT_RISK, r["pk"], both, deadline, link, r["severity"]))
    notify.announce_many(items, now=now)


def _escalate_overdue(ctx) -> int:
    """Cases still open or acknowledged well past their due time go to the platform."""
    limit = ctx.now - timedelta(hours=ctx.cfg.escalate_overdue_after_hours)
    reason = gettext_noop("Still not handled long after it was due; the sweep sent it to the platform.")
    escalated = 0
    while True:
        with transaction.atomic():
            overdue = list(
                RiskCase.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status__in=[CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED], due_at__lte=limit)
                .select_related("order", "owner")
                .order_by("due_at")[:BATCH]
            )
            escalated += cases.escalate_many_by_rule(overdue, reason, ctx.now)
        if len(overdue) < BATCH:
            return escalated
