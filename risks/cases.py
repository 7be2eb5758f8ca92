"""What happens to a risk case: opened by the sweep or at once by the
workflow, acknowledged, resolved, escalated. Views, the API, the sweep and
the workflow's reactions all call these; each writes the case's history in
the same transaction. Escalating a case marks it here and raises its
escalation through ``risks.escalations``."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors
from portal import bulk
from risks import escalations, rules
from risks.choices import LIVE_STATUSES, CaseEventKind, CaseStatus, EscalationCategory, Resolution
from risks.models import CaseEvent, Escalation, RiskCase

msg_not_live = _("This case is already resolved.")
msg_not_yours = _("Only the case's owner or the platform may do this.")
msg_reason = _("Say why the platform is needed.")
msg_platform_raises = _("The platform works escalations; it does not raise them.")


def _event(case, kind, *, user=None, organisation=None, note="", at=None):
    return CaseEvent(
        case=case, kind=kind, actor_user=user, actor_organisation=organisation, note=note, at=at or timezone.now()
    )


def record(case, kind, **kwargs) -> CaseEvent:
    """Add one line to a case's history."""
    event = _event(case, kind, **kwargs)
    event.save()
    return event


def _actor_org(actor):
    return actor.organisation


def may_act(case, organisation) -> bool:
    """Whether ``organisation`` may acknowledge, resolve or answer ``case``: its
    owner, or the platform. Screens and services both ask this."""
    return organisation is not None and (organisation.is_platform or organisation.pk == case.owner_id)


def _may_act(case, actor) -> bool:
    return may_act(case, _actor_org(actor))


def _lock_live(case):
    locked = RiskCase.objects.select_for_update().get(pk=case.pk)
    if locked.status not in LIVE_STATUSES:
        raise errors.InvalidTransition(msg_not_live)
    return locked


def acknowledge(case, actor, note="") -> RiskCase:
    """The owner (or the platform) has seen the case and is on it."""
    with transaction.atomic():
        locked = _lock_live(case)
        if not _may_act(locked, actor):
            raise errors.NotAllowed(msg_not_yours)
        if locked.status == CaseStatus.OPEN:
            locked.status = CaseStatus.ACKNOWLEDGED
            locked.acknowledged_at = timezone.now()
            locked.save(update_fields=["status", "acknowledged_at", "updated_at"])
        record(locked, CaseEventKind.ACKNOWLEDGED, user=actor.user, organisation=_actor_org(actor), note=note)
    return locked


def resolve(case, actor, note) -> RiskCase:
    """A person closes the case with a note. If its condition still holds, the
    same evidence does not reopen it; new evidence does."""
    if not note or not note.strip():
        raise errors.InvalidInput(_("Say how the case was resolved."), field="note")
    with transaction.atomic():
        locked = _lock_live(case)
        if not _may_act(locked, actor):
            raise errors.NotAllowed(msg_not_yours)
        _close(locked, Resolution.BY_OWNER, note=note.strip(), user=actor.user)
        record(locked, CaseEventKind.RESOLVED, user=actor.user, organisation=_actor_org(actor), note=note.strip())
    return locked


def _close(case, resolution, *, note="", user=None, at=None):
    case.status = CaseStatus.RESOLVED
    case.resolution = resolution
    case.note = note or case.note
    case.resolved_at = at or timezone.now()
    case.resolved_by = user
    case.save(update_fields=["status", "resolution", "note", "resolved_at", "resolved_by", "updated_at"])


def escalate(case, actor, reason, *, category=None) -> Escalation:
    """A merchant or provider hands the case to the platform (SPEC §4)."""
    reason = (reason or "").strip()
    if not reason:
        raise errors.InvalidInput(msg_reason, field="reason")
    with transaction.atomic():
        locked = _lock_live(case)
        org = _actor_org(actor)
        if org is None or org.is_platform:
            raise errors.NotAllowed(msg_platform_raises)
        escalation = escalations.open_escalation(
            order=locked.order,
            case=locked,
            reason=reason,
            category=category or rules.RULES[locked.rule].category,
            organisation=org,
            user=actor.user,
        )
        _mark_escalated(locked, note=reason, user=actor.user, organisation=org)
    return escalation


def _mark_escalated(case, *, note="", user=None, organisation=None, at=None):
    at = at or timezone.now()
    if case.status != CaseStatus.ESCALATED:
        case.status = CaseStatus.ESCALATED
        case.escalated_at = at
        case.save(update_fields=["status", "escalated_at", "updated_at"])
    record(case, CaseEventKind.ESCALATED, user=user, organisation=organisation, note=note, at=at)


def escalate_order(order, actor, reason, category=EscalationCategory.OTHER) -> Escalation:
    """A merchant or provider escalates an order that has no case for it: the
    same checks as escalating a case, and no case to mark."""
    reason = (reason or "").strip()
    if not reason:
        raise errors.InvalidInput(msg_reason, field="reason")
    org = _actor_org(actor)
    if org is None or org.is_platform:
        raise errors.NotAllowed(msg_platform_raises)
    if category not in EscalationCategory.values:
        raise errors.InvalidInput(_("Unknown category."), field="category")
    return escalations.open_escalation(order=order, reason=reason, category=category, organisation=org, user=actor.user)


def escalate_by_rule(case_ids, reason, at) -> int:
    """Send the live cases ``case_ids`` to the platform in a few statements,
    whatever their number: their escalations raised
    (``escalations.open_for_cases``), the cases marked escalated, each with a
    line in its history."""
    case_ids = list(case_ids)
    if not case_ids:
        return 0
    escalations.open_for_cases(case_ids, reason, at)
    RiskCase.objects.filter(pk__in=bulk.among(case_ids)).exclude(status=CaseStatus.ESCALATED).update(
        status=CaseStatus.ESCALATED, escalated_at=at, updated_at=at
    )
    bulk.insert_each(CaseEvent, "case", case_ids, kind=CaseEventKind.ESCALATED, note=str(reason), at=at)
    return len(case_ids)
