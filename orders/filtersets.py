"""Filters shared by every order list, web and API (SPEC §6.1, §6.2)."""

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.functions import Reverse, Upper
from django.db.models.lookups import Exact, StartsWith
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from orders.choices import OrderState
from orders.inputs import msg_time_range, sane_time
from orders.models import Order, in_split_group
from portal.choices import OrganisationKind
from portal.filters import StyledFilterSet
from portal.models import Organisation
from risks.choices import GROUP_RULES, Rule
from risks.models import RiskCase

DEADLINE_WINDOWS = [
    ("overdue", _("Past the deadline")),
    ("24", _("Within 24 h")),
    ("48", _("Within 48 h")),
    ("72", _("Within 72 h")),
    ("later", _("More than 72 h away")),
]
AGES = [("12", _("Over 12 h")), ("24", _("Over 24 h")), ("48", _("Over 48 h")), ("96", _("Over 96 h"))]
YES_NO = [("yes", _("Yes")), ("no", _("No"))]


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
    merchant = django_filters.ModelChoiceFilter(
        queryset=Organisation.objects.none(), to_field_name="code", label=_("Merchant")
    )
    provider = django_filters.ModelChoiceFilter(
        queryset=Organisation.objects.none(), to_field_name="code", label=_("Provider")
    )
    trade_no = django_filters.CharFilter(label=_("Trade number"))
    deadline = django_filters.ChoiceFilter(choices=DEADLINE_WINDOWS, method="filter_deadline", label=_("Deadline"))
    deadline_before = SaneIsoDateTimeFilter(field_name="auto_confirm_at", lookup_expr="lt", label=_("Deadline before"))
    age = django_filters.ChoiceFilter(choices=AGES, method="filter_age", label=_("Time in state"))
    split = django_filters.ChoiceFilter(choices=YES_NO, method="filter_split", label=_("Split group"))
    blocked = django_filters.ChoiceFilter(choices=YES_NO, method="filter_blocked", label=_("Flow blocked"))
    risk = django_filters.ChoiceFilter(choices=Rule.choices, method="filter_risk", label=_("Open risk case"))
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

    def __init__(self, data=None, queryset=None, *, request=None, organisation=None, web=False, omit=(), **kwargs):
        super().__init__(data, queryset, request=request, **kwargs)
        for name in (*omit, *(self.API_ONLY if web else self.WEB_ONLY)):
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

    def filter_blocked(self, queryset, name, value):
        return queryset.filter(flow_blocked=value == "yes")

    def filter_split(self, queryset, name, value):
        return queryset.filter(in_split_group()) if value == "yes" else queryset.exclude(in_split_group())
