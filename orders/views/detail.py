from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders import errors, workflow, worklists
from orders.choices import Action
from orders.fees import group_fees
from orders.filtersets import search
from orders.forecast import FORECAST_STATES, Forecaster
from orders.forms import BY_SLUG, FORMS, slug
from orders.models import Order
from orders.views.lists import organisation_of
from portal.actors import Actor
from portal.choices import EventSource, OrganisationKind
from portal.formatting import why_no_forecast
from risks.models import live_cases_of


def _worklist_of(request):
    """The worklist the person came from (``?worklist=``), for "next order"."""
    worklist = worklists.BY_SLUG.get(request.GET.get("worklist", ""))
    return worklist if worklist and request.user.kind == OrganisationKind.PROVIDER else None


def _in_worklist(url, worklist):
    return f"{url}?{urlencode({'worklist': worklist.slug})}" if worklist else url


def _detail_context(request, order, bound=None):
    """The order page: fields, timeline, split group with fees, and the forms of the actions allowed now."""
    actor = Actor.of_user(request.user)
    visible = Order.objects.visible_to(request.user)
    worklist = _worklist_of(request)
    following = worklists.next_in(visible, worklist, order) if worklist else None
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
    forecast = Forecaster.load().of(order, timezone.now()) if order.state in FORECAST_STATES else None
    return {
        "order": order,
        "forecast": forecast,
        "no_forecast": "" if forecast else why_no_forecast(order),
        "buyer": order.buyer_for(organisation_of(request)),
        "events": order.events.select_related("actor_user", "actor_organisation").order_by("seq"),
        "group": visible.split_group(order.trade_no, order.sku).order_by("pk"),
        "fees": group_fees(order.trade_no, order.sku, orders=visible),
        "forms": forms,
        "cases": live_cases_of(order),
        "may_escalate": request.user.kind in (OrganisationKind.MERCHANT, OrganisationKind.PROVIDER)
        and not order.is_terminal,
        "may_print_label": bool(order.waybill_no)
        and request.user.kind in (OrganisationKind.PROVIDER, OrganisationKind.PLATFORM),
        "worklist": worklist,
        "worklist_query": f"?{urlencode({'worklist': worklist.slug})}" if worklist else "",
        "next_url": _in_worklist(reverse("orders:detail", args=[following.order_no]), worklist) if following else "",
        "next_order": following,
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
                Actor.of_user(request.user, EventSource.WEB),
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
            return _after_step(request, order, form.action)
    order.refresh_from_db()
    response = render(request, "orders/order_detail.html", _detail_context(request, order, bound=form))
    response.status_code = 409 if form.non_field_errors() else 400
    return response


def _after_step(request, order, action):
    """Say what was done; from a worklist, go on to its next order."""
    done = _("Done: %(action)s (order %(order_no)s).") % {"action": Action(action).label, "order_no": order.order_no}
    if action == Action.PRINT_WAYBILL:
        label = reverse("orders:labels") + "?" + urlencode({"select": order.order_no})
        done = format_html('{} <a href="{}" target="_blank" rel="noopener">{}</a>', done, label, _("Print label"))
    messages.success(request, done)
    worklist = _worklist_of(request)
    if worklist is None:
        return redirect("orders:detail", order_no=order.order_no)
    following = worklists.next_in(Order.objects.visible_to(request.user), worklist, order)
    if following is None:
        messages.info(request, _("“%(worklist)s” is empty now.") % {"worklist": worklist.title})
        return redirect("orders:worklist", slug=worklist.slug)
    return redirect(_in_worklist(reverse("orders:detail", args=[following.order_no]), worklist))


@login_required
def find(request):
    """The header search box: straight to the order when one matches, else the filtered list."""
    query = request.GET.get("q", "").strip()[:64]
    matches = list(search(Order.objects.visible_to(request.user), query).values_list("order_no", flat=True)[:2])
    if query and len(matches) == 1:
        return redirect("orders:detail", order_no=matches[0])
    if not query or not matches:
        messages.info(request, _("No order in your scope matches “%(q)s”.") % {"q": query})
    # A suffix often matches several orders: the list gets the value as typed, encoded.
    return redirect(f"{reverse('orders:list')}?{urlencode({'q': query})}" if matches else reverse("home"))
