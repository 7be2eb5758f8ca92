from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders import errors, workflow
from orders.choices import Action, EventSource
from orders.fees import group_fees
from orders.filtersets import search
from orders.forms import BY_SLUG, FORMS, slug
from orders.models import Order
from orders.views.lists import organisation_of
from portal.choices import OrganisationKind


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
        "buyer": order.buyer_for(organisation_of(request)),
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
