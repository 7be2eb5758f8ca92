"""Filters shared by every order list, web and API (SPEC §6.1, §6.2)."""

from datetime import datetime, time, timedelta
from itertools import pairwise

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.functions import Reverse, Upper
from django.db.models.lookups import Exact, StartsWith
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from orders.choices import DEADLINE_AT_RISK_HOURS, DEADLINE_NEAR_HOURS, OPEN_STATES, TERMINAL_STATES, OrderState
from orders.fees import extra_charges
from orders.inputs import msg_time_range, sane_time
from orders.models import OPEN_ORDERS, Order, in_split_group, over_sla_q
from portal.choices import OrganisationKind
from portal.filters import ModelChoiceFilter, StyledFilterSet
from portal.models import Organisation
from risks.choices import GROUP_RULES, Rule
from risks.models import RiskCase, RiskSettings

DEADLINE_WINDOWS = [
    ("overdue", _("Past the deadline")),
    ("24", _("Within 24 h")),
    ("48", _("Within 48 h")),
    ("72", _("Within 72 h")),
    ("later", _("More than 72 h away")),
]
AGES = [("12", _("Over 12 h")), ("24", _("Over 24 h")), ("48", _("Over 48 h")), ("96", _("Over 96 h"))]
YES_NO = [("yes", _("Yes")), ("no", _("No"))]

# Orders whose money is at risk: open and not yet delivered to the buyer (the
# deadline refunds them), banded by the hours left to their deadline. The
# edges are hours from now; the last two are the deadline windows the lists
# highlight (``orders.choices``).
AT_RISK_STATES = sorted(OPEN_STATES - {OrderState.DELIVERED})
# The same as a condition, said as the open orders' indexes say it.
AT_RISK_Q = OPEN_ORDERS & ~Q(state=OrderState.DELIVERED)
AT_RISK_EDGES = (0, 12, 24, DEADLINE_AT_RISK_HOURS, DEADLINE_NEAR_HOURS)


def _band_label(after, until):
    if after is None:
        return _("deadline passed")
    if until is None:
        return _("more than %(after)d h") % {"after": after}
    if after == 0:
        return _("%(until)d h or less") % {"until": until}
    return _("%(after)d–%(until)d h") % {"after": after, "until": until}


# (code, label, more than hours, at most hours): past, then each span between edges, then the rest.
AT_RISK_BANDS = [
    (code, lazy(_band_label, str)(after, until), after, until)
    for code, after, until in [
        ("past", None, 0),
        *((str(until), after, until) for after, until in pairwise(AT_RISK_EDGES)),
        ("later", AT_RISK_EDGES[-1], None),
    ]
]
# How far back the screens look at what already happened (losses, answered escalations).
LOOKBACK_DAYS = 30


def deadline_band_q(band: str, now) -> Q:
    """Orders whose deadline falls in ``band`` (a code of ``AT_RISK_BANDS``), whatever their state."""
    _code, _label, after, until = next(b for b in AT_RISK_BANDS if b[0] == band)
    condition = Q()
    if after is not None:
        condition &= Q(auto_confirm_at__gt=now + timedelta(hours=after))
    if until is not None:
        condition &= Q(auto_confirm_at__lte=now + timedelta(hours=until))
    return condition


def at_risk_q(band: str, now) -> Q:
    """Open orders not yet delivered whose deadline falls in ``band`` (a code of ``AT_RISK_BANDS``)."""
    return AT_RISK_Q & deadline_band_q(band, now)


def day_start(day):
    """The first moment of ``day`` (a date) in the portal's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def lookback_start(now=None, days=LOOKBACK_DAYS):
    """The first moment of the day ``days - 1`` days before today (local
    time): the last ``days`` days, today included."""
    today = timezone.localdate(now or timezone.now())
    return day_start(today - timedelta(days=days - 1))


class SaneIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time within 2000–2100 and a real-world offset, in UTC."""

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return value
        try:
            return sane_time(value)
        except ValueError:
            raise forms.ValidationError(msg_time_range) from None


class SaneIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = SaneIsoDateTimeField


# The numbers a person types or scans to find an order. Each has a
# PostgreSQL index on reverse(upper(column)) (orders/migrations/0003), so a
# suffix is a prefix of the reversed number: one range scan per column.
SEARCHED_NUMBERS = ("order_no", "trade_no", "inbound_tracking_no", "waybill_no")
# Shorter tails than this match too many orders to be worth a suffix search.
SUFFIX_MIN_LENGTH = 4


