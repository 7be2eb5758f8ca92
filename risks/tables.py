import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from orders.tables import SEVERITY_BADGE
from portal.formatting import countdown, money
from risks.models import Escalation, RiskCase


class CaseTable(tables.Table):
    """Cases from ``RiskCase.objects.shown_to(user)``: a split group's case names
    an order of the group the viewer may see."""

    id = tables.Column(verbose_name="#", linkify=("risks:case", {"pk": tables.A("pk")}))
    rule = tables.Column(verbose_name=_("Rule"))
    order = tables.Column(
        accessor="order_shown",
        verbose_name=_("Order"),
        order_by="order__order_no",
        linkify=("orders:detail", {"order_no": tables.A("order_shown")}),
    )
    owner = tables.Column(accessor="owner__name", verbose_name=_("Owner"), order_by="owner__code")
    severity = tables.Column(verbose_name=_("Severity"))
    status = tables.Column(verbose_name=_("Status"))
    due_at = tables.Column(verbose_name=_("Due"))
    money_at_risk = tables.Column(verbose_name=_("Money at risk"))

    class Meta:
        model = RiskCase
        fields = []
        sequence = ["id", "rule", "order", "owner", "severity", "status", "due_at", "money_at_risk"]
        order_by = "due_at"
        attrs = {"class": "table table-sm table-hover align-middle", "id": "cases"}
        row_attrs = {
            "class": lambda record: "table-danger" if record.is_live and record.due_at < timezone.now() else ""
        }
        empty_text = _("No cases here.")

    def render_rule(self, record):
        return record.get_rule_display()

    def render_severity(self, record):
        return format_html(
            '<span class="badge {}">{}</span>', SEVERITY_BADGE.get(record.severity, ""), record.get_severity_display()
        )

    def render_status(self, record):
        return record.get_status_display()

    def render_due_at(self, record, value):
        if not record.is_live:
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        return format_html('<time datetime="{}" data-countdown>{}</time>', value.isoformat(), countdown(value))

    def render_money_at_risk(self, value):
        return money(value)


class EscalationTable(tables.Table):
    id = tables.Column(verbose_name="#", linkify=("risks:escalation", {"pk": tables.A("pk")}))
    category = tables.Column(verbose_name=_("Category"))
    order = tables.Column(
        accessor="order__order_no",
        verbose_name=_("Order"),
        linkify=("orders:detail", {"order_no": tables.A("order__order_no")}),
    )
    raised_by = tables.Column(
        accessor="raised_by_organisation__name", verbose_name=_("Raised by"), order_by="raised_by_organisation__code"
    )
    status = tables.Column(verbose_name=_("Status"))
    assignee = tables.Column(accessor="assignee__username", verbose_name=_("Assigned to"), default="—")
    first_response_due_at = tables.Column(verbose_name=_("First response due"))

    class Meta:
        model = Escalation
        fields = []
        sequence = ["id", "category", "order", "raised_by", "status", "assignee", "first_response_due_at"]
        order_by = "first_response_due_at"
        attrs = {"class": "table table-sm table-hover align-middle", "id": "escalations"}
        row_attrs = {"class": lambda record: "table-danger" if record.is_overdue else ""}
        empty_text = _("No escalations here.")

    def render_category(self, record):
        label = record.get_category_display()
        if record.raised_by_rule:
            return format_html('{} <span class="badge text-bg-secondary">{}</span>', label, _("rule"))
        return label

    def render_status(self, record):
        return record.get_status_display()

    def render_first_response_due_at(self, record, value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
