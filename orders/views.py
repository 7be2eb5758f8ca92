from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from orders.fees import group_fees
from orders.models import Order


@login_required
def order_detail(request, order_no):
    """Everything about one order in the user's scope: fields, timeline, split group and fees."""
    visible = Order.objects.visible_to(request.user)
    order = get_object_or_404(visible.select_related("merchant", "provider"), order_no=order_no)
    events = order.events.select_related("actor_user", "actor_organisation").order_by("seq")
    group = visible.split_group(order.trade_no, order.sku).select_related("provider").order_by("pk")
    return render(
        request,
        "orders/order_detail.html",
        {
            "order": order,
            "events": events,
            "group": group,
            "fees": group_fees(order.trade_no, order.sku),
            "own_fees": order.fees.order_by("charged_at"),
        },
    )
