"""Sending the notification outbox by email, once per row.

A worker claims due rows with a conditional update (``SKIP LOCKED``, so
workers share them) and sends each outside any transaction over a connection
it opens itself. A row is marked sent as soon as the SMTP server accepted
its message, before anything else is said to the server (the next message,
or QUIT): once the server has it, nothing that can fail stands between the
acceptance and the record, so a worker dying then cannot cause a second
copy. A failure records the error and retries with back-off that doubles
from ``NOTIFY_RETRY_BASE_SECONDS`` up to ``NOTIFY_RETRY_MAX_SECONDS``, for
``NOTIFY_RETRY_WINDOW_HOURS`` from the first failure; then the row is
``failed`` and shows in the admin, which can send it again. A worker that
dies while sending leaves its rows ``sending``; they are claimed again once
their lease ends, so a message is delayed, never lost. Each email carries a
Message-ID made from its row, the same on every attempt.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from portal.models import EmailStatus, Notification

logger = logging.getLogger(__name__)
CLAIM_BATCH = 20


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt: the base, doubled per attempt, at most the cap (1, 2, 4 … 30 minutes)."""
    # The exponent is bounded so that a long outage cannot overflow the multiplication.
    doubled = settings.NOTIFY_RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30)
    return timedelta(seconds=min(doubled, settings.NOTIFY_RETRY_MAX_SECONDS))


def retry_window() -> timedelta:
    """How long a failing email is retried, from its first failure, before it is marked failed."""
    return timedelta(hours=settings.NOTIFY_RETRY_WINDOW_HOURS)


def _due(now):
    lease = now - timedelta(seconds=settings.NOTIFY_LEASE_SECONDS)
    return Q(email_status=EmailStatus.PENDING, next_attempt_at__lte=now) | Q(
        email_status=EmailStatus.SENDING, claimed_at__lt=lease
    )


def claim(now=None, limit=CLAIM_BATCH) -> list[int]:
    """Take up to ``limit`` due rows for this worker; returns their ids."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(_due(now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        Notification.objects.filter(pk__in=ids).update(
            email_status=EmailStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    return ids


def render(notification) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a notification, in its recipient's language."""
    from portal.messages import context_for

    with translation.override(notification.recipient.language or settings.LANGUAGE_CODE):
        context = context_for(notification)
        base = f"emails/{notification.kind}"
        subject = " ".join(render_to_string(f"{base}.subject.txt", context).split())
        text = render_to_string(f"{base}.txt", context)
        html = render_to_string(f"{base}.html", context)
    return subject, text, html


def send(notification, connection=None) -> None:
    """Send one notification by email; raises on any failure.

    Pass an open ``connection``: Django's backends close a connection they
    opened themselves (QUIT) before returning, and that step can fail or the
    worker die in it after the server accepted the message.
    """
    subject, text, html = render(notification)
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "localhost"
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[notification.recipient.email],
        connection=connection,
        headers={"Message-ID": f"<notification-{notification.pk}@{domain}>"},
    )
    message.attach_alternative(html, "text/html")
    if not message.send(fail_silently=False):
        raise RuntimeError("the mail backend did not accept the message")


def deliver(ids, now=None) -> dict:
    """Send the claimed rows ``ids``; returns how many were sent and failed.

    Before each message the row's claim is renewed, on condition that it is
    still the claim this worker made: a row whose lease ran out and that
    another worker took meanwhile is left to that worker, never sent twice.
    """
    sent = failed = 0
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    is_open = False
    for notification in Notification.objects.filter(pk__in=ids, email_status=EmailStatus.SENDING).select_related(
        "recipient"
    ):
        mine = Notification.objects.filter(
            pk=notification.pk, email_status=EmailStatus.SENDING, claimed_at=notification.claimed_at
        )
        renewed = timezone.now()
        if not mine.update(claimed_at=renewed):
            continue  # another worker holds it now
        mine = Notification.objects.filter(pk=notification.pk, email_status=EmailStatus.SENDING, claimed_at=renewed)
        try:
            if not is_open:
                # Opened here, so that sending leaves it open and the row is
                # marked sent before QUIT (see the module's docstring).
                connection.open()
                is_open = True
            send(notification, connection)
        except Exception as exc:  # SMTP refusals, timeouts, template errors: retried, then failed
            failed += 1
            _failed(mine, notification, exc)
            _close(connection)  # the next message opens a fresh connection
            is_open = False
        else:
            # The server accepted it: record that before anything else can fail.
            mine.update(email_status=EmailStatus.SENT, sent_at=timezone.now(), last_error="", failing_since=None)
            sent += 1
    _close(connection)
    return {"sent": sent, "failed": failed}


def _close(connection):
    try:
        connection.close()
    except Exception:  # a broken connection closing: nothing left to do with it
        logger.debug("closing the mail connection failed", exc_info=True)


def _failed(mine, notification, exc):
    error = f"{type(exc).__name__}: {exc}"[:2000]
    now = timezone.now()
    since = notification.failing_since or now
    next_attempt = now + backoff(notification.attempts)
    if next_attempt - since > retry_window():
        status, next_attempt = EmailStatus.FAILED, None
        logger.error("notification %s failed for good after %s: %s", notification.pk, now - since, error)
    else:
        status = EmailStatus.PENDING
        logger.warning("notification %s will be retried: %s", notification.pk, error)
    mine.update(email_status=status, next_attempt_at=next_attempt, last_error=error, failing_since=since)


def send_again(queryset) -> int:
    """Put the failed rows of ``queryset`` back in the outbox with a fresh retry window; returns how many."""
    return queryset.filter(email_status=EmailStatus.FAILED).update(
        email_status=EmailStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        failing_since=None,
        last_error="",
    )


def deliver_due(budget_seconds=50) -> dict:
    """Claim and send due rows until none are left or the time budget is spent."""
    totals = {"sent": 0, "failed": 0}
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        ids = claim()
        if not ids:
            break
        for name, value in deliver(ids).items():
            totals[name] += value
    return totals
