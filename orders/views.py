from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from django_tables2 import LazyPaginator, RequestConfig

from orders import errors, workflow, worklists
from orders.choices import Action, EventSource
from orders.exports import csv_response
from orders.fees import group_fees
from orders.filtersets import OrderFilterSet, search
from orders.forms import BY_SLUG, FORMS, slug
from orders.models import Order
from orders.tables import OrderTable
from portal.choices import OrganisationKind

PER_PAGE_CHOICES = (10, 25, 50, 100)
BULK_LIMIT = 500


def _organisation(request):
    return request.user.organisation if request.user.organisation_id else None


def _per_page(request):
    try:
        value = int(request.GET.get("per_page", 25))
    except ValueError:
        return 25
    return value if value in PER_PAGE_CHOICES else 25


def _order_list(request, queryset, *, template, context, filename, bulk=False, omit=()):
    """Filter, sort, paginate and render (or export) an order list in the user's scope."""
    organisation = _organisation(request)
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
    if _organisation(request) is None:
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


def _detail_context(request, order, bound=None):
    """The order page: fields, timeline, split group with fees, and the forms of the actions allowed now."""
    actor = workflow.Actor.of_user(request.user)
    visible = Order.objects.visible_to(request.user)
    allowed = workflow.allowed_actions(order, actor)
    forms = []
    if bound is not None and bound.action not in allowed:
        # The refused form stays on screen with its reason, even though the
        # order has moved on and no longer offers it.
        forms.append((slug(bound.action), bound))
    for action in allowed:
        if bound is not None and bound.action == action:
            forms.append((slug(action), bound))
        else:
            forms.append((slug(action), FORMS[action](initial={"version": order.version}, prefix=slug(action))))
    return {
        "order": order,
        "buyer": order.buyer_for(_organisation(request)),
        "events": order.events.select_related("actor_user", "actor_organisation").order_by("seq"),
        "group": visible.split_group(order.trade_no, order.sku).order_by("pk"),
        "fees": group_fees(order.trade_no, order.sku),
        "forms": forms,
        "cases": order.cases.live().select_related("owner").order_by("due_at"),
        "may_escalate": request.user.kind in (OrganisationKind.MERCHANT, OrganisationKind.PROVIDER)
        and not order.is_terminal,
    }


def _visible_order(request, order_no):
    return get_object_or_404(
        Order.objects.visible_to(request.user).select_related("merchant", "provider"), order_no=order_no
    )


@login_required
def order_detail(request, order_no):
    """Everything about one order in the user's scope, and what they may do with it now."""
    order = _visible_order(request, order_no)
    return render(request, "orders/order_detail.html", _detail_context(request, order))


@login_required
@require_POST
def order_action(request, order_no, action):
    """Take one action through the workflow; a refusal is shown on the form and changes nothing."""
    order = _visible_order(request, order_no)
    if action not in BY_SLUG:
        raise Http404
    form = FORMS[BY_SLUG[action]](request.POST, prefix=action)
    if form.is_valid():
        try:
            workflow.perform(
                order,
                form.action,
                workflow.Actor.of_user(request.user, EventSource.WEB),
                expected_version=form.cleaned_data["version"],
                **form.params(),
            )
        except errors.InvalidInput as exc:
            for field, problems in exc.fields.items():
                form.add_error(field if field in form.fields else None, problems)
        except errors.NotAllowed:
            raise Http404 from None
        except errors.WorkflowError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Done: %(action)s.") % {"action": Action(form.action).label})
            return redirect("orders:detail", order_no=order.order_no)
    order.refresh_from_db()
    response = render(request, "orders/order_detail.html", _detail_context(request, order, bound=form))
    response.status_code = 409 if form.non_field_errors() else 400
    return response


@login_required
def find(request):
    """The header search box: straight to the order when one matches, else the filtered list."""
    query = request.GET.get("q", "").strip()[:64]
    matches = list(search(Order.objects.visible_to(request.user), query).values_list("order_no", flat=True)[:2])
    if query and len(matches) == 1:
        return redirect("orders:detail", order_no=matches[0])
    if not query or not matches:
        messages.info(request, _("No order in your scope matches “%(q)s”.") % {"q": query})
    return redirect(f"{reverse('orders:list')}?q={query}" if matches else reverse("home"))
