"""What happens to risk cases and escalations: opened by the sweep or at
once by the workflow, acknowledged, resolved, escalated. Views, the API, the
sweep and the workflow's reactions all call these; each writes the case's
history in the same transaction."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors
from risks import escalations
from risks.choices import (
    LIVE_STATUSES,
    CaseEventKind,
    CaseStatus,
    EscalationCategory,
    Resolution,
    Rule,
)
from risks.models import CaseEvent, Escalation, RiskCase

CATEGORY_FOR_RULE = {
    Rule.PENDING_SIGN_IN: EscalationCategory.SIGN_IN,
    Rule.FLOW_BLOCKED: EscalationCategory.FLOW_BLOCKED,
    Rule.OFFLINE_SHIPMENT: EscalationCategory.OFFLINE_SHIPMENT,
    Rule.SPLIT_ORDER: EscalationCategory.SPLIT_ORDER,
    Rule.DUPLICATE_APPRAISAL_FEE: EscalationCategory.SPLIT_ORDER,
    Rule.DUPLICATE_LOGISTICS_FEE: EscalationCategory.SPLIT_ORDER,
    Rule.UNCONFIRMABLE_SPLIT_ORDER: EscalationCategory.SPLIT_ORDER,
    Rule.STALLED: EscalationCategory.OVERDUE_CASE,
    Rule.DEADLINE_AT_RISK: EscalationCategory.DEADLINE,
}

msg_not_live = _("This case is already resolved.")
msg_not_yours = _("Only the case's owner or the platform may do this.")
msg_reason = _("Say why the platform is needed.")


def first_response_hours() -> int:
    return settings.ESCALATION_FIRST_RESPONSE_HOURS


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
            raise errors.NotAllowed(_("The platform works escalations; it does not raise them."))
        escalation = open_escalation(
            order=locked.order,
            case=locked,
            reason=reason,
            category=category or CATEGORY_FOR_RULE[locked.rule],
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
            escalations.announce_opened([escalation], now=at)
            return escalation
    except IntegrityError:
        # Another sweep raised it a moment ago: one live escalation per case.
        return Escalation.objects.live().get(case=case)


def escalate_order(order, actor, reason, category=EscalationCategory.OTHER) -> Escalation:
    """A merchant or provider escalates an order that has no case for it."""
    reason = (reason or "").strip()
    if not reason:
        raise errors.InvalidInput(msg_reason, field="reason")
    org = _actor_org(actor)
    if org is None or org.is_platform:
        raise errors.NotAllowed(_("The platform works escalations; it does not raise them."))
    if category not in EscalationCategory.values:
        raise errors.InvalidInput(_("Unknown category."), field="category")
    return open_escalation(order=order, reason=reason, category=category, organisation=org, user=actor.user)


def escalate_many_by_rule(live_cases, reason, at) -> int:
    """Send cases to the platform in a few statements, whatever their number.

    Each escalation is raised in the name of the case's owner, or of the
    order's provider when the platform owns the case (a blocked flow, an
    offline shipment), so that the organisation that must act sees it and its
    outcome. A case with a live escalation keeps it (one per case).
    """
    if not live_cases:
        return 0
    due = at + timedelta(hours=first_response_hours())
    Escalation.objects.bulk_create(
        [
            Escalation(
                order_id=case.order_id,
                case=case,
                reason=str(reason),
                category=CATEGORY_FOR_RULE[case.rule],
                raised_by_organisation_id=(case.owner_id if not case.owner.is_platform else case.order.provider_id),
                raised_by_rule=case.rule,
                first_response_due_at=due,
                created_at=at,
            )
            for case in live_cases
        ],
        ignore_conflicts=True,
    )
    ids = [case.pk for case in live_cases]
    escalations.announce_opened(
        Escalation.objects.filter(case_id__in=ids, created_at=at).select_related("order", "raised_by_organisation"),
        now=at,
    )
    RiskCase.objects.filter(pk__in=ids).exclude(status=CaseStatus.ESCALATED).update(
        status=CaseStatus.ESCALATED, escalated_at=at, updated_at=at
    )
    CaseEvent.objects.bulk_create(
        [_event(case, CaseEventKind.ESCALATED, note=str(reason), at=at) for case in live_cases]
    )
    return len(live_cases)


def chooses_for_group(org, trade_no, sku) -> bool:
    """Whether ``org`` may answer the split group: the one merchant of every
    order in it. A group created across two merchants (before a trade was
    tied to one merchant) has no one to choose for it: neither merchant may
    decide for the other's orders."""
    from orders.models import Order

    if org is None or not org.is_merchant:
        return False
    members = Order.objects.split_group(trade_no, sku).order_by()
    return set(members.values_list("merchant_id", flat=True).distinct()) == {org.pk}


def choose_split(trade_no, sku, choice, actor):
    """The merchant's answer for a split group (SPEC §3, split_order): A, refund
    the extra orders and re-buy them as normal orders; B, keep them as "no
    appraisal needed", every waybill picked up and delivered, the merchant
    bearing the logistics fees. The case resolves when the group matches."""
    from orders.choices import SplitChoice
    from orders.models import Order, SplitGroup

    if choice not in SplitChoice.values:
        raise errors.InvalidInput(_("Choose A or B."), field="choice")
    org = _actor_org(actor)
    if org is None or not org.is_merchant:
        raise errors.NotAllowed(_("The merchant chooses how split orders are handled."))
    members = Order.objects.split_group(trade_no, sku)
    if not members.filter(merchant=org).exists():
        raise Order.DoesNotExist
    if not chooses_for_group(org, trade_no, sku):
        raise errors.TradeOfOtherMerchant(trade_no=trade_no)
    with transaction.atomic():
        group = SplitGroup.objects.select_for_update().filter(trade_no=trade_no, sku=sku).first()
        if group is None or members.count() < 2:
            raise errors.InvalidTransition(_("These orders are not a split group."))
        if not members.exclude(state__in=_terminal()).exists():
            raise errors.InvalidTransition(_("Every order of this group is finished; there is nothing left to choose."))
        group.choice = choice
        group.chosen_by = actor.user
        group.chosen_at = timezone.now()
        group.save(update_fields=["choice", "chosen_by", "chosen_at"])
        live = RiskCase.objects.live().filter(rule=Rule.SPLIT_ORDER, subject=f"group:{trade_no}/{sku}").first()
        if live is not None:
            record(
                live,
                CaseEventKind.SPLIT_CHOICE,
                user=actor.user,
                organisation=org,
                note=str(SplitChoice(choice).label),
            )
    return group


def _terminal():
    from orders.choices import TERMINAL_STATES

    return sorted(TERMINAL_STATES)
