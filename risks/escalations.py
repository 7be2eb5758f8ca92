"""Escalations (SPEC §4): raised by a person or by a rule, an operator takes
one, the thread grows, the operator acts on the order from it, and closes it;
every step tells the people concerned (SPEC §5) in the same transaction.

Raising one for a risk case is half of escalating the case: ``risks.cases``
marks the case and calls these, never the other way round.
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors, workflow
from orders.choices import Action, describe_parameters
from portal import notify
from portal.models import NotificationKind
from risks import rules
from risks.choices import LIVE_ESCALATIONS, EscalationStatus
from risks.models import EntryKind, Escalation, EscalationEntry

msg_platform_only = _("Only a platform operator may do this.")
msg_closed = _("This escalation is closed.")
msg_body = _("Write something.")
# What an operator may do to the order from an escalation.
ORDER_ACTIONS = (Action.EXTEND_DEADLINE, Action.UNBLOCK, Action.SIGN_IN_ON_BEHALF)


def _is_platform(actor) -> bool:
    return actor.organisation is not None and actor.organisation.is_platform


def _lock_live(escalation):
    locked = Escalation.objects.select_for_update().select_related("order").get(pk=escalation.pk)
    if locked.status not in LIVE_ESCALATIONS:
        raise errors.InvalidTransition(msg_closed)
    return locked


def _entry(escalation, kind, actor, body="", at=None):
    return EscalationEntry.objects.create(
        escalation=escalation,
        kind=kind,
        author=actor.user,
        author_organisation=actor.organisation,
        body=body,
        created_at=at or timezone.now(),
    )


def _people(escalation, *, raisers=True, exclude=None):
    """The raising organisation's people and the assignee, without the person who acted."""
    people = list(notify.users_of([escalation.raised_by_organisation_id]).get(escalation.raised_by_organisation_id, []))
    if not raisers:
        people = []
    if escalation.assignee_id:
        people.append(escalation.assignee)
    return [p for p in people if exclude is None or p.pk != exclude.pk]


def _context(escalation, **extra):
    return {"escalation": escalation.pk, "order_no": escalation.order.order_no, **extra}


def link(escalation) -> str:
    return f"/escalations/{escalation.pk}/"


def announce_opened(escalations, now=None):
    """Tell the platform's operators about new escalations."""
    people = notify.operators()
    notify.announce_many(
        [
            (
                NotificationKind.ESCALATION_OPENED,
                e.pk,
                people,
                _context(
                    e,
                    category=e.category,
                    reason=e.reason,
                    raised_by=e.raised_by_organisation.name,
                    due=e.first_response_due_at.isoformat(),
                ),
                link(e),
                None,
            )
            for e in escalations
        ],
        now=now,
    )


def first_response_hours() -> int:
    return settings.ESCALATION_FIRST_RESPONSE_HOURS


def open_escalation(*, order, reason, category, organisation, user=None, case=None, rule="", at=None) -> Escalation:
    """Raise an escalation; a case that already has a live one gets that one back."""
    at = at or timezone.now()
    if case is not None:
        live = Escalation.objects.live().filter(case=case).first()
        if live is not None:
            return live
    try:
        with transaction.atomic():
            escalation = Escalation.objects.create(
                order=order,
                case=case,
                reason=reason,
                category=category,
                raised_by_organisation=organisation,
                raised_by_user=user,
                raised_by_rule=rule,
                first_response_due_at=at + timedelta(hours=first_response_hours()),
                created_at=at,
            )
            announce_opened([escalation], now=at)
            return escalation
    except IntegrityError:
        # Another sweep raised it a moment ago: one live escalation per case.
        return Escalation.objects.live().get(case=case)


def open_for_cases(live_cases, reason, at) -> None:
    """Raise an escalation for each of ``live_cases`` in a few statements,
    whatever their number, each about what its rule is about.

    Each is raised in the name of the case's owner, or of the order's
    provider when the platform owns the case (a blocked flow, an offline
    shipment), so that the organisation that must act sees it and its
    outcome. A case with a live escalation keeps it (one per case).
    """
    due = at + timedelta(hours=first_response_hours())
    Escalation.objects.bulk_create(
        [
            Escalation(
                order_id=case.order_id,
                case=case,
                reason=str(reason),
                category=rules.RULES[case.rule].category,
                raised_by_organisation_id=(case.owner_id if not case.owner.is_platform else case.order.provider_id),
                raised_by_rule=case.rule,
                first_response_due_at=due,
                created_at=at,
            )
            for case in live_cases
        ],
        ignore_conflicts=True,
    )
    announce_opened(
        Escalation.objects.filter(case_id__in=[case.pk for case in live_cases], created_at=at).select_related(
            "order", "raised_by_organisation"
        ),
        now=at,
    )