def _reversed_upper(expression):
    # The value goes through the same upper() as the column, so the two fold
    # case alike on every backend (SQLite's upper() knows only ASCII). The
    # planner folds it to a constant, which the index needs for a LIKE prefix.
    return Reverse(Upper(expression))


def search(queryset, value):
    """Orders whose order, trade, inbound tracking or waybill number ends in
    ``value``, ignoring case and surrounding spaces.

    A value of at least ``SUFFIX_MIN_LENGTH`` characters matches the end of a
    number (``0032`` finds ``SF0000000032``); a shorter one only a whole
    number. An empty value leaves the queryset as it is.
    """
    value = value.strip()
    if not value:
        return queryset
    if len(value) < SUFFIX_MIN_LENGTH:
        return exact(queryset, value)
    key = _reversed_upper(Value(value))
    # startswith escapes % and _ in the value; on PostgreSQL it becomes
    # reverse(upper(col))::text LIKE 'key%', a range scan of the column's index.
    return queryset.filter(_any_number(lambda column: StartsWith(_reversed_upper(column), key)))


def exact(queryset, value):
    """Orders with a number equal to ``value``, ignoring case and surrounding
    spaces (a scanned barcode). Uses the same indexes as ``search``."""
    value = value.strip()
    if not value:
        return queryset.none()
    key = _reversed_upper(Value(value))
    return queryset.filter(_any_number(lambda column: Exact(_reversed_upper(column), key)))


def _any_number(condition):
    q = Q()
    for column in SEARCHED_NUMBERS:
        q |= Q(condition(column))
    return q


