"""The in-app inbox and the notification settings."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from portal.messages import context_for
from portal.models import Delivery, Notification, NotificationKind, NotificationPreference
from portal.notify import ALWAYS_ON, DEFAULT_DELIVERY, PLATFORM_ONLY, RETIRED, chosen_delivery

K = NotificationKind
PAGE_SIZE = 25
# The kinds a person may choose how to receive, in the order the settings page lists them.
CHOOSABLE = [k for k in NotificationKind if k != K.DAILY_DIGEST and k not in RETIRED]


def title(notification) -> str:
    """The notification's subject line, in the reader's language."""
    with translation.override(translation.get_language()):
        return " ".join(render_to_string(f"emails/{notification.kind}.subject.txt", context_for(notification)).split())


def unread_count(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


class InboxFilter(forms.Form):
    """Which of a person's notifications the inbox shows: unread only, one kind."""

    unread = forms.BooleanField(label=gettext_lazy("Unread only"), required=False)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Any kind is accepted; the list offers those the person has received.
        self.fields["kind"].choices = [("", _("All kinds")), *K.choices]
        received = set(Notification.objects.filter(recipient=user).order_by().values_list("kind", flat=True).distinct())
        chosen = self.data.get("kind") if self.is_bound else None
        offered = [("", _("All kinds")), *[(k.value, k.label) for k in K if k in received or k == chosen]]
        self.fields["kind"].widget = forms.Select(
            choices=offered, attrs={"class": "form-select form-select-sm", "data-submit-on-change": ""}
        )
        self.fields["unread"].widget.attrs.update({"class": "form-check-input", "data-submit-on-change": ""})

    def apply(self, rows):
        """``rows`` narrowed to what the filter asks for (all of them when it is not valid)."""
        if not self.is_valid():
            return rows
        if self.cleaned_data["unread"]:
            rows = rows.filter(read_at__isnull=True)
        if self.cleaned_data["kind"]:
            rows = rows.filter(kind=self.cleaned_data["kind"])
        return rows

    def query(self) -> dict:
        """The filter as query parameters, for links and redirects that keep it."""
        if not self.is_valid():
            return {}
        found = {}
        if self.cleaned_data["unread"]:
            found["unread"] = "on"
        if self.cleaned_data["kind"]:
            found["kind"] = self.cleaned_data["kind"]
        return found

    @property
    def narrowed(self) -> bool:
        return bool(self.query())


def _inbox_url(query) -> str:
    return f"{reverse('inbox')}?{urlencode(query)}" if query else reverse("inbox")


@login_required
def inbox(request):
    """Everything the portal told this person, newest first, unread marked;
    filtered to unread ones and to one kind when asked."""
    mine = Notification.objects.filter(recipient=request.user).select_related("recipient")
    shown = InboxFilter(request.GET, user=request.user)
    page = Paginator(shown.apply(mine), PAGE_SIZE).get_page(request.GET.get("page"))
    items = [(n, title(n)) for n in page.object_list]
    unread = unread_count(request.user)
    # The unread ones among those shown, for the button that marks them read.
    unread_here = shown.apply(mine).filter(read_at__isnull=True).count() if shown.narrowed and unread else unread
    return render(
        request,
        "portal/inbox.html",
        {
            "page": page,
            "items": items,
            "unread": unread,
            "unread_here": unread_here,
            "filter": shown,
            "query": urlencode(shown.query()),
        },
    )


@login_required
def inbox_count(request):
    """The bell's number, refreshed by htmx."""
    return render(request, "portal/_bell.html", {"unread": unread_count(request.user)})


@login_required
@require_POST
def mark_read(request, pk):
    """Mark one notification read and open what it is about, or go back to the inbox as it was filtered."""
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    if notification.read_at is None:
        Notification.objects.filter(pk=pk, read_at__isnull=True).update(read_at=timezone.now())
    if not request.POST.get("open"):
        return redirect(_inbox_url(InboxFilter(request.POST, user=request.user).query()))
    target = notification.link or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


