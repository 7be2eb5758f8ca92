"""Escalations (SPEC §4): raised by a person or by a rule, an operator takes
one, the thread grows, the operator acts on the order from it, and closes it;
every step tells the people concerned (SPEC §5) in the same transaction.

Raising one for a risk case is half of escalating the case: ``risks.cases``
marks the case and calls these, never the other way round.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from orders import errors, workflow
from orders.choices import Action
from portal import bulk, notify
from portal.choices import OrganisationKind
from portal.models import NotificationKind, User
from risks import rules
from risks.choices import LIVE_ESCALATIONS, EscalationStatus
from risks.models import EntryCode, EntryKind, Escalation, EscalationEntry, entry_line

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


def _entry(escalation, kind, actor, body="", at=None, *, code="", params=None):
    """Add a line to the thread. An action line is stored as ``code`` and
    ``params`` and put into words when read, in the reader's language; its
    ``body`` keeps the words in English for readers of stored text (the API)."""
    params = params or {}
    if code and not body:
        with translation.override("en"):
            body = entry_line(code, params)
    return EscalationEntry.objects.create(
        escalation=escalation,
        kind=kind,
        author=actor.user,
        author_organisation=actor.organisation,
        body=body,
        code=code,
        params=params,
        created_at=at or timezone.now(),
    )


def _entries_raised_by_rule(escalations, reason, at) -> None:
    """The first line of the thread of each escalation a rule raised: which
    rule and why, put into words when read."""
    rows = []
    lines = {}  # each rule's line once, however many escalations it raised
    for pk, rule in escalations:
        if rule not in lines:
            params = {"rule": rule, "reason": str(reason)}
            with translation.override("en"):
                lines[rule] = (params, entry_line(EntryCode.RAISED_BY_RULE, params))
        params, body = lines[rule]
        rows.append((pk, EntryKind.RAISED, EntryCode.RAISED_BY_RULE, params, body, at))
    fields = ["escalation_id", "kind", "code", "params", "body", "created_at"]
    # A sweep over a backlog raises thousands at once; a step raises one.
    bulk.insert(EscalationEntry, fields, rows, stream=len(rows) > 100)


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
    """Tell the platform's operators about new escalations: one notification
    each, or, while a sweep gathers, counted by category into its summary
    (one grouped query, whatever their number)."""
    people = notify.operators()
    gathering = notify.gathering()
    if gathering is not None and isinstance(escalations, QuerySet):
        for row in escalations.order_by().values("category").annotate(n=Count("pk")):
            gathering.add(NotificationKind.ESCALATION_OPENED, people, count=row["n"], topic=row["category"])
        return
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


def open_for_cases(case_ids, reason, at) -> list[int]:
    """Raise an escalation for each of the live cases ``case_ids`` in a few
    statements, whatever their number, each about what its rule is about;
    returns the ids of those raised.

    Each is raised in the name of the case's owner, or of the order's
    provider when the platform owns the case (a blocked flow, an offline
    shipment), so that the organisation that must act sees it and its
    outcome. A case with a live escalation keeps it (one per case): the
    database skips its row, and only the escalations written come back.
    """
    case_ids = list(case_ids)
    if not case_ids:
        return []
    quote = connection.ops.quote_name
    field = Escalation._meta.get_field
    due = at + timedelta(hours=first_response_hours())
    among = bulk.among(case_ids)
    categories = " ".join("WHEN %s THEN %s" for _ in rules.RULES)
    columns = [
        "status",
        "category",
        "reason",
        "order",
        "case",
        "raised_by_organisation",
        "raised_by_rule",
        "first_response_due_at",
        "created_at",
        "updated_at",
        "resolution_note",
        "reminders_sent",
    ]
    sql = (
        f"INSERT INTO {quote(Escalation._meta.db_table)} ({', '.join(quote(field(name).column) for name in columns)}) "
        f"SELECT %s, CASE c.rule {categories} END, %s, c.order_id, c.id, "
        "CASE WHEN org.kind = %s THEN o.provider_id ELSE c.owner_id END, c.rule, %s, %s, %s, %s, %s "
        "FROM risks_riskcase c JOIN portal_organisation org ON org.id = c.owner_id "
        f"JOIN orders_order o ON o.id = c.order_id WHERE c.id IN ({among.sql}) ORDER BY c.due_at, c.id "
        "ON CONFLICT DO NOTHING RETURNING id, raised_by_rule"
    )
    stamp = field("created_at").get_db_prep_save
    params = [
        EscalationStatus.OPEN.value,
        *[str(value) for code, spec in rules.RULES.items() for value in (code, spec.category)],
        str(reason),
        OrganisationKind.PLATFORM.value,
        stamp(due, connection),
        stamp(at, connection),
        stamp(timezone.now(), connection),
        "",
        0,
        *among.params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raised = sorted(cursor.fetchall())
    ids = [pk for pk, _rule in raised]
    announce_opened(
        Escalation.objects.filter(pk__in=bulk.among(ids)).select_related("order", "raised_by_organisation"), now=at
    )
    _entries_raised_by_rule(raised, reason, at)
    return ids


class AlreadyTaken(errors.Conflict):
    """Someone else took the escalation after the person last saw it."""

    code = "escalation_taken"
    template = _("%(who)s has already taken this escalation.")


msg_closed_as = _("This escalation was closed meanwhile (%(status)s).")
msg_not_operator = _("Choose an operator of the platform.")
# ``seen`` when the person's view of the assignee does not matter (a retry
# through the API, taking over on purpose from the escalation's page).
ANYONE = object()


def operators_of_platform():
    """The people an escalation may be assigned to: active platform operators, by name."""
    return User.objects.filter(organisation__kind=OrganisationKind.PLATFORM, is_active=True).order_by("username")


def assign(escalation, actor, assignee, *, seen=ANYONE) -> Escalation:
    """An operator gives the escalation to ``assignee`` (themself or another
    operator of the platform); it is in progress from now on.

    ``seen`` is the assignee's id the person saw (``None``: nobody). If someone
    else took it meanwhile, the row lock lets one of two people win and the
    other is told who has it (``AlreadyTaken``). Giving it to whoever already
    has it changes nothing: no second thread line, no second notification.
    """
    return _assign(escalation, actor, assignee, seen)[0]


def _assign(escalation, actor, assignee, seen):
    """``assign``, and whether it changed anything."""
    if not _is_platform(actor) or actor.user is None:
        raise errors.NotAllowed(msg_platform_only)
    if assignee is None or not operators_of_platform().filter(pk=assignee.pk).exists():
        raise errors.InvalidInput(msg_not_operator, field="assignee")
    with transaction.atomic():
        # The assignee is read after the lock, not joined to it: PostgreSQL
        # reads a locked row again once the other person's change commits,
        # not the rows joined to it.
        locked = Escalation.objects.select_for_update(of=("self",)).select_related("order").get(pk=escalation.pk)
        if locked.status not in LIVE_ESCALATIONS:
            raise errors.InvalidTransition(msg_closed_as, status=locked.get_status_display())
        if locked.assignee_id == assignee.pk and locked.status == EscalationStatus.IN_PROGRESS:
            return locked, False
        taken = locked.assignee_id is not None and locked.assignee_id not in (seen, assignee.pk)
        if seen is not ANYONE and taken:
            raise AlreadyTaken(who=locked.assignee.get_username())
        was = locked.status
        locked.assignee = assignee
        locked.status = EscalationStatus.IN_PROGRESS
        locked.save(update_fields=["assignee", "status", "updated_at"])
        params = {
            "assignee": assignee.get_username(),
            "by": actor.user.get_username(),
            "from": str(was),
            "to": EscalationStatus.IN_PROGRESS.value,
        }
        _entry(locked, EntryKind.ASSIGNED, actor, body=assignee.get_username(), code=EntryCode.ASSIGNED, params=params)
        notify.announce(
            NotificationKind.ESCALATION_ASSIGNED,
            f"{locked.pk}:{assignee.pk}",
            _people(locked, exclude=actor.user),
            context=_context(locked, assignee=assignee.get_username(), by=actor.user.get_username()),
            link=link(locked),
        )
    return locked, True


def assign_to_me(escalation, actor, *, seen=ANYONE) -> Escalation:
    """An operator takes the escalation (``assign`` to themself)."""
    if actor.user is None:
        raise errors.NotAllowed(msg_platform_only)
    return assign(escalation, actor, actor.user, seen=seen)


@dataclass(frozen=True)
class Assigned:
    """What happened to one escalation of a bulk assignment."""

    escalation: int
    order_no: str
    ok: bool
    message: str


def assign_many(escalations, actor, assignee, *, seen=None) -> list[Assigned]:
    """Assign each of ``escalations`` (in the actor's scope) to ``assignee``,
    each on its own, and say per escalation what happened; ``seen`` maps an
    escalation's id to the assignee the person saw (see ``assign``)."""
    if not _is_platform(actor) or actor.user is None:
        raise errors.NotAllowed(msg_platform_only)
    seen = seen or {}
    outcomes = []
    for escalation in escalations:
        try:
            done, changed = _assign(escalation, actor, assignee, seen.get(escalation.pk, ANYONE))
        except errors.InvalidInput:
            raise
        except errors.WorkflowError as exc:
            outcomes.append(Assigned(escalation.pk, escalation.order.order_no, False, exc.message))
            continue
        text = _("Assigned to %(who)s.") if changed else _("Already with %(who)s.")
        outcomes.append(Assigned(done.pk, done.order.order_no, True, str(text) % {"who": assignee.get_username()}))
    return outcomes


def comment(escalation, actor, body, *, internal=False) -> EscalationEntry:
    """Add to the thread. Internal notes are the platform's and only it sees them."""
    body = (body or "").strip()
    if not body:
        raise errors.InvalidInput(msg_body, field="body")
    if internal and not _is_platform(actor):
        raise errors.NotAllowed(msg_platform_only)
    with transaction.atomic():
        # The assignee (told of the comment) is read after the lock, as in ``assign``.
        locked = Escalation.objects.select_for_update(of=("self",)).select_related("order").get(pk=escalation.pk)
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
        was = locked.status
        locked.status = status
        locked.resolved_at = now
        locked.resolution_note = note
        if locked.assignee_id is None and actor.user is not None:
            locked.assignee = actor.user
        locked.save(update_fields=["status", "resolved_at", "resolution_note", "assignee", "updated_at"])
        kind = EntryKind.RESOLVED if status == EscalationStatus.RESOLVED else EntryKind.REJECTED
        change = {"from": str(was), "to": str(EscalationStatus(status).value)}
        _entry(locked, kind, actor, body=note, at=now, code=EntryCode.STATUS, params=change)
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
        # Read by people in their own language: the action and its parameters
        # by their labels, put into words when the thread is shown.
        taken = {"action": str(Action(action).value), "params": {k: _plain(v) for k, v in params.items()}}
        _entry(locked, EntryKind.ACTION, actor, code=EntryCode.ORDER_ACTION, params=taken)
    return order


def _plain(value):
    """A parameter as the thread stores it (JSON): numbers and text as they are."""
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def waiting_for_reminder(now) -> QuerySet:
    """Live escalations nobody took, past their first-response time."""
    return Escalation.objects.live().filter(assignee__isnull=True, first_response_due_at__lte=now)


def remind_unassigned(now, every_hours) -> int:
    """Unassigned escalations past their first-response time remind the operators,
    once per interval (the interval's number is in the cause, so a second sweep
    in the same interval adds nothing)."""
    waiting = list(waiting_for_reminder(now).select_related("order")[:1000])
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
