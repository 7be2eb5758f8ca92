"""Announcing things to people (SPEC §5): one notification row per recipient
and cause, written in the caller's transaction (the outbox), sent afterwards
by ``portal.delivery``.

A cause is named by a key (``case_opened:41``, ``escalation_commented:7``);
the database keeps one row per person and key, so announcing the same cause
twice (two sweeps, a retried task) reaches each person once.

A sweep over a backlog finds thousands of causes at once. While it writes, it
*gathers* (``gathered``): what it announces of a kind that has a summary
(``SUMMARY_OF``) is counted per person instead of written, and at the end of
its transaction each person gets one summary per kind, keyed by the sweep's
time (``case_opened_summary:2026-11-30T01:05:00+00:00``).
"""

import logging
import time
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal import bulk
from portal.choices import OrganisationKind
from portal.models import Delivery, EmailStatus, Notification, NotificationKind, NotificationPreference, User

logger = logging.getLogger(__name__)
K = NotificationKind

# How each kind is emailed unless the person chose otherwise.
DEFAULT_DELIVERY = {
    K.CASE_OPENED: Delivery.DIGEST,  # high and critical cases: immediately, see ``_delivery``
    K.CASE_OPENED_SUMMARY: Delivery.DIGEST,  # likewise, when one of its cases is high or critical
    K.DEADLINE_AT_RISK: Delivery.IMMEDIATELY,
    K.DEADLINE_AT_RISK_SUMMARY: Delivery.IMMEDIATELY,
    K.ESCALATION_OPENED: Delivery.IMMEDIATELY,
    K.ESCALATION_OPENED_SUMMARY: Delivery.IMMEDIATELY,
    K.ESCALATION_ASSIGNED: Delivery.IMMEDIATELY,
    K.ESCALATION_COMMENTED: Delivery.IMMEDIATELY,
    K.ESCALATION_CLOSED: Delivery.IMMEDIATELY,
    K.ESCALATION_REMINDER: Delivery.IMMEDIATELY,
    K.ESCALATION_REMINDER_SUMMARY: Delivery.IMMEDIATELY,
    K.DAILY_DIGEST: Delivery.IMMEDIATELY,
}
# The kinds a sweep sums up, and the summary kind each becomes.
SUMMARY_OF = {
    K.CASE_OPENED: K.CASE_OPENED_SUMMARY,
    K.DEADLINE_AT_RISK: K.DEADLINE_AT_RISK_SUMMARY,
    K.ESCALATION_OPENED: K.ESCALATION_OPENED_SUMMARY,
    K.ESCALATION_REMINDER: K.ESCALATION_REMINDER_SUMMARY,
}
SUMMED_UP = {summary: kind for kind, summary in SUMMARY_OF.items()}
# Only the sweep raised these one by one; it sums them up now. Their items
# stay readable in inboxes, but nobody is asked how to receive them.
RETIRED = frozenset({K.DEADLINE_AT_RISK, K.ESCALATION_REMINDER})
# Money about to be lost, and escalations nobody took: these cannot be switched off.
ALWAYS_ON = frozenset(
    {K.DEADLINE_AT_RISK, K.DEADLINE_AT_RISK_SUMMARY, K.ESCALATION_REMINDER, K.ESCALATION_REMINDER_SUMMARY}
)
# Escalations are the platform's work: only its operators are told of new ones and reminded.
PLATFORM_ONLY = frozenset(
    {K.ESCALATION_OPENED, K.ESCALATION_OPENED_SUMMARY, K.ESCALATION_REMINDER, K.ESCALATION_REMINDER_SUMMARY}
)
# Emailed at once when high or critical, whatever the default.
BY_SEVERITY = frozenset({K.CASE_OPENED, K.CASE_OPENED_SUMMARY})
URGENT_SEVERITIES = frozenset({"high", "critical"})
_STATUS = {
    Delivery.IMMEDIATELY: EmailStatus.PENDING,
    Delivery.DIGEST: EmailStatus.DIGEST,
    Delivery.OFF: EmailStatus.OFF,
}


def users_of(organisation_ids):
    """Active people of these organisations, by organisation."""
    found: dict = {}
    for user in User.objects.filter(organisation_id__in=set(organisation_ids), is_active=True):
        found.setdefault(user.organisation_id, []).append(user)
    return found


def operators():
    """Active people of the platform."""
    return list(User.objects.filter(organisation__kind=OrganisationKind.PLATFORM, is_active=True))


def chosen_delivery(chosen: dict, kind):
    """A person's choice for ``kind`` among ``chosen`` (``{kind: delivery}``),
    or None. A summary follows the choice made for what it sums up until the
    person chooses for the summary itself."""
    found = chosen.get(kind)
    if found is None and kind in SUMMED_UP:
        found = chosen.get(SUMMED_UP[kind])
    return found


def _delivery(user, kind, severity, chosen) -> str:
    delivery = chosen_delivery(chosen.get(user.pk, {}), kind)
    if delivery is None:
        delivery = DEFAULT_DELIVERY[kind]
        if kind in BY_SEVERITY and severity in URGENT_SEVERITIES:
            delivery = Delivery.IMMEDIATELY
    if delivery == Delivery.OFF and (kind in ALWAYS_ON or severity == "critical"):
        delivery = Delivery.IMMEDIATELY
    if not user.email:
        return EmailStatus.OFF
    return _STATUS[delivery]


