import django_filters
from django import forms
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from orders.filtersets import LOOKBACK_DAYS, YES_NO, SaneIsoDateTimeFilter, lookback_start
from orders.inputs import sane_time
from orders.models import Order
from portal.filters import ModelChoiceFilter, StyledFilterSet
from portal.models import Organisation
from risks.choices import LIVE_ESCALATIONS, CaseStatus, EscalationCategory, EscalationStatus, Rule, Severity
from risks.escalations import operators_of_platform
from risks.models import EntryKind, Escalation, EscalationEntry, RiskCase

LIVE = "live"


def moment_choice(moment_filter, given):
    """Show a moment the list was asked for as a choice between it, in local
    time, and any time."""
    try:
        when = parse_datetime(given)
        when = sane_time(when if timezone.is_aware(when) else timezone.make_aware(when)) if when else None
    except ValueError:  # shaped like a time, but no real one (or none of ours): the field refuses it
        when = None
    choices = [("", _("Any time"))]
    if when is not None:
        choices.append((given, timezone.localtime(when).strftime("%Y-%m-%d %H:%M")))
    moment_filter.extra["widget"] = forms.Select(choices=choices)


class CaseFilterSet(StyledFilterSet):
    rule = django_filters.ChoiceFilter(choices=Rule.choices, label=_("Rule"))
    # "live": open, acknowledged or escalated, the cases still to be dealt with.
    status = django_filters.ChoiceFilter(
        choices=[(LIVE, _("Not yet resolved")), *CaseStatus.choices], method="filter_status", label=_("Status")
    )
    severity = django_filters.ChoiceFilter(choices=Severity.choices, label=_("Severity"))
    overdue = django_filters.ChoiceFilter(choices=YES_NO, method="filter_overdue", label=_("Overdue"))
    order = django_filters.CharFilter(method="filter_order", label=_("Order number"))
    owner = ModelChoiceFilter(queryset=Organisation.objects.all(), to_field_name="code", label=_("Owner"))
    # The cases one sweep opened, or sent to the platform, together: the time
    # it wrote them, exactly (ISO 8601 with its offset), as its summaries link.
    opened = SaneIsoDateTimeFilter(field_name="opened_at", label=_("Opened"))
    escalated = SaneIsoDateTimeFilter(field_name="escalated_at", label=_("Sent to the platform"))

    class Meta:
        model = RiskCase
        fields = []

    def __init__(self, data=None, queryset=None, **kwargs):
        super().__init__(data, queryset, **kwargs)
        # Only owners of cases the viewer can see: the others' names are not theirs to list.
        self.filters["owner"].queryset = Organisation.objects.filter(pk__in=self.queryset.values("owner")).order_by(
            "code"
        )
        # A list not asked for such a moment does not offer the field.
        for name in ("opened", "escalated"):
            given = (data or {}).get(name)
            if given:
                moment_choice(self.filters[name], given)
            else:
                del self.filters[name]

    def filter_order(self, queryset, name, value):
        """Cases about an order the viewer may see: its own and its split group's."""
        user = getattr(self.request, "user", None)
        orders = Order.objects.visible_to(user) if user is not None else Order.objects.none()
        order = orders.filter(order_no=value).first()
        return queryset.about(order) if order is not None else queryset.none()

    def filter_status(self, queryset, name, value):
        return queryset.live() if value == LIVE else queryset.filter(status=value)

    def filter_overdue(self, queryset, name, value):
        live = queryset.live()
        if value == "yes":
            return live.filter(due_at__lt=timezone.now())
        return queryset.exclude(pk__in=live.filter(due_at__lt=timezone.now()).values("pk"))


# How an escalation stands against its first-response time (SPEC §4): still
# waiting for an operator, within that time or past it; or taken (assigned or
# closed), in time or late, among those raised in the last LOOKBACK_DAYS days.
RESPONSES = [
    ("waiting", _("Waiting, within the response time")),
    ("overdue", _("Waiting, response overdue")),
    ("in_time", lazy(lambda: _("Answered in time (last %(days)d days)") % {"days": LOOKBACK_DAYS}, str)()),
    ("late", lazy(lambda: _("Answered late (last %(days)d days)") % {"days": LOOKBACK_DAYS}, str)()),
]
FIRST_RESPONSES = (EntryKind.ASSIGNED, EntryKind.RESOLVED, EntryKind.REJECTED)


def with_first_response(escalations):
    """Annotate ``first_response_at``: when an operator first took the escalation, or closed it."""
    first = EscalationEntry.objects.filter(escalation=OuterRef("pk"), kind__in=FIRST_RESPONSES).order_by("created_at")
    return escalations.annotate(first_response_at=Subquery(first.values("created_at")[:1]))


