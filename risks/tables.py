import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from orders.tables import SEVERITY_BADGE
from portal.formatting import countdown, money
from portal.tables import Table, UrlPattern
from risks.models import Escalation, RiskCase
from risks.replay import LOSS_COLUMNS


class CaseTable(Table):
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

    def render_severity(self, record, value):
        return format_html('<span class="badge {}">{}</span>', SEVERITY_BADGE.get(record.severity, ""), value)

    def render_due_at(self, record, value):
        if not record.is_live:
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        return format_html('<time datetime="{}" data-countdown>{}</time>', value.isoformat(), countdown(value))

    def render_money_at_risk(self, value):
        return money(value)


class TickColumn(tables.CheckBoxColumn):
    """The tick of a queue row, for the bulk form outside the live-refreshed
    rows (``form="bulk-form"``), with the assignee the person sees on the row:
    a bulk assignment refuses a row someone else took meanwhile."""

    def render(self, value, bound_column, record):
        return format_html(
            '<input type="checkbox" name="select" value="{}" form="bulk-form" class="form-check-input" '
            'aria-label="{}"><input type="hidden" name="seen-{}" value="{}" form="bulk-form">',
            value,
            _("Tick escalation %(n)s") % {"n": value},
            value,
            record.assignee_id or "",
        )


class EscalationTable(Table):
    """The operators' triage queue, and each organisation's own escalations.

    Rows come in the queue's order (live and unassigned first, then by
    first-response time, ``risks.views.queue``); platform operators get a tick
    and "Take it" on each row. Nothing here queries per row."""

    select = TickColumn(
        accessor="pk",
        attrs={"th__input": {"data-select-all": "1", "class": "form-check-input", "aria-label": _("Tick all")}},
        exclude_from_export=True,
    )
    id = tables.Column(verbose_name="#", linkify=("risks:escalation", {"pk": tables.A("pk")}))
    first_response_due_at = tables.Column(verbose_name=_("First response due"))
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
    # Who has it; an operator takes an unassigned one right here ("Take it").
    assignee = tables.Column(
        accessor="assignee__username", verbose_name=_("Assigned to"), empty_values=(), order_by="assignee__username"
    )

    class Meta:
        model = Escalation
        fields = []
        # What decides the triage comes first, so that it is on screen on a phone too.
        sequence = [
            "select",
            "id",
            "first_response_due_at",
            "assignee",
            "status",
            "order",
            "category",
            "raised_by",
        ]
        attrs = {"class": "table table-sm table-hover align-middle", "id": "escalations"}
        row_attrs = {
            "class": lambda record: "table-danger" if record.is_overdue else "",
            "data-escalation": lambda record: record.pk,
        }
        empty_text = _("No escalations here.")

    def __init__(self, *args, viewer=None, **kwargs):
        # Operators take and assign from the queue; others only read their own.
        self.viewer = viewer
        self._assign_url = UrlPattern("risks:escalation-assign", "pk")
        self.operator = bool(viewer is not None and viewer.organisation_id and viewer.organisation.is_platform)
        exclude = [*kwargs.pop("exclude", ())]
        if not self.operator:
            exclude.append("select")
        super().__init__(*args, exclude=exclude, **kwargs)

    def render_category(self, record, value):
        if record.raised_by_rule:
            return format_html('{} <span class="badge text-bg-secondary">{}</span>', value, _("rule"))
        return value

    def render_order(self, record, value):
        if record.order.flow_blocked:
            return format_html('{} <span class="badge text-bg-danger">{}</span>', value, _("blocked"))
        return value

    def render_assignee(self, record, value):
        if record.assignee_id is None:
            return self._take(record) if self.operator and record.is_live else "—"
        if self.viewer is not None and record.assignee_id == self.viewer.pk:
            return format_html('{} <span class="badge text-bg-info">{}</span>', value, _("you"))
        return value

    def render_first_response_due_at(self, record, value):
        # Once an operator has taken it the first response is given: the time
        # it was due is history, not a countdown.
        if not record.is_live or record.assignee_id is not None:
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        when = format_html(
            '<time datetime="{}" data-countdown title="{}">{}</time>',
            value.isoformat(),
            timezone.localtime(value).strftime("%Y-%m-%d %H:%M"),
            countdown(value),
        )
        if record.is_overdue:
            return format_html('{} <span class="badge text-bg-danger">{}</span>', when, _("overdue"))
        return when

    def _take(self, record):
        """One POST: the escalation is the viewer's, and the queue shows it.

        The take replaces any refresh of the queue still on its way
        (``hx-sync``): a refresh answering first would put a new queue in
        place of the one the take's answer goes into, and the answer, with
        what it says, would be dropped."""
        value = record.pk
        url = self._assign_url(value)
        return format_html(
            '<button type="submit" form="bulk-form" formaction="{}" name="take" value="{}" '
            'class="btn btn-sm btn-outline-primary text-nowrap" hx-post="{}" hx-target="#results" '
            'hx-select="#results" hx-swap="outerHTML" hx-sync="#results:replace" data-take>{}</button>',
            url,
            value,
            url,
            _("Take it"),
        )


LOSS_HEADERS = dict(LOSS_COLUMNS)


def _hours(value):
    return f"{value:,.1f}"


def _time(value):
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


class LossTable(Table):
    """The losses of a replay (``risks.findings.losses``: plain rows, in words),
    by deadline as the replay found them; headed as ``replay.LOSS_COLUMNS``."""

    order_no = tables.Column(
        verbose_name=LOSS_HEADERS["order_no"], linkify=("orders:detail", {"order_no": tables.A("order_no")})
    )
    outcome = tables.Column(verbose_name=LOSS_HEADERS["outcome"])
    deadline = tables.Column(verbose_name=LOSS_HEADERS["deadline"])
    money = tables.Column(verbose_name=LOSS_HEADERS["money"], attrs={"td": {"class": "text-end"}})
    caught_at = tables.Column(verbose_name=LOSS_HEADERS["caught_at"])
    rule = tables.Column(verbose_name=LOSS_HEADERS["rule"])
    lead_hours = tables.Column(verbose_name=LOSS_HEADERS["lead_hours"], attrs={"td": {"class": "text-end"}})
    rule_without_forecast = tables.Column(
        verbose_name=LOSS_HEADERS["rule_without_forecast"], attrs={"th": {"class": "heading-long"}}
    )
    lead_hours_without_forecast = tables.Column(
        verbose_name=LOSS_HEADERS["lead_hours_without_forecast"],
        attrs={"th": {"class": "heading-long"}, "td": {"class": "text-end"}},
    )

    class Meta:
        orderable = False
        attrs = {"class": "table table-sm table-hover align-middle small", "id": "losses"}
        empty_text = _("No order ended as a loss in this period.")

    def render_deadline(self, value):
        return _time(value)

    def render_caught_at(self, value):
        return _time(value)

    def render_money(self, value):
        return money(value)

    def render_rule(self, record, value):
        return value if record["caught"] else format_html('<span class="text-danger">{}</span>', value)

    def render_rule_without_forecast(self, record, value):
        return value if record["caught_without_forecast"] else format_html('<span class="text-danger">{}</span>', value)

    def render_lead_hours(self, value):
        return _hours(value)

    def render_lead_hours_without_forecast(self, value):
        return _hours(value)