def announce_many(items, now=None, *, stream=True) -> int:
    """Write notifications for many causes at once.

    ``items`` are ``(kind, key, recipients, context, link, severity)``; rows
    that exist already (same person, same cause) are left as they are.
    Returns how many rows were asked for.
    """
    now = now or timezone.now()
    items = [item for item in items if item[2]]
    gathering = _gathering.get()
    if gathering is not None:
        for kind, _key, recipients, context, _link, severity in [i for i in items if i[0] in SUMMARY_OF]:
            topic = context.get("rule") or context.get("category")
            gathering.add(kind, recipients, money=context.get("money"), severity=severity, topic=topic)
        items = [item for item in items if item[0] not in SUMMARY_OF]
    if not items:
        return 0
    users = {u.pk for item in items for u in item[2]}
    kinds = {item[0] for item in items}
    chosen: dict = {}
    for p in NotificationPreference.objects.filter(
        user_id__in=users, kind__in=kinds | {SUMMED_UP[k] for k in kinds if k in SUMMED_UP}
    ):
        chosen.setdefault(p.user_id, {})[p.kind] = p.delivery
    rows = []
    for kind, key, recipients, context, link, severity in items:
        for user in {u.pk: u for u in recipients}.values():
            status = _delivery(user, kind, severity, chosen)
            due = now if status == EmailStatus.PENDING else None
            rows.append((user.pk, kind, f"{kind}:{key}", context, link, now, status, due))
    bulk.insert(Notification, ROW, rows, stream=stream)
    transaction.on_commit(kick)
    return len(rows)


ROW = ["recipient_id", "kind", "key", "context", "link", "created_at", "email_status", "next_attempt_at"]


def announce(kind, key, recipients, *, context, link="", severity=None, now=None) -> int:
    """Write one notification per recipient for one cause, in the caller's transaction."""
    return announce_many([(kind, key, list(recipients), context, link, severity)], now=now, stream=False)


CENT = Decimal("0.01")
# Gravest first: a summary takes the severity of its gravest cause.
SEVERITY_ORDER = ("critical", "high", "medium")


@dataclass
class Tally:
    """What one person is to be told about the causes of one kind a sweep gathered."""

    recipient: User
    count: int = 0
    money: Decimal = Decimal("0")
    severities: Counter = field(default_factory=Counter)
    topics: Counter = field(default_factory=Counter)

    @property
    def severity(self):
        return next((s for s in SEVERITY_ORDER if self.severities[s]), None)


class Gathering:
    """The causes announced while a sweep writes, counted per summary kind and person."""

    def __init__(self, now):
        self.now = now
        self.tallies: dict[tuple[str, int], Tally] = {}
        self._people: dict = {}

    def people_of(self, organisation_ids) -> dict:
        """``users_of``, each organisation looked up once per gathering."""
        missing = set(organisation_ids) - self._people.keys()
        if missing:
            found = users_of(missing)
            for organisation_id in missing:
                self._people[organisation_id] = found.get(organisation_id, [])
        return self._people

    def add(self, kind, recipients, *, count=1, money=None, severity=None, topic=None) -> None:
        """Count ``count`` causes of ``kind`` (a kind of ``SUMMARY_OF``) for each of ``recipients``."""
        summary = SUMMARY_OF[kind]
        for user in recipients:
            tally = self.tallies.get((summary, user.pk))
            if tally is None:
                tally = self.tallies[(summary, user.pk)] = Tally(user)
            tally.count += count
            if money:
                tally.money += Decimal(money)
            if severity:
                tally.severities[severity] += count
            if topic:
                tally.topics[topic] += count

    def write(self, link) -> int:
        """One notification per person and summary kind, keyed by the gathering's
        time: a second sweep at another time finds its own causes, the same
        sweep retried finds the rows there. ``link(kind, recipient, at)`` is
        the list that shows the causes summed up. Returns how many rows were asked for."""
        at = self.now.isoformat()
        items = []
        for (kind, _pk), tally in sorted(self.tallies.items()):
            organisation = tally.recipient.organisation
            context = {
                "count": tally.count,
                "severities": dict(tally.severities),
                "topics": [[topic, n] for topic, n in tally.topics.most_common()],
                "organisation": organisation.name if organisation else "",
                "at": at,
            }
            if tally.money:
                context["money"] = str(tally.money.quantize(CENT))
            items.append((kind, at, [tally.recipient], context, link(kind, tally.recipient, at), tally.severity))
        self.tallies = {}
        return announce_many(items, now=self.now)


_gathering: ContextVar[Gathering | None] = ContextVar("notification_gathering", default=None)


def gathering() -> Gathering | None:
    """The gathering of the sweep writing now, if any."""
    return _gathering.get()


@contextmanager
def gathered(now, link):
    """Sum up what is announced inside the block: each person gets one
    notification per summary kind, written when the block ends (inside the
    caller's transaction, which the block must run in), never one per cause.
    Kinds without a summary are written as they are announced."""
    found = Gathering(now)
    token = _gathering.set(found)
    try:
        yield found
    finally:
        _gathering.reset(token)
    found.write(link)


# After a failed publish the broker is left alone this long: a frozen Redis
# would otherwise cost every notifying request its socket time-out.
KICK_PAUSE_SECONDS = 10.0
_kick_paused_until = 0.0


def kick():
    """Ask a worker to send what is due now.

    Only a nudge: the rows are already committed in the database, and beat
    runs ``deliver_due`` every ``NOTIFY_DELIVERY_SECONDS`` anyway. So a
    broker that is down or frozen costs one short, logged attempt (the
    broker's socket time-outs, no publish retry), then no attempts at all
    for ``KICK_PAUSE_SECONDS``; the request carries on either way.
    """
    global _kick_paused_until
    if not settings.NOTIFY_ENQUEUE or time.monotonic() < _kick_paused_until:
        return
    try:
        current_app.send_task("portal.tasks.deliver_due", retry=False)
    except Exception:  # the broker is unreachable: beat will pick the rows up
        _kick_paused_until = time.monotonic() + KICK_PAUSE_SECONDS
        logger.warning("could not enqueue notification delivery; beat will send the rows", exc_info=True)
