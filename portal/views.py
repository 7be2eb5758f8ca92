from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django_tables2 import LazyPaginator, RequestConfig

from orders import worklists
from orders.choices import OPEN_STATES, OrderState
from orders.models import Order
from orders.tables import OrderTable
from portal.choices import OrganisationKind

HOME_BY_KIND = {
    OrganisationKind.MERCHANT: "merchant-home",
    OrganisationKind.PROVIDER: "provider-home",
    OrganisationKind.PLATFORM: "operator-home",
}


@login_required
def home(request):
    """Send each person to the page of their role."""
    target = HOME_BY_KIND.get(request.user.kind)
    if target:
        return redirect(target)
    if request.user.is_staff:
        return redirect("admin:index")
    raise Http404


def _require_kind(request, kind):
    # A page of another role is not there for this person: 404, as for
    # anything outside their scope.
    if request.user.kind != kind:
        raise Http404


def _orders_table(request, orders):
    table = OrderTable(orders.select_related("merchant", "provider"))
    RequestConfig(request, paginate={"per_page": 25, "paginator_class": LazyPaginator}).configure(table)
    return table


def _state_counts(orders):
    rows = orders.values("state").annotate(n=Count("pk")).order_by()
    found = {row["state"]: row["n"] for row in rows}
    return [(state, found.get(state.value, 0)) for state in OrderState]


@login_required
def merchant_home(request):
    _require_kind(request, OrganisationKind.MERCHANT)
    orders = Order.objects.visible_to(request.user)
    return render(
        request,
        "portal/merchant_home.html",
        {"table": _orders_table(request, orders.open()), "state_counts": _state_counts(orders)},
    )


@login_required
def provider_home(request):
    _require_kind(request, OrganisationKind.PROVIDER)
    orders = Order.objects.visible_to(request.user)
    counts = worklists.counts(orders)
    lists = [(w, counts[w.slug]) for w in worklists.WORKLISTS]
    return render(
        request,
        "portal/provider_home.html",
        {"table": _orders_table(request, orders.open()), "worklists": lists},
    )


@login_required
def operator_home(request):
    _require_kind(request, OrganisationKind.PLATFORM)
    orders = Order.objects.visible_to(request.user)
    soon = timezone.now() + timezone.timedelta(hours=48)
    at_risk = orders.filter(Q(state__in=sorted(OPEN_STATES - {OrderState.DELIVERED})) & Q(auto_confirm_at__lte=soon))
    summary = at_risk.aggregate(n=Count("pk"), money=Sum("amount"))
    losses = orders.filter(state=OrderState.AUTO_REFUNDED).aggregate(n=Count("pk"), money=Sum("amount"))
    return render(
        request,
        "portal/operator_home.html",
        {
            "table": _orders_table(request, at_risk.order_by("auto_confirm_at")),
            "state_counts": _state_counts(orders),
            "at_risk": summary,
            "losses": losses,
        },
    )