def assign_to_me(escalation, actor) -> Escalation:
    """An operator takes the escalation; it is in progress from now on.

    Taking it again while already its in-progress assignee changes nothing:
    no second thread entry, no second notification (a double click, a retry).
    """
    if not _is_platform(actor) or actor.user is None:
        raise errors.NotAllowed(msg_platform_only)
    with transaction.atomic():
        locked = _lock_live(escalation)
        if locked.assignee_id == actor.user.pk and locked.status == EscalationStatus.IN_PROGRESS:
            return locked
        locked.assignee = actor.user
        locked.status = EscalationStatus.IN_PROGRESS
        locked.save(update_fields=["assignee", "status", "updated_at"])
        _entry(locked, EntryKind.ASSIGNED, actor, body=actor.user.get_username())
        notify.announce(
            NotificationKind.ESCALATION_ASSIGNED,
            f"{locked.pk}:{actor.user.pk}",
            _people(locked, exclude=actor.user),
            context=_context(locked, assignee=actor.user.get_username()),
            link=link(locked),
        )
    return locked


def comment(escalation, actor, body, *, internal=False) -> EscalationEntry:
    """Add to the thread. Internal notes are the platform's and only it sees them."""
    body = (body or "").strip()
    if not body:
        raise errors.InvalidInput(msg_body, field="body")
    if internal and not _is_platform(actor):
        raise errors.NotAllowed(msg_platform_only)
    with transaction.atomic():
        locked = (
            Escalation.objects.select_for_update(of=("self",)).select_related("order", "assignee").get(pk=escalation.pk)
        )
        entry = _entry(locked, EntryKind.INTERNAL if internal else EntryKind.COMMENT, actor, body=body)
        author = actor.user.get_username() if actor.user else actor.organisation.code
        notify.announce(
            NotificationKind.ESCALATION_COMMENTED,
            entry.pk,
            _people(locked, raisers=not internal, exclude=actor.user),
            context=_context(locked, author=author, body=body, internal=internal),
            link=link(locked),
        )
    return entry


def close(escalation, actor, note, status=EscalationStatus.RESOLVED) -> Escalation:
    """Resolve or reject the escalation with a note to the raising organisation."""
    if not _is_platform(actor):
        raise errors.NotAllowed(msg_platform_only)
    note = (note or "").strip()
    if not note:
        raise errors.InvalidInput(msg_body, field="note")
    with transaction.atomic():
        locked = _lock_live(escalation)
        now = timezone.now()
        locked.status = status
        locked.resolved_at = now
        locked.resolution_note = note
        if locked.assignee_id is None and actor.user is not None:
            locked.assignee = actor.user
        locked.save(update_fields=["status", "resolved_at", "resolution_note", "assignee", "updated_at"])
        kind = EntryKind.RESOLVED if status == EscalationStatus.RESOLVED else EntryKind.REJECTED
        _entry(locked, kind, actor, body=note, at=now)
        notify.announce(
            NotificationKind.ESCALATION_CLOSED,
            f"{locked.pk}:{status}",
            _people(locked, exclude=actor.user),
            context=_context(locked, status=status, note=note),
            link=link(locked),
        )
    return locked


def act_on_order(escalation, actor, action, **params):
    """An operator's workflow step on the escalated order, recorded in the thread."""
    if not _is_platform(actor):
        raise errors.NotAllowed(msg_platform_only)
    if action not in ORDER_ACTIONS:
        raise errors.InvalidInput(_("This action is not taken from an escalation."), field="action")
    with transaction.atomic():
        locked = _lock_live(escalation)
        order = workflow.perform(locked.order, action, actor, expected_version=None, **params)
        # The thread is read by people: parameters by their labels, never their names.
        detail = ", ".join(f"{label}: {value}" for label, value in describe_parameters(params))
        _entry(locked, EntryKind.ACTION, actor, body=f"{Action(action).label}{' — ' + detail if detail else ''}")
    return order


def remind_unassigned(now, every_hours) -> int:
    """Unassigned escalations past their first-response time remind the operators,
    once per interval (the interval's number is in the cause, so a second sweep
    in the same interval adds nothing)."""
    waiting = list(
        Escalation.objects.live()
        .filter(assignee__isnull=True, first_response_due_at__lte=now)
        .select_related("order")[:1000]
    )
    interval = timedelta(hours=every_hours)
    due = []
    for escalation in waiting:
        number = 1 + int((now - escalation.first_response_due_at) / interval)
        if number > escalation.reminders_sent:
            due.append((escalation, number))
    if not due:
        return 0
    people = notify.operators()
    with transaction.atomic():
        notify.announce_many(
            [
                (
                    NotificationKind.ESCALATION_REMINDER,
                    f"{e.pk}:{n}",
                    people,
                    _context(e, due=e.first_response_due_at.isoformat(), reminder=n),
                    link(e),
                    None,
                )
                for e, n in due
            ],
            now=now,
        )
        for escalation, number in due:
            Escalation.objects.filter(pk=escalation.pk, reminders_sent__lt=number).update(reminders_sent=number)
    return len(due)
