"""The files of the risk lists: cases and escalations as the person sees them
on the page (same filter, same scope), rules, severities and statuses in
words of the person's language."""

from django.utils.text import capfirst
from django.utils.translation import gettext

from orders.exports import Column, download, field, label
from risks.models import Escalation, RiskCase


def _portal_words():
    # A rule's reason is one of the portal's messages: in the reader's
    # language, as the escalation page shows it; what people wrote stays as written.
    return lambda text: gettext(text) if text else None


CASE_COLUMNS = [
    Column(capfirst(RiskCase._meta.verbose_name), "pk"),
    label(RiskCase, "rule"),
    # A split group's case names the viewer's own order of the group
    # (``RiskCaseQuerySet.shown_to``), never another organisation's.
    field(RiskCase, "order_shown", RiskCase._meta.get_field("order").verbose_name),
    field(RiskCase, "trade_no"),
    field(RiskCase, "sku"),
    field(RiskCase, "owner__name"),
    label(RiskCase, "severity"),
    label(RiskCase, "status"),
    field(RiskCase, "due_at"),
    field(RiskCase, "money_at_risk"),
    field(RiskCase, "opened_at"),
    field(RiskCase, "acknowledged_at"),
    field(RiskCase, "escalated_at"),
    field(RiskCase, "resolved_at"),
    label(RiskCase, "resolution"),
]

ESCALATION_COLUMNS = [
    Column(capfirst(Escalation._meta.verbose_name), "pk"),
    field(Escalation, "order__order_no"),
    label(Escalation, "category"),
    label(Escalation, "raised_by_rule"),
    label(Escalation, "status"),
    field(Escalation, "raised_by_organisation__name"),
    field(Escalation, "assignee__username"),
    field(Escalation, "first_response_due_at"),
    field(Escalation, "created_at"),
    field(Escalation, "resolved_at"),
    Column(capfirst(Escalation._meta.get_field("reason").verbose_name), "reason", _portal_words),
    field(Escalation, "resolution_note"),
]


def download_cases(queryset, fmt: str):
    """The cases of ``queryset`` as a file: a list as filtered, in the
    person's scope, annotated by ``RiskCase.objects.shown_to``."""
    return download("cases", fmt, queryset, CASE_COLUMNS)


def download_escalations(queryset, fmt: str):
    """The escalations of ``queryset`` (a list as filtered, in the person's scope) as a file."""
    return download("escalations", fmt, queryset, ESCALATION_COLUMNS)
