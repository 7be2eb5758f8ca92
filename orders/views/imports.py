"""The web import (SPEC §6.3): a platform operator, or a merchant for its own
orders, uploads a spreadsheet; a worker imports it (``orders.imports``) while
the page shows its progress, read from the database by any web process."""

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from orders import imports
from orders.models import ImportJob
from portal.choices import OrganisationKind
from portal.exports import FORMATS, download
from portal.models import Organisation

MAY_IMPORT = frozenset({OrganisationKind.PLATFORM, OrganisationKind.MERCHANT})
SHOWN_REFUSALS = 50
RECENT = 10


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File (CSV or Excel .xlsx)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(imports.too_big(upload.size))
        return upload


def _may_import(request):
    if request.user.kind not in MAY_IMPORT:
        raise Http404


def _jobs(request):
    return ImportJob.objects.visible_to(request.user).defer("content")


@login_required
@require_http_methods(["GET", "POST"])
def import_orders(request):
    """The upload form, what the columns are, and the organisation's recent imports."""
    _may_import(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            with transaction.atomic():
                job = imports.start(upload.read(), upload.name, user=request.user)
                imports.enqueue(job)
        except imports.FileRefused as refusal:
            form.add_error("file", str(refusal))
        else:
            return redirect("orders:import-job", pk=job.pk)
    columns = [
        {"name": name, "label": imports.label(name), "required": name in imports.REQUIRED} for name in imports.FIELDS
    ]
    return render(
        request,
        "orders/imports.html",
        {
            "form": form,
            "columns": columns,
            "jobs": _jobs(request).select_related("created_by")[:RECENT],
            "max_rows": settings.IMPORT_MAX_ROWS,
            "max_megabytes": settings.IMPORT_MAX_BYTES // (1024 * 1024),
            "own_only": request.user.kind == OrganisationKind.MERCHANT,
        },
        status=400 if form.errors else 200,
    )


@login_required
def import_job(request, pk):
    """One import: its progress (refreshed while it runs) and its refused rows."""
    _may_import(request)
    job = get_object_or_404(_jobs(request).select_related("created_by"), pk=pk)
    context = {"job": job, "refusals": job.refusals.order_by("row")[:SHOWN_REFUSALS]}
    if request.htmx:
        return render(request, "orders/_import_progress.html", context)
    return render(request, "orders/import_job.html", context)


@login_required
def refused_rows(request, pk):
    """The refused rows in the file's own format, to fix and import again."""
    _may_import(request)
    job = get_object_or_404(_jobs(request), pk=pk)
    headings, rows = imports.refused_rows(job)
    stem = _("refused-rows-%(file)s") % {"file": job.file_name.rsplit(".", 1)[0]}
    return download(stem, job.file_format, headings, rows)


@login_required
def sample(request, file_format):
    """An empty file to fill in: the column headings in the person's language and one example row."""
    _may_import(request)
    if file_format not in FORMATS:
        raise Http404
    own = request.user.organisation
    merchant = own if own.kind == OrganisationKind.MERCHANT else _first(OrganisationKind.MERCHANT)
    example = imports.example(merchant.code if merchant else "", getattr(_first(OrganisationKind.PROVIDER), "code", ""))
    return download(_("orders-to-import"), file_format, imports.headings(request.LANGUAGE_CODE), [example])


def _first(kind):
    return Organisation.objects.filter(kind=kind, is_active=True).order_by("code").first()
