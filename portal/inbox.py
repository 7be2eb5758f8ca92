"""The in-app inbox and the notification preferences."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from portal.messages import context_for
from portal.models import Delivery, Notification, NotificationKind, NotificationPreference
from portal.notify import ALWAYS_ON, DEFAULT_DELIVERY

CHOOSABLE = [k for k in NotificationKind if k != NotificationKind.DAILY_DIGEST]


def title(notification) -> str:
    """The notification's subject line, in the reader's language."""
    with translation.override(translation.get_language()):
        return " ".join(render_to_string(f"emails/{notification.kind}.subject.txt", context_for(notification)).split())


def unread_count(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


@login_required
def inbox(request):
    """Everything the portal told this person, newest first, unread marked."""
    rows = Notification.objects.filter(recipient=request.user).select_related("recipient")
    page = Paginator(rows, 25).get_page(request.GET.get("page"))
    items = [(n, title(n)) for n in page.object_list]
    return render(request, "portal/inbox.html", {"page": page, "items": items, "unread": unread_count(request.user)})


@login_required
def inbox_count(request):
    """The bell's number, refreshed by htmx."""
    return render(request, "portal/_bell.html", {"unread": unread_count(request.user)})


@login_required
@require_POST
def mark_read(request, pk):
    """Mark one notification read and open what it is about."""
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    if notification.read_at is None:
        Notification.objects.filter(pk=pk, read_at__isnull=True).update(read_at=timezone.now())
    target = notification.link or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target if request.POST.get("open") else "inbox")


@login_required
@require_POST
def mark_all_read(request):
    done = Notification.objects.filter(recipient=request.user, read_at__isnull=True).update(read_at=timezone.now())
    messages.success(request, _("%(n)d marked read.") % {"n": done})
    return redirect("inbox")


class PreferencesForm(forms.Form):
    """One choice per kind: immediately, in the daily digest, or off."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "delivery"))
        for kind in CHOOSABLE:
            choices = [c for c in Delivery.choices if not (kind in ALWAYS_ON and c[0] == Delivery.OFF)]
            default = DEFAULT_DELIVERY[kind]
            self.fields[kind] = forms.ChoiceField(
                label=kind.label,
                choices=choices,
                initial=chosen.get(kind, default),
                widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
                help_text=NOTES.get(kind, ""),
            )


NOTES = {
    NotificationKind.CASE_OPENED: gettext_lazy(
        "By default high and critical cases are emailed at once and the others in the digest; critical cases are "
        "always emailed."
    ),
    NotificationKind.DEADLINE_AT_RISK: gettext_lazy("Money about to be lost: this cannot be switched off."),
    NotificationKind.ESCALATION_REMINDER: gettext_lazy("For platform operators; this cannot be switched off."),
}


@login_required
def preferences(request):
    form = PreferencesForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            for kind, delivery in form.cleaned_data.items():
                NotificationPreference.objects.update_or_create(
                    user=request.user, kind=kind, defaults={"delivery": delivery}
                )
        messages.success(request, _("Your notification choices are saved."))
        return redirect("notification-preferences")
    return render(request, "portal/preferences.html", {"form": form})