class OrderFilterSet(StyledFilterSet):
    q = django_filters.CharFilter(method="filter_q", label=_("Order, trade, tracking or waybill number"))
    state = django_filters.MultipleChoiceFilter(
        choices=OrderState.choices, label=_("State"), widget=forms.SelectMultiple(attrs={"size": 2})
    )
    merchant = ModelChoiceFilter(queryset=Organisation.objects.none(), to_field_name="code", label=_("Merchant"))
    provider = ModelChoiceFilter(queryset=Organisation.objects.none(), to_field_name="code", label=_("Provider"))
    trade_no = django_filters.CharFilter(label=_("Trade number"))
    deadline = django_filters.ChoiceFilter(choices=DEADLINE_WINDOWS, method="filter_deadline", label=_("Deadline"))
    deadline_before = SaneIsoDateTimeFilter(field_name="auto_confirm_at", lookup_expr="lt", label=_("Deadline before"))
    age = django_filters.ChoiceFilter(choices=AGES, method="filter_age", label=_("Time in state"))
    split = django_filters.ChoiceFilter(choices=YES_NO, method="filter_split", label=_("Split group"))
    blocked = django_filters.ChoiceFilter(choices=YES_NO, method="filter_blocked", label=_("Flow blocked"))
    risk = django_filters.ChoiceFilter(choices=Rule.choices, method="filter_risk", label=_("Open risk case"))
    at_risk = django_filters.ChoiceFilter(
        choices=[(code, label) for code, label, *_ in AT_RISK_BANDS],
        method="filter_at_risk",
        label=_("Not yet delivered, deadline in"),
    )
    over_sla = django_filters.ChoiceFilter(choices=YES_NO, method="filter_over_sla", label=_("Over the state's SLA"))
    ended_from = django_filters.DateFilter(method="filter_ended_from", label=_("Finished on or after"))
    ended_to = django_filters.DateFilter(method="filter_ended_to", label=_("Finished on or before"))
    duplicate_fee_on = django_filters.DateFilter(method="filter_duplicate_fee_on", label=_("Duplicate fee charged on"))
    finished = django_filters.BooleanFilter(
        method="filter_finished",
        label=_("Include finished orders"),
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    class Meta:
        model = Order
        fields = []

    # Filters the API offers that the web form leaves out (the search box covers them).
    API_ONLY = ("trade_no", "deadline_before")
    # Filters of the web lists only: the API lists every order in scope.
    WEB_ONLY = ("finished",)
    # Filters the dashboard's charts link to: the web form shows them only
    # when a link (or the person) set them, so the form stays short.
    LINKED = ("at_risk", "over_sla", "ended_from", "ended_to", "duplicate_fee_on")

    def __init__(self, data=None, queryset=None, *, request=None, organisation=None, web=False, omit=(), **kwargs):
        super().__init__(data, queryset, request=request, **kwargs)
        self.organisation = organisation
        for name in (*omit, *(self.API_ONLY if web else self.WEB_ONLY)):
            self.filters.pop(name, None)
        if web:
            for name in self.LINKED:
                if not (data or {}).get(name):
                    self.filters.pop(name, None)
        # Choices come only from organisations the viewer may see, and a
        # filter on the viewer's own side is pointless.
        kind = organisation.kind if organisation else None
        for name, org_kind in (("merchant", OrganisationKind.MERCHANT), ("provider", OrganisationKind.PROVIDER)):
            if kind == org_kind:
                del self.filters[name]
                continue
            choices = Organisation.objects.filter(kind=org_kind).order_by("code")
            if kind in (OrganisationKind.MERCHANT, OrganisationKind.PROVIDER):
                side = "provider" if kind == OrganisationKind.PROVIDER else "merchant"
                related = "merchant" if side == "provider" else "provider"
                choices = choices.filter(Exists(Order.objects.filter(**{side: organisation, related: OuterRef("pk")})))
            elif kind != OrganisationKind.PLATFORM:
                choices = choices.none()
            self.filters[name].queryset = choices

    @classmethod
    def names_a_filter(cls, data) -> bool:
        """Whether ``data`` (an API request's query) names a filter the API
        offers. One it does not name filters nothing there, so a query that
        names none is the scope's orders as they are."""
        return any(name in data for name in cls.base_filters if name not in cls.WEB_ONLY)

    def filter_queryset(self, queryset):
        """Lists start with the work: finished orders only when the person
        asks for them, or filters on a state."""
        queryset = super().filter_queryset(queryset)
        chosen = self.form.cleaned_data
        if "finished" in self.filters and not chosen.get("finished") and not chosen.get("state"):
            queryset = queryset.open()
        return queryset

    def filter_finished(self, queryset, name, value):
        return queryset  # read by filter_queryset

    def filter_q(self, queryset, name, value):
        return search(queryset, value)

    def filter_deadline(self, queryset, name, value):
        now = timezone.now()
        if value == "overdue":
            return queryset.filter(auto_confirm_at__lte=now)
        if value == "later":
            return queryset.filter(auto_confirm_at__gt=now + timedelta(hours=72))
        return queryset.filter(auto_confirm_at__gt=now, auto_confirm_at__lte=now + timedelta(hours=int(value)))

    def filter_age(self, queryset, name, value):
        return queryset.filter(state_changed_at__lte=timezone.now() - timedelta(hours=int(value)))

    def filter_risk(self, queryset, name, value):
        # A split group's case is about each order of the group.
        cases = RiskCase.objects.live().filter(rule=value)
        own = cases.filter(order=OuterRef("pk"))
        group = cases.filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku"))
        return queryset.filter(Exists(own) | Exists(group.filter(rule__in=GROUP_RULES)))

    def filter_at_risk(self, queryset, name, value):
        return queryset.filter(at_risk_q(value, timezone.now()))

    def filter_over_sla(self, queryset, name, value):
        late = over_sla_q(RiskSettings.current().sla(), timezone.now())
        return queryset.filter(late) if value == "yes" else queryset.exclude(late)

    def filter_ended_from(self, queryset, name, value):
        return queryset.filter(state__in=sorted(TERMINAL_STATES), state_changed_at__gte=day_start(value))

    def filter_ended_to(self, queryset, name, value):
        end = day_start(value + timedelta(days=1))
        return queryset.filter(state__in=sorted(TERMINAL_STATES), state_changed_at__lt=end)

    def filter_duplicate_fee_on(self, queryset, name, value):
        """Orders charged a fee that day beyond what correct handling would have
        charged (``orders.fees.extra_charges``, in the viewer's scope)."""
        platform = self.organisation is None or self.organisation.is_platform
        since = day_start(value)
        extra = extra_charges(None if platform else self.queryset, since=since).filter(
            charged_at__lt=day_start(value + timedelta(days=1))
        )
        return queryset.filter(pk__in=extra.values("order_id"))

    def filter_blocked(self, queryset, name, value):
        return queryset.filter(flow_blocked=value == "yes")

    def filter_split(self, queryset, name, value):
        return queryset.filter(in_split_group()) if value == "yes" else queryset.exclude(in_split_group())