@login_required
@require_POST
def mark_all_read(request):
    """Mark read every unread notification the inbox shows: all of them, or those its filter keeps."""
    shown = InboxFilter(request.POST, user=request.user)
    unread = Notification.objects.filter(recipient=request.user, read_at__isnull=True)
    done = shown.apply(unread).update(read_at=timezone.now())
    messages.success(request, _("%(n)d marked read.") % {"n": done})
    return redirect(_inbox_url(shown.query()))


# What each kind is, when it comes, and why some cannot be switched off.
NOTES = {
    K.CASE_OPENED: gettext_lazy(
        "A step on an order opened a risk case for your organisation, such as a blocked flow reported or a parcel "
        "shipped offline. By default high and critical cases are emailed at once, the others in the daily digest."
    ),
    K.CASE_OPENED_SUMMARY: gettext_lazy(
        "One message per sweep with the new risk cases it found for your organisation. By default emailed at once "
        "when one of them is high or critical, otherwise in the daily digest."
    ),
    K.DEADLINE_AT_RISK_SUMMARY: gettext_lazy(
        "One message per sweep with the orders that are refunded automatically unless they are delivered in time."
    ),
    K.ESCALATION_OPENED: gettext_lazy("A merchant or provider asks the platform to step in on an order."),
    K.ESCALATION_OPENED_SUMMARY: gettext_lazy(
        "One message per sweep with the cases it sent to the platform: blocked flows, offline shipments, overdue cases."
    ),
    K.ESCALATION_ASSIGNED: gettext_lazy("An operator took an escalation your organisation raised."),
    K.ESCALATION_COMMENTED: gettext_lazy("Someone commented on an escalation your organisation raised or you handle."),
    K.ESCALATION_CLOSED: gettext_lazy(
        "An escalation your organisation raised, or you handle, was resolved or rejected."
    ),
    K.ESCALATION_REMINDER_SUMMARY: gettext_lazy(
        "One message per sweep when escalations are past their first-response time with no one on them."
    ),
}
# Why a kind cannot be switched off, or when it is emailed whatever the choice.
ALWAYS_ON_REASONS = {
    K.CASE_OPENED: gettext_lazy("A critical case is always emailed at once."),
    K.CASE_OPENED_SUMMARY: gettext_lazy("A summary with a critical case is always emailed at once."),
    K.DEADLINE_AT_RISK_SUMMARY: gettext_lazy(
        "Cannot be switched off: money is about to be lost, and only a step in time saves it."
    ),
    K.ESCALATION_REMINDER_SUMMARY: gettext_lazy(
        "Cannot be switched off: an escalation nobody takes leaves a merchant or provider waiting."
    ),
}


def choosable_for(user) -> list:
    """The kinds ``user`` may receive and choose for: escalations to take are the platform's."""
    platform = user.organisation_id is not None and user.organisation.is_platform
    return [k for k in CHOOSABLE if platform or k not in PLATFORM_ONLY]


class PreferencesForm(forms.Form):
    """One choice per kind: immediately, in the daily digest, or off (not for the kinds always on)."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "delivery"))
        for kind in choosable_for(user):
            choices = [c for c in Delivery.choices if not (kind in ALWAYS_ON and c[0] == Delivery.OFF)]
            self.fields[kind] = forms.ChoiceField(
                label=kind.label,
                choices=choices,
                initial=chosen_delivery(chosen, kind) or DEFAULT_DELIVERY[kind],
                widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
                help_text=NOTES.get(kind, ""),
            )

    def rows(self):
        """Each kind's field with what the page says about it: why it cannot be
        switched off, or when it is emailed whatever the choice."""
        return [(self[kind], ALWAYS_ON_REASONS.get(kind, "")) for kind in self.fields]


@login_required
def preferences(request):
    """Notification settings: how each kind reaches this person by email."""
    form = PreferencesForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            for kind, delivery in form.cleaned_data.items():
                NotificationPreference.objects.update_or_create(
                    user=request.user, kind=kind, defaults={"delivery": delivery}
                )
        messages.success(request, _("Your notification settings are saved."))
        return redirect("notification-preferences")
    return render(request, "portal/preferences.html", {"form": form})
