import django_filters
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.filtersets import YES_NO
from orders.models import Order
from portal.filters import StyledFilterSet
from portal.models import Organisation
from risks.choices import CaseStatus, EscalationCategory, EscalationStatus, Rule, Severity
from risks.models import Escalation, RiskCase


class CaseFilterSet(StyledFilterSet):
    rule = django_filters.ChoiceFilter(choices=Rule.choices, label=_("Rule"))
    status = django_filters.ChoiceFilter(choices=CaseStatus.choices, label=_("Status"))
    severity = django_filters.ChoiceFilter(choices=Severity.choices, label=_("Severity"))
    overdue = django_filters.ChoiceFilter(choices=YES_NO, method="filter_overdue", label=_("Overdue"))
    order = django_filters.CharFilter(method="filter_order", label=_("Order number"))
    owner = django_filters.ModelChoiceFilter(
        queryset=Organisation.objects.all(), to_field_name="code", label=_("Owner")
    )

    class Meta:
        model = RiskCase
        fields = []

    def __init__(self, data=None, queryset=None, **kwargs):
        super().__init__(data, queryset, **kwargs)
        # Only owners of cases the viewer can see: the others' names are not theirs to list.
        self.filters["owner"].queryset = Organisation.objects.filter(pk__in=self.queryset.values("owner")).order_by(
            "code"
        )

    def filter_order(self, queryset, name, value):
        """Cases about an order the viewer may see: its own and its split group's."""
        user = getattr(self.request, "user", None)
        orders = Order.objects.visible_to(user) if user is not None else Order.objects.none()
        order = orders.filter(order_no=value).first()
        return queryset.about(order) if order is not None else queryset.none()

    def filter_overdue(self, queryset, name, value):
        live = queryset.live()
        if value == "yes":
            return live.filter(due_at__lt=timezone.now())
        return queryset.exclude(pk__in=live.filter(due_at__lt=timezone.now()).values("pk"))


class EscalationFilterSet(StyledFilterSet):
    status = django_filters.ChoiceFilter(choices=EscalationStatus.choices, label=_("Status"))
    category = django_filters.ChoiceFilter(choices=EscalationCategory.choices, label=_("Category"))
    rule = django_filters.ChoiceFilter(field_name="raised_by_rule", choices=Rule.choices, label=_("Rule"))
    overdue = django_filters.ChoiceFilter(choices=YES_NO, method="filter_overdue", label=_("Overdue"))
    order = django_filters.CharFilter(field_name="order__order_no", label=_("Order number"))
    mine = django_filters.ChoiceFilter(choices=YES_NO, method="filter_mine", label=_("Assigned to me"))
    organisation = django_filters.ModelChoiceFilter(
        field_name="raised_by_organisation",
        queryset=Organisation.objects.exclude(kind="platform"),
        to_field_name="code",
        label=_("Raised by"),
    )

    class Meta:
        model = Escalation
        fields = []

    def __init__(self, data=None, queryset=None, **kwargs):
        super().__init__(data, queryset, **kwargs)
        self.filters["organisation"].queryset = Organisation.objects.filter(
            pk__in=self.queryset.values("raised_by_organisation")
        ).order_by("code")

    def filter_mine(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated or user.pk is None:
            return queryset.none() if value == "yes" else queryset
        return queryset.filter(assignee=user) if value == "yes" else queryset.exclude(assignee=user)

    def filter_overdue(self, queryset, name, value):
        late = queryset.live().filter(first_response_due_at__lt=timezone.now(), assignee__isnull=True)
        return late if value == "yes" else queryset.exclude(pk__in=late.values("pk"))
