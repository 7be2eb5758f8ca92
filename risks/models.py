from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, When
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from orders.choices import DEADLINE_AT_RISK_HOURS, DEADLINE_NEAR_HOURS, Action, describe_parameters
from orders.models import Order
from portal.choices import OrganisationKind
from portal.scoping import ScopedQuerySet
from risks.choices import (
    GROUP_RULES,
    LIVE_ESCALATIONS,
    LIVE_STATUSES,
    CaseEventKind,
    CaseStatus,
    EscalationCategory,
    EscalationStatus,
    Resolution,
    Rule,
    Severity,
)

_live = Q(status__in=[s.value for s in LIVE_STATUSES])
_group = Q(rule__in=sorted(GROUP_RULES))


def _hours(label, default, help_text=""):
    return models.PositiveIntegerField(label, default=default, validators=[MinValueValidator(1)], help_text=help_text)


class RiskSettings(models.Model):
    """The thresholds of SPEC §3, one row, edited by administrators in the admin."""

    pending_sign_in_hours = _hours(_("pending sign-in: hours unsigned"), 24)
    pending_sign_in_high_within_hours = _hours(
        _("pending sign-in: high severity within hours of the deadline"), DEADLINE_NEAR_HOURS
    )
    unconfirmable_hours = _hours(_("unconfirmable split order: hours without a waybill or pickup"), 24)
    deadline_at_risk_hours = _hours(_("deadline at risk: hours before the deadline"), DEADLINE_AT_RISK_HOURS)
    escalate_overdue_after_hours = _hours(_("hours after its due time an open case escalates"), 12)
    sla_awaiting_shipment_hours = _hours(_("SLA awaiting shipment (merchant)"), 48)
    sla_inbound_hours = _hours(_("SLA in transit to provider (merchant)"), 96)
    sla_signed_in_hours = _hours(_("SLA signed in (provider)"), 24)
    sla_appraised_hours = _hours(_("SLA appraised (provider)"), 24)
    sla_inspected_hours = _hours(_("SLA inspected (provider)"), 12)
    sla_packed_hours = _hours(_("SLA packed (provider)"), 12)
    sla_waybill_printed_hours = _hours(_("SLA waybill printed (provider)"), 24)
    sla_outbound_hours = _hours(_("SLA picked up, in transit (platform)"), 120)
    forecast_margin_hours = models.PositiveIntegerField(
        _("forecast miss: hours of margin before the deadline"),
        default=0,
        help_text=_("An order is forecast to miss when its expected delivery is later than its deadline less this."),
    )
    forecast_min_samples = models.PositiveIntegerField(
        _("forecast: orders a provider's stage needs before its own figure is used"),
        default=20,
        validators=[MinValueValidator(1)],
        help_text=_("With fewer, the stage is forecast by all providers' figure."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("risk thresholds")
        verbose_name_plural = _("risk thresholds")

    def __str__(self):
        return str(_("Risk thresholds"))

    @classmethod
    def current(cls) -> "RiskSettings":
        """The thresholds in force (the defaults until an administrator changes them)."""
        found = cls.objects.filter(pk=1).first()
        return found if found is not None else cls(pk=1)

    def sla(self) -> dict[str, timedelta]:
        """How long an order may stay in each state before it is stalled (whose
        it then is, the ``stalled`` entry of ``risks.rules.RULES`` says)."""
        return {
            state: timedelta(hours=getattr(self, f"sla_{state}_hours"))
            for state in (
                "awaiting_shipment",
                "inbound",
                "signed_in",
                "appraised",
                "inspected",
                "packed",
                "waybill_printed",
                "outbound",
            )
        }


class RiskCaseQuerySet(ScopedQuerySet):
    """Cases about orders one may see. An order's case is seen with its order;
    a split group's case by every organisation with an order in the group
    (each still sees only its own orders)."""

    def visible_to_organisation(self, org):
        sides = {OrganisationKind.MERCHANT: "merchant", OrganisationKind.PROVIDER: "provider"}
        if org.is_platform:
            return self.all()
        if org.kind not in sides:
            return self.none()
        side = sides[org.kind]
        # Both tests are lookups of one case's orders, answered from an index
        # alone (``order_parties``, ``order_split_group``): the database walks
        # the cases asked for (the live ones, say), never every order of the
        # organisation, as a join to the case's order under the same OR would.
        own = Order.objects.filter(pk=OuterRef("order_id"), **{side: org})
        member = Order.objects.filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"), **{side: org})
        return self.filter(Q(Exists(own)) | (_group & Q(Exists(member))))

    def live(self):
        return self.filter(_live)

    def about(self, order):
        """The cases about ``order``: its own, and its split group's."""
        return self.filter(Q(order=order) | (_group & Q(trade_no=order.trade_no, sku=order.sku)))

    def shown_to(self, user):
        """Annotate ``order_shown``: the order number to show ``user`` for each
        case, the case's own order, or for a group case the first order of
        the group that ``user`` may see (the case may be filed under an order
        of another organisation)."""
        visible = Order.objects.visible_to(user).filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
        return self.annotate(
            order_shown=Case(
                When(_group, then=Subquery(visible.order_by("pk").values("order_no")[:1])),
                default=F("order__order_no"),
            )
        )


class RiskCase(models.Model):
    """One hit of a risk rule on an order or a split group, and what people did about it.

    ``subject`` names what the case is about (``order:<id>`` or
    ``group:<trade_no>/<sku>``); at most one live case exists per rule and
    subject, which the database enforces. ``fingerprint`` describes the
    evidence: a case a person resolved is not reopened for the same evidence.
    """

    rule = models.CharField(_("rule"), max_length=32, choices=Rule.choices)
    subject = models.CharField(_("subject"), max_length=200)
    fingerprint = models.CharField(_("evidence"), max_length=100, blank=True)
    # Found by order through ``case_order_status``, which leads with it.
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="cases", db_index=False
    )
    trade_no = models.CharField(_("trade number"), max_length=64)
    sku = models.CharField(_("SKU"), max_length=64)
    owner = models.ForeignKey(
        "portal.Organisation", verbose_name=_("owner"), on_delete=models.PROTECT, related_name="risk_cases"
    )
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    status = models.CharField(_("status"), max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    due_at = models.DateTimeField(_("due"))
    money_at_risk = models.DecimalField(_("money at risk (CNY)"), max_digits=14, decimal_places=2, default=0)
    details = models.JSONField(_("details"), default=dict, blank=True)
    resolution = models.CharField(_("resolution"), max_length=24, choices=Resolution.choices, blank=True)
    note = models.TextField(_("note"), blank=True)
    opened_at = models.DateTimeField(_("opened"))
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    escalated_at = models.DateTimeField(_("escalated"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # Indexed only where set (``case_resolved_by``): most cases close by themselves.
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = RiskCaseQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("risk case")
        verbose_name_plural = _("risk cases")
        constraints = [
            models.UniqueConstraint(fields=["rule", "subject"], condition=_live, name="one_live_case_per_subject"),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=_live, name="case_live_due"),
            # Evidence a person resolved is not opened again: only those cases are looked up by it.
            models.Index(
                fields=["rule", "subject", "fingerprint"],
                condition=Q(status=CaseStatus.RESOLVED, resolution=Resolution.BY_OWNER),
                name="case_resolved_evidence",
            ),
            models.Index(fields=["order", "status"], name="case_order_status"),
            # A group's cases are found from any of its orders by trade and SKU.
            models.Index(fields=["trade_no", "sku"], condition=_group, name="case_group"),
            models.Index(fields=["resolved_by"], condition=Q(resolved_by__isnull=False), name="case_resolved_by"),
        ]

    def __str__(self):
        return f"{self.get_rule_display()} · {self.order.order_no if self.order_id else self.subject}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_group_case(self) -> bool:
        return self.rule in GROUP_RULES

    def members(self):
        """The orders this case is about: its order, or every order of its split group."""
        if self.is_group_case:
            return Order.objects.split_group(self.trade_no, self.sku)
        return Order.objects.filter(pk=self.order_id)


def live_cases_of(order):
    """The live risk cases about ``order``: its own and its split group's."""
    return RiskCase.objects.live().about(order).select_related("owner").order_by("due_at", "pk")


def attach_live_cases(orders) -> list:
    """Give each of ``orders`` (a page of a list) its live risk cases, its
    split group's included, as ``live_cases``, with one query for them all.

    The query asks for group cases by the page's trade numbers and SKUs as
    two lists (what the ``case_group`` index serves), not pair by pair: at
    50 rows a condition per order cost three times as much to build and
    plan. The lists may bring a case of another group that shares a trade
    number with one order and a SKU with another; each order keeps only its
    own below."""
    orders = list(orders)
    cases = []
    if orders:
        near = Q(trade_no__in=sorted({o.trade_no for o in orders}), sku__in=sorted({o.sku for o in orders}))
        about = Q(order__in=[o.pk for o in orders]) | (_group & near)
        cases = list(RiskCase.objects.live().filter(about).order_by("rule", "pk"))
    for order in orders:
        order.live_cases = [
            case
            for case in cases
            if case.order_id == order.pk
            or (case.is_group_case and (case.trade_no, case.sku) == (order.trade_no, order.sku))
        ]
    return orders


class CaseEvent(models.Model):
    """The history of a case: opened, acknowledged, escalated, resolved and why."""

    case = models.ForeignKey(RiskCase, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("what"), max_length=16, choices=CaseEventKind.choices)
    # Who acted, when a person did: indexed only where set (most events are the sweep's).
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    actor_organisation = models.ForeignKey(
        "portal.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    note = models.TextField(_("note"), blank=True)
    at = models.DateTimeField(_("when"))

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        indexes = [
            models.Index(fields=["actor_user"], condition=Q(actor_user__isnull=False), name="case_event_actor_user"),
            models.Index(
                fields=["actor_organisation"],
                condition=Q(actor_organisation__isnull=False),
                name="case_event_actor_organisation",
            ),
        ]

    def __str__(self):
        return f"{self.case_id} {self.kind}"


class EscalationQuerySet(ScopedQuerySet):
    def visible_to_organisation(self, org):
        """The platform sees every escalation; others see those their organisation raised."""
        if org.is_platform:
            return self.all()
        return self.filter(raised_by_organisation=org)

    def live(self):
        return self.filter(status__in=[s.value for s in LIVE_ESCALATIONS])


class Escalation(models.Model):
    """A request for a platform operator to step in (SPEC §4), raised by a person or by a rule."""

    status = models.CharField(
        _("status"), max_length=16, choices=EscalationStatus.choices, default=EscalationStatus.OPEN
    )
    category = models.CharField(_("category"), max_length=24, choices=EscalationCategory.choices)
    reason = models.TextField(_("reason"))
    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="escalations")
    case = models.ForeignKey(
        RiskCase,
        verbose_name=_("case"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="escalations",
    )
    raised_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("raised by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    raised_by_organisation = models.ForeignKey(
        "portal.Organisation", verbose_name=_("raised by organisation"), on_delete=models.PROTECT, related_name="+"
    )
    raised_by_rule = models.CharField(_("raised by rule"), max_length=32, choices=Rule.choices, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned to"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_escalations",
    )
    first_response_due_at = models.DateTimeField(_("first response due"))
    created_at = models.DateTimeField(_("opened"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    resolved_at = models.DateTimeField(_("closed"), null=True, blank=True)
    resolution_note = models.TextField(_("outcome"), blank=True)
    # Reminders sent to the operators while it waits unassigned past its due time.
    reminders_sent = models.PositiveIntegerField(_("reminders sent"), default=0)

    objects = EscalationQuerySet.as_manager()

    class Meta:
        ordering = ["first_response_due_at", "id"]
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")
        constraints = [
            # A case goes to the platform once while that escalation is live.
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(case__isnull=False, status__in=[s.value for s in LIVE_ESCALATIONS]),
                name="one_live_escalation_per_case",
            ),
        ]
        indexes = [
            models.Index(
                fields=["first_response_due_at"],
                condition=Q(status__in=[s.value for s in LIVE_ESCALATIONS]),
                name="escalation_live_due",
            ),
        ]

    def __str__(self):
        return f"{self.get_category_display()} · {self.order.order_no}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_ESCALATIONS

    @property
    def is_overdue(self) -> bool:
        """Live, nobody took it, and its first response is late."""
        from django.utils import timezone

        return self.is_live and self.assignee_id is None and self.first_response_due_at < timezone.now()


class EntryKind(models.TextChoices):
    COMMENT = "comment", _("Comment")
    INTERNAL = "internal", _("Internal note")
    ASSIGNED = "assigned", _("Assigned")
    ACTION = "action", _("Action on the order")
    RESOLVED = "resolved", _("Resolved")
    REJECTED = "rejected", _("Rejected")
    RAISED = "raised", _("Raised")


class EntryCode(models.TextChoices):
    """What an action line of a thread says. The line is stored as its code and
    parameters (``EscalationEntry.params``) and put into words when it is read,
    in the reader's language (``EscalationEntry.line``)."""

    ASSIGNED = "assigned", _("Assigned")
    STATUS = "status", _("Status changed")
    ORDER_ACTION = "order_action", _("Action on the order")
    RAISED_BY_RULE = "raised_by_rule", _("Raised by a rule")


# What people typed: shown as they typed it, in every language.
TYPED_KINDS = frozenset({EntryKind.COMMENT, EntryKind.INTERNAL, EntryKind.RESOLVED, EntryKind.REJECTED})


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def _status_change(params) -> str:
    old, new = params.get("from"), params.get("to")
    if not new or old == new:
        return ""
    return gettext("Status: %(old)s → %(new)s.") % {
        "old": _label(EscalationStatus, old) if old else "—",
        "new": _label(EscalationStatus, new),
    }


def _assigned_line(params) -> str:
    by, assignee = params.get("by"), params.get("assignee", "")
    if by and by != assignee:
        text = gettext("%(by)s assigned the escalation to %(assignee)s.") % {"by": by, "assignee": assignee}
    elif by:
        text = gettext("%(assignee)s took the escalation.") % {"assignee": assignee}
    else:
        text = gettext("Assigned to %(assignee)s.") % {"assignee": assignee}
    return " ".join(part for part in (text, _status_change(params)) if part)


def _order_action_line(params) -> str:
    action = _label(Action, params.get("action", ""))
    details = ", ".join(f"{label}: {value}" for label, value in describe_parameters(params.get("params") or {}))
    if not details:
        return action
    return gettext("%(action)s — %(details)s") % {"action": action, "details": details}


def _raised_by_rule_line(params) -> str:
    rule = _label(Rule, params.get("rule", ""))
    reason = params.get("reason", "")
    if not reason:
        return gettext("Raised by the rule “%(rule)s”.") % {"rule": rule}
    # Reasons a rule gives are the portal's own messages, stored as their source text.
    return gettext("Raised by the rule “%(rule)s”: %(reason)s") % {"rule": rule, "reason": gettext(reason)}


ENTRY_LINES = {
    EntryCode.ASSIGNED: _assigned_line,
    EntryCode.STATUS: _status_change,
    EntryCode.ORDER_ACTION: _order_action_line,
    EntryCode.RAISED_BY_RULE: _raised_by_rule_line,
}


def entry_line(code, params) -> str:
    """The words of an action line, in the active language."""
    render = ENTRY_LINES.get(code)
    return render(params or {}) if render is not None else ""


class EscalationEntryQuerySet(models.QuerySet):
    def visible_to_organisation(self, org):
        """Internal notes are the platform's own; everyone else sees the rest."""
        if org is not None and org.is_platform:
            return self.all()
        return self.exclude(kind=EntryKind.INTERNAL)


class EscalationEntry(models.Model):
    """One line of an escalation's thread: a comment, an internal note, or what happened."""

    escalation = models.ForeignKey(Escalation, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    author_organisation = models.ForeignKey(
        "portal.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What a person typed (a comment, a note); for an action line, its words
    # in English for readers that show stored text as it is (the API, the
    # admin). Lines written before ``code`` existed are shown from it.
    body = models.TextField(_("text"), blank=True)
    code = models.CharField(_("what happened"), max_length=24, choices=EntryCode.choices, blank=True)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"))

    objects = EscalationEntryQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("escalation entry")
        verbose_name_plural = _("escalation entries")

    def __str__(self):
        return f"{self.escalation_id} {self.kind}"

    @property
    def is_internal(self) -> bool:
        return self.kind == EntryKind.INTERNAL

    @property
    def line(self) -> str:
        """What happened, in the reader's language; a line stored before codes
        existed reads as it was written."""
        if self.code:
            return entry_line(self.code, self.params)
        return "" if self.kind in TYPED_KINDS else self.body

    @property
    def typed_text(self) -> str:
        """What a person wrote with this line, shown as written."""
        return self.body if self.kind in TYPED_KINDS else ""


class ReplayRun(models.Model):
    """One replay of the risk rules over recorded history (``risks.replay``):
    the period, the thresholds changed from those in force, and what it
    found. Written once when the replay finishes; the platform's page shows
    the latest."""

    period_start = models.DateTimeField(_("replayed from"))
    period_end = models.DateTimeField(_("replayed to"))
    # The thresholds that differed from ``RiskSettings`` (empty: those in force).
    thresholds = models.JSONField(_("thresholds changed"), default=dict, blank=True)
    orders = models.PositiveIntegerField(_("orders replayed"))
    hours = models.PositiveIntegerField(_("hours replayed"))
    seconds = models.FloatField(_("took (seconds)"))
    # ``risks.replay.Report.as_json``: per rule, per loss, the headline.
    report = models.JSONField(_("findings"))
    finished_at = models.DateTimeField(_("finished at"), auto_now_add=True)

    class Meta:
        ordering = ["-finished_at", "-pk"]
        verbose_name = _("replay of the risk rules")
        verbose_name_plural = _("replays of the risk rules")

    def __str__(self):
        return f"{self.period_start:%Y-%m-%d} – {self.period_end:%Y-%m-%d}"
