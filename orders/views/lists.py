from dataclasses import asdict
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from orders import stations, worklists
from orders.choices import Action
from orders.exports import download_orders
from orders.filtersets import OrderFilterSet
from orders.models import Order
from orders.tables import OrderTable
from portal.choices import OrganisationKind
from portal.exports import format_of
from portal.paging import PER_PAGE_CHOICES, paginate, per_page_of, sort_as_asked

BULK_LIMIT = 500
# Lists say how many orders they hold up to this many, and "more than" past it,
# so a list over a million orders never counts them all.
COUNT_LIMIT = 10_000
NUMBER_COLUMNS = ("inbound_tracking_no", "waybill_no")
BULK_RESULTS = "bulk-results"


def organisation_of(request):
    return request.user.organisation if request.user.organisation_id else None


def _filtered(request, queryset, data, omit):
    filterset = OrderFilterSet(
        data, queryset, request=request, organisation=organisation_of(request), web=True, omit=omit
    )
    return filterset, (filterset.qs if filterset.is_valid() else queryset)


def _order_list(request, queryset, *, template, context, filename_stem, worklist=None, omit=()):
    """Filter, sort, paginate and render (or export: every order matching the
    filter, ``?export=csv`` or ``xlsx``) an order list in the user's scope."""
    organisation = organisation_of(request)
    filterset, orders = _filtered(request, queryset, request.GET, omit)
    wanted = format_of(request)
    selectable = worklist is not None and (worklist.bulk or worklist.labels)
    exclude = [] if selectable else ["select"]
    exclude += [name for name in NUMBER_COLUMNS if worklist is None or name not in worklist.numbers]
    if organisation and organisation.kind in (OrganisationKind.MERCHANT, OrganisationKind.PROVIDER):
        exclude.append(organisation.kind)
    table = OrderTable(
        orders.for_lists(),
        exclude=exclude,
        worklist=worklist.slug if worklist else None,
        forecasts=worklist is None or worklist.forecast,
    )
    if wanted:
        # Every matching order, in the order the page shows them (its ``sort``).
        sort_as_asked(request, table)
        return download_orders(table.data.data, filename_stem, wanted)
    paginate(request, table, per_page_of(request))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    total = orders.order_by()[: COUNT_LIMIT + 1].count()
    context = {
        **context,
        "table": table,
        "filter": filterset,
        "query": query.urlencode(),
        "per_page_choices": PER_PAGE_CHOICES,
        "per_page": per_page_of(request),
        "current": worklist,
        "selectable": selectable,
        "total": min(total, COUNT_LIMIT),
        "total_capped": total > COUNT_LIMIT,
        "bulk_limit": BULK_LIMIT,
        "refresh_seconds": settings.LIST_REFRESH_SECONDS,
    }
    if request.htmx:
        return render(request, "orders/_results.html", context)
    return render(request, template, context)


@login_required
def order_list(request):
    """All orders the user may see: a merchant's own, a provider's assigned, the platform's all.

    Open orders first, nearest deadline first; finished ones when asked for."""
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
        filename_stem="orders",
    )


def provider_worklist(request, slug, *, need=None):
    """The worklist ``slug`` for a provider's staff (404 for anyone else, or
    when the list lacks what ``need`` names: ``action``, ``bulk``)."""
    worklist = worklists.BY_SLUG.get(slug)
    if request.user.kind != OrganisationKind.PROVIDER or worklist is None:
        raise Http404
    if need and not getattr(worklist, need):
        raise Http404
    return worklist


def tabs(visible):
    """Every worklist with its live count."""
    counts = worklists.counts(visible)
    return [(w, counts[w.slug]) for w in worklists.WORKLISTS]


@login_required
def worklist(request, slug):
    """A provider's worklist tab, with the live count of every tab."""
    current = provider_worklist(request, slug)
    visible = Order.objects.visible_to(request.user)
    return _order_list(
        request,
        visible.filter(current.condition),
        template="orders/worklist.html",
        context={
            "title": current.title,
            "tabs": tabs(visible),
            "bulk_lines": [stations.Line(**line) for line in request.session.pop(BULK_RESULTS, [])],
        },
        filename_stem=slug,
        worklist=current,
        omit=("state", "finished"),
    )


@login_required
@require_POST
def bulk_action(request, slug):
    """Take a worklist's step on the ticked orders, or on all matching its filter.

    Each order goes through the workflow on its own; the person sees one
    result per order. Printed waybills go straight to their labels."""
    current = provider_worklist(request, slug, need="bulk")
    visible = Order.objects.visible_to(request.user)
    back = reverse("orders:worklist", args=[slug])
    if request.POST.get("all_matching"):
        query = QueryDict(request.POST.get("query", ""))
        _filterset, chosen = _filtered(request, visible.filter(current.condition), query, ("state", "finished"))
        back += "?" + query.urlencode()
    else:
        chosen = visible.filter(order_no__in=request.POST.getlist("select")[:BULK_LIMIT])
    chosen = stations.at_stage(chosen, current).order_by("auto_confirm_at", "pk")[:BULK_LIMIT]
    lines = stations.apply(chosen, current, request.user)
    done = [line for line in lines if line.outcome == stations.DONE]
    if not lines:
        messages.info(request, _("No order was selected."))
    elif done:
        messages.success(
            request,
            ngettext("%(step)s: %(n)d order done.", "%(step)s: %(n)d orders done.", len(done))
            % {"step": current.label(), "n": len(done)},
        )
    if current.action == Action.PRINT_WAYBILL and done:
        for line in lines:
            if line.outcome != stations.DONE:
                messages.error(request, f"{line.order_no}: {line.message}")
        return redirect(reverse("orders:labels") + "?" + urlencode([("select", line.order_no) for line in done]))
    if len(done) < len(lines):
        messages.warning(request, _("Some orders were not changed; see why below."))
    request.session[BULK_RESULTS] = [asdict(line) for line in lines]
    return redirect(back)
