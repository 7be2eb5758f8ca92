"""Announcing things to people (SPEC §5): one notification row per recipient
and cause, written in the caller's transaction (the outbox), sent afterwards
by ``portal.delivery``.

A cause is named by a key (``case_opened:41``, ``escalation_commented:7``);
the database keeps one row per person and key, so announcing the same cause
twice (two sweeps, a retried task) reaches each person once.
"""

import logging
import time

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
    K.DEADLINE_AT_RISK: Delivery.IMMEDIATELY,
    K.ESCALATION_OPENED: Delivery.IMMEDIATELY,
    K.ESCALATION_ASSIGNED: Delivery.IMMEDIATELY,
    K.ESCALATION_COMMENTED: Delivery.IMMEDIATELY,
    K.ESCALATION_CLOSED: Delivery.IMMEDIATELY,
    K.ESCALATION_REMINDER: Delivery.IMMEDIATELY,
    K.DAILY_DIGEST: Delivery.IMMEDIATELY,
}
# Money about to be lost, and escalations nobody took: these cannot be switched off.
ALWAYS_ON = frozenset({K.DEADLINE_AT_RISK, K.ESCALATION_REMINDER})
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


def _delivery(user, kind, severity, chosen) -> str:
    delivery = chosen.get((user.pk, kind))
    if delivery is None:
        delivery = DEFAULT_DELIVERY[kind]
        if kind == K.CASE_OPENED and severity in URGENT_SEVERITIES:
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
    if not items:
        return 0
    users = {u.pk for item in items for u in item[2]}
    chosen = {
        (p.user_id, p.kind): p.delivery
        for p in NotificationPreference.objects.filter(user_id__in=users, kind__in={item[0] for item in items})
    }
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