def response_q(code: str, now) -> Q:
    """The escalations (annotated by ``with_first_response``) in the ``RESPONSES`` class ``code``."""
    waiting = Q(status__in=LIVE_ESCALATIONS, assignee__isnull=True)
    answered = Q(assignee__isnull=False, created_at__gte=lookback_start(now))
    in_time = Q(first_response_at__lte=F("first_response_due_at"))
    return {
        "waiting": waiting & Q(first_response_due_at__gte=now),
        "overdue": waiting & Q(first_response_due_at__lt=now),
        "in_time": answered & in_time,
        "late": answered & (Q(first_response_at__gt=F("first_response_due_at")) | Q(first_response_at__isnull=True)),
    }[code]


# Whom an escalation is with: the viewer, nobody yet, or an operator by id.
ME, NOBODY = "me", "none"


class _Later:
    """Choices read when the field is first read or checked, not when the
    filter set is made: a list through the API that does not filter by
    assignee never asks for the operators. Forms copy their fields; this
    stays the one it is (it holds the request)."""

    def __init__(self, read):
        self.read = read

    def __call__(self):
        return self.read()

    def __deepcopy__(self, memo):
        return self


class EscalationFilterSet(StyledFilterSet):
    # "live": open or in progress, the operators' queue.
    status = django_filters.ChoiceFilter(
        choices=[(LIVE, _("Open or in progress")), *EscalationStatus.choices],
        method="filter_status",
        label=_("Status"),
        empty_label=_("Any status"),
    )
    assignee = django_filters.ChoiceFilter(method="filter_assignee", label=_("Assigned to"), empty_label=_("Anyone"))
    category = django_filters.ChoiceFilter(choices=EscalationCategory.choices, label=_("Category"))
    rule = django_filters.ChoiceFilter(field_name="raised_by_rule", choices=Rule.choices, label=_("Rule"))
    overdue = django_filters.ChoiceFilter(choices=YES_NO, method="filter_overdue", label=_("Overdue"))
    order = django_filters.CharFilter(field_name="order__order_no", label=_("Order number"))
    mine = django_filters.ChoiceFilter(choices=YES_NO, method="filter_mine", label=_("Assigned to me"))
    response = django_filters.ChoiceFilter(choices=RESPONSES, method="filter_response", label=_("First response"))
    organisation = ModelChoiceFilter(
        field_name="raised_by_organisation",
        queryset=Organisation.objects.exclude(kind="platform"),
        to_field_name="code",
        label=_("Raised by"),
    )

    class Meta:
        model = Escalation
        fields = []

    def __init__(self, data=None, queryset=None, *, operators=None, **kwargs):
        super().__init__(data, queryset, **kwargs)
        self.filters["organisation"].queryset = Organisation.objects.filter(
            pk__in=self.queryset.values("raised_by_organisation")
        ).order_by("code")
        # The operators by name, for the platform only; read when the field is (a callable).
        self._operators = operators
        self.filters["assignee"].extra["choices"] = _Later(self.assignee_choices)

    def _viewer(self):
        user = getattr(self.request, "user", None)
        return user if user is not None and user.is_authenticated and user.pk is not None else None

    def assignee_choices(self):
        user = getattr(self.request, "user", None)
        organisation = getattr(user, "organisation", None) if user is not None and user.is_authenticated else None
        named = []
        # Operators are named to the platform only (a person, or its API key).
        if organisation is not None and organisation.is_platform:
            people = self._operators if self._operators is not None else operators_of_platform()
            named = [(str(person.pk), person.get_username()) for person in people]
        return [(ME, _("Me")), (NOBODY, _("Nobody yet")), *named]

    def filter_status(self, queryset, name, value):
        return queryset.live() if value == LIVE else queryset.filter(status=value)

    def filter_assignee(self, queryset, name, value):
        if value == NOBODY:
            return queryset.filter(assignee__isnull=True)
        if value == ME:
            viewer = self._viewer()
            return queryset.filter(assignee=viewer) if viewer is not None else queryset.none()
        return queryset.filter(assignee_id=int(value))

    def filter_response(self, queryset, name, value):
        return with_first_response(queryset).filter(response_q(value, timezone.now()))

    def filter_mine(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated or user.pk is None:
            return queryset.none() if value == "yes" else queryset
        return queryset.filter(assignee=user) if value == "yes" else queryset.exclude(assignee=user)

    def filter_overdue(self, queryset, name, value):
        late = queryset.live().filter(first_response_due_at__lt=timezone.now(), assignee__isnull=True)
        return late if value == "yes" else queryset.exclude(pk__in=late.values("pk"))
