"""The daily digest (SPEC §5): at 09:00 Asia/Shanghai each person gets the open
and overdue cases of their organisation, the money at risk, and the cases
they chose to hear about in the digest rather than at once."""

from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from portal import notify
from portal.models import EmailStatus, Notification, NotificationKind, Organisation

DIGEST_ITEMS = 50


def _case_totals(organisation, now):
    from risks.models import RiskCase

    cases = RiskCase.objects.live()
    if not organisation.is_platform:
        cases = cases.filter(owner=organisation)
    return cases.aggregate(open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now)), money=Sum("money_at_risk"))


def _item(notification) -> dict:
    """One line of the digest: a case, or a sweep's summary of many (its kind and how many)."""
    context = notification.context
    if "count" in context:
        return {"kind": notification.kind, "count": context["count"], "money": context.get("money", "")}
    return {
        "rule": context.get("rule", ""),
        "order_no": context.get("order_no", ""),
        "money": context.get("money", "0"),
    }


def send_daily_digest(now=None) -> int:
    """Write today's digest for everyone with something to report; returns how many."""
    now = now or timezone.now()
    today = timezone.localdate(now).isoformat()
    waiting = {}
    for n in Notification.objects.filter(email_status=EmailStatus.DIGEST).order_by("created_at"):
        waiting.setdefault(n.recipient_id, []).append(n)
    written = 0
    for organisation in Organisation.objects.filter(is_active=True).order_by("pk"):
        totals = _case_totals(organisation, now)
        people = notify.users_of([organisation.pk]).get(organisation.pk, [])
        done = set(
            Notification.objects.filter(
                recipient__in=people, key=f"{NotificationKind.DAILY_DIGEST}:{today}"
            ).values_list("recipient_id", flat=True)
        )
        for person in people:
            if person.pk in done:
                continue  # beat ran twice today: the first digest stands
            items = waiting.get(person.pk, [])[:DIGEST_ITEMS]
            if not totals["open"] and not items:
                continue
            context = {
                "date": today,
                "organisation": organisation.name,
                "open": totals["open"],
                "overdue": totals["overdue"],
                "money": str(totals["money"] or Decimal("0.00")),
                "items": [_item(i) for i in items],
            }
            with transaction.atomic():
                written += notify.announce(
                    NotificationKind.DAILY_DIGEST, today, [person], context=context, link="/cases/", now=now
                )
                Notification.objects.filter(pk__in=[i.pk for i in items], email_status=EmailStatus.DIGEST).update(
                    email_status=EmailStatus.DIGESTED
                )
    return written
