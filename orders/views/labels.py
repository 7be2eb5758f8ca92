"""Printable waybill labels for the orders ticked on a worklist."""

from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from orders import labels
from orders.models import Order
from orders.views.lists import organisation_of
from portal.choices import OrganisationKind

# Those who ship parcels (providers) and the platform that helps them; a
# merchant never prints a provider's waybill and gets the out-of-scope 404.
MAY_PRINT = frozenset({OrganisationKind.PROVIDER, OrganisationKind.PLATFORM})


@login_required
def waybill_labels(request):
    """One 100 × 150 mm label per ticked order (``?select=<order_no>``, repeated)
    with an online waybill in the user's scope; the others listed with why."""
    if request.user.kind not in MAY_PRINT:
        raise Http404
    numbers, left_out = labels.ticked(request.GET.getlist("select"))
    printable, refused = labels.labels_for(Order.objects.visible_to(request.user), organisation_of(request), numbers)
    return render(
        request,
        "orders/labels.html",
        {
            "labels": printable,
            "refused": refused,
            "left_out": left_out,
            "max_labels": labels.MAX_LABELS,
            "back": _back(request),
        },
    )


def _back(request):
    """Where the back link goes: the page the labels were asked from, else the user's home page."""
    referer = request.headers.get("referer", "")
    if (
        url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}, require_https=request.is_secure())
        and urlsplit(referer).path != request.path
    ):
        return referer
    return reverse("home")
