"""The scan station of a worklist (SPEC §6.1): one field a barcode scanner
types into; each number applies the stage's step and answers with a line."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from orders import stations
from orders.forms import ScanForm
from orders.models import Order
from orders.views.lists import provider_worklist, tabs

# The header the station's script sends: answer with the result lines only.
SCRIPT_HEADER = "scan-station"


def _choice_key(worklist):
    return f"station:{worklist.slug}:result"


@login_required
def scan_station(request, slug):
    """Show the station; a POSTed number is applied and answered with its lines
    (a fragment for the station's script, the whole page without script)."""
    worklist = provider_worklist(request, slug, need="action")
    visible = Order.objects.visible_to(request.user)
    lines, code = [], ""
    if request.method == "POST":
        form = ScanForm(request.POST, action=worklist.action)
        if form.is_valid():
            code = form.cleaned_data["code"]
            params = form.params()
            if params:
                # The person's last choice stays for the next parcel and the next visit.
                request.session[_choice_key(worklist)] = params["result"]
            lines = stations.scan(visible, worklist, request.user, code, params)
        else:
            code = request.POST.get("code", "")[:200]
            lines = [stations.Line(stations.REFUSED, " ".join(e for errs in form.errors.values() for e in errs))]
        if request.headers.get("X-Requested-With") == SCRIPT_HEADER:
            return render(request, "orders/_scan_lines.html", {"lines": lines, "code": code})
    form = ScanForm(initial={"result": request.session.get(_choice_key(worklist), "")}, action=worklist.action)
    return render(
        request,
        "orders/station.html",
        {
            "title": worklist.title,
            "current": worklist,
            "tabs": tabs(visible),
            "form": form,
            "lines": lines,
            "code": code,
        },
    )
