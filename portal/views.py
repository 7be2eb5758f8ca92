import csv

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from django.views.decorators.http import require_POST

from orders import worklists
from orders.tables import OrderTable
from portal import apikeys, dashboard, exports
from portal.choices import OrganisationKind
from portal.models import ApiKey
from portal.paging import paginate


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("What the key is for"), max_length=100, help_text=gettext_lazy("e.g. “ERP production”")
    )


def _home_url(user):
    if user.kind == OrganisationKind.MERCHANT:
        return reverse("orders:list")
    if user.kind == OrganisationKind.PROVIDER:
        return reverse("orders:worklist", args=[worklists.PENDING_SIGN_IN])
    if user.kind == OrganisationKind.PLATFORM:
        return reverse("operator-home")
    if user.is_staff:
        return reverse("admin:index")
    return None


@login_required
def home(request):
    """Send each person to the page of their role."""
    target = _home_url(request.user)
    if target is None:
        raise Http404
    return redirect(target)


def _board(request):
    """The dashboard of the person's organisation (404 for anyone without one)."""
    if request.user.kind not in (OrganisationKind.PLATFORM, OrganisationKind.MERCHANT, OrganisationKind.PROVIDER):
        raise Http404
    return dashboard.Board(request.user)


def _dashboard(request):
    board = _board(request)
    charts = {slug: make(board) for slug, make in dashboard.CHARTS.items()}
    # The side the person is on needs no column of its own.
    own_side = [request.user.kind] if request.user.kind != OrganisationKind.PLATFORM else []
    table = OrderTable(board.near_deadline().for_lists().order_by("auto_confirm_at"), exclude=["select", *own_side])
    paginate(request, table)
    return render(
        request,
        "portal/dashboard.html",
        {
            "charts": [chart for slug, chart in charts.items() if slug != "providers"],
            "scorecard": charts["providers"],
            "headline": dashboard.headline(charts),
            "lookback_days": dashboard.LOOKBACK_DAYS,
            "table": table,
        },
    )


@login_required
def dashboard_page(request):
    """Where money is about to be lost, in charts, for the person's organisation:
    the platform sees everything, a merchant or a provider its own (SPEC §6.1)."""
    return _dashboard(request)


@login_required
def operator_home(request):
    """The platform's home: its dashboard."""
    if request.user.kind != OrganisationKind.PLATFORM:
        raise Http404
    return _dashboard(request)


def _csv_cell(value):
    # A cell a spreadsheet would run as a formula is written as text.
    return exports.escape(str(value))


@login_required
def dashboard_csv(request, chart):
    """One chart's numbers as CSV (UTF-8 with a BOM), headed in the person's language."""
    make = dashboard.CHARTS.get(chart)
    if make is None:
        raise Http404
    board = _board(request)
    figures = make(board)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{chart}.csv"'
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow([_csv_cell(text) for text in figures.csv_header()])
    for row in figures.csv_rows():
        writer.writerow([_csv_cell(value) for value in row])
    return response


@login_required
@require_POST
def set_language(request):
    """Save the language on the person's profile; every page follows it from then on."""
    language = request.POST.get("language", "")
    if language in dict(settings.LANGUAGES):
        request.user.language = language
        request.user.save(update_fields=["language"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("home")
    return redirect(target)


@login_required
def api_keys(request):
    """The organisation's API keys: make one (shown once), see when each was used, revoke."""
    organisation = request.user.organisation if request.user.organisation_id else None
    if organisation is None:
        raise Http404
    created = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _key, created = apikeys.issue(organisation, form.cleaned_data["name"], created_by=request.user)
        form = ApiKeyForm()
    keys = organisation.api_keys.select_related("created_by").order_by("revoked_at", "-created_at")
    # A refused name answers 400 with its reason beside the field.
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "portal/api_keys.html", {"keys": keys, "form": form, "created": created}, status=status)


@login_required
@require_POST
def revoke_api_key(request, prefix):
    """Revoke one of the organisation's keys; a key of another organisation is not there."""
    key = get_object_or_404(ApiKey.objects.filter(organisation_id=request.user.organisation_id), prefix=prefix)
    apikeys.revoke(key)
    messages.success(request, _("Key %(name)s is revoked.") % {"name": key.name})
    return redirect("api-keys")


def page_not_found(request, exception=None):
    """404: JSON under /api/ (integrations parse it), the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """500: JSON under /api/, the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "server_error", "detail": _("Something went wrong on our side.")}, status=500)
    return defaults.server_error(request)
