from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from django_tables2 import LazyPaginator, RequestConfig

from orders import errors, workflow, worklists
from orders.choices import Action, EventSource
from orders.exports import csv_response
from orders.filtersets import OrderFilterSet
from orders.models import Order
from orders.tables import OrderTable
from portal.choices import OrganisationKind

PER_PAGE_CHOICES = (10, 25, 50, 100)
BULK_LIMIT = 500


def organisation_of(request):
    return request.user.organisation if request.user.organisation_id else None


def _per_page(request):
    try:
        value = int(request.GET.get("per_page", 25))
    except ValueError:
        return 25
    return value if value in PER_PAGE_CHOICES else 25


def _order_list(request, queryset, *, template, context, filename, bulk=False, omit=()):
    """Filter, sort, paginate and render (or export) an order list in the user's scope."""
    organisation = organisation_of(request)
    filterset = OrderFilterSet(
        request.GET or None, queryset, request=request, organisation=organisation, web=True, omit=omit
    )
    orders = filterset.qs if filterset.is_bound and filterset.is_valid() else queryset
    if request.GET.get("export") == "csv":
        return csv_response(orders, filename)
    exclude = [] if bulk else ["select"]
    if organisation and organisation.kind in (OrganisationKind.MERCHANT, OrganisationKind.PROVIDER):
        exclude.append(organisation.kind)
    table = OrderTable(orders.for_lists(), exclude=exclude)
    RequestConfig(request, paginate={"per_page": _per_page(request), "paginator_class": LazyPaginator}).configure(table)
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    context = {
        **context,
        "table": table,
        "filter": filterset,
        "query": query.urlencode(),
        "per_page_choices": PER_PAGE_CHOICES,
        "per_page": _per_page(request),
        "bulk": bulk,
    }
    if request.htmx:
        return render(request, "orders/_results.html", context)
    return render(request, template, context)


@login_required
def order_list(request):
    """All orders the user may see: a merchant's own, a provider's assigned, the platform's all."""
    if organisation_of(request) is None:
        raise Http404
    orders = Order.objects.visible_to(request.user)
    titles = {
        OrganisationKind.MERCHANT: _("My orders"),
        OrganisationKind.PROVIDER: _("All assigned orders"),
        OrganisationKind.PLATFORM: _("All orders"),
    }
    return _order_list(
        request,
        orders,
        template="orders/order_list.html",
        context={"title": titles[request.user.kind]},
        filename="orders.csv",
    )


@login_required
def worklist(request, slug):
    """A provider's worklist tab, with the live count of every tab."""
    if request.user.kind != OrganisationKind.PROVIDER or slug not in worklists.BY_SLUG:
        raise Http404
    current = worklists.BY_SLUG[slug]
    visible = Order.objects.visible_to(request.user)
    counts = worklists.counts(visible)
    return _order_list(
        request,
        visible.filter(current.condition),
        template="orders/worklist.html",
        context={
            "title": current.title,
            "current": current,
            "tabs": [(w, counts[w.slug]) for w in worklists.WORKLISTS],
        },
        filename=f"{slug}.csv",
        bulk=slug == worklists.PENDING_SIGN_IN,
        omit=("state",),
    )


@login_required
@require_POST
def bulk_sign_in(request):
    """Sign in the selected parcels (or every one matching the filter) of the pending sign-in list."""
    if request.user.kind != OrganisationKind.PROVIDER:
        raise Http404
    pending = Order.objects.visible_to(request.user).filter(worklists.BY_SLUG[worklists.PENDING_SIGN_IN].condition)
    back = reverse("orders:worklist", args=[worklists.PENDING_SIGN_IN])
    if request.POST.get("all_matching"):
        from django.http import QueryDict

        query = QueryDict(request.POST.get("query", ""))
        filterset = OrderFilterSet(
            query, pending, request=request, organisation=request.user.organisation, web=True, omit=("state",)
        )
        chosen = filterset.qs if filterset.is_valid() else pending.none()
        back += "?" + query.urlencode()
    else:
        chosen = pending.filter(order_no__in=request.POST.getlist("order_no")[:BULK_LIMIT])
    actor = workflow.Actor.of_user(request.user, EventSource.WEB)
    done, refused = 0, []
    for order in chosen.order_by("auto_confirm_at", "pk")[:BULK_LIMIT]:
        try:
            workflow.perform(order, Action.SIGN_IN, actor, expected_version=None)
            done += 1
        except errors.WorkflowError as exc:
            refused.append(f"{order.order_no}: {exc.message}")
    if done:
        messages.success(request, ngettext("%(n)d order signed in.", "%(n)d orders signed in.", done) % {"n": done})
    for line in refused:
        messages.error(request, line)
    if not done and not refused:
        messages.info(request, _("No order was selected."))
    return redirect(back)
