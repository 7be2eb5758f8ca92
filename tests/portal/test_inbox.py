"""The inbox filters (unread, kind) and marks read what it shows; the bell is
an icon with a live count; each page has one name; every page has the icon
of the portal."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import notify
from portal.models import Notification, NotificationKind
from risks.sweep import run_sweep
from tests.factories import new_order

K = NotificationKind


@pytest.fixture
def mixed(personas):
    """Five notifications for the merchant: three single cases (one read), two comments (one read)."""
    alice = personas["merchant"]
    for i in range(3):
        notify.announce(
            K.CASE_OPENED,
            f"c{i}",
            [alice],
            context={"rule": "stalled", "severity": "medium", "order_no": f"O-{i}", "money": "10.00"},
            link="/cases/",
        )
    for i in range(2):
        notify.announce(
            K.ESCALATION_COMMENTED,
            f"e{i}",
            [alice],
            context={"escalation": i, "order_no": f"E-{i}", "author": "olivia", "body": "hi"},
            link="/escalations/",
        )
    now = timezone.now()
    Notification.objects.filter(key__in=[f"{K.CASE_OPENED}:c0", f"{K.ESCALATION_COMMENTED}:e0"]).update(read_at=now)
    # Someone else's, never shown nor marked.
    notify.announce(K.CASE_OPENED, "other", [personas["provider"]], context={"rule": "stalled"}, link="/")
    return alice


def shown(response):
    return [n.key for n, _title in response.context["items"]]


def test_the_inbox_filters_to_unread_ones(client, mixed):
    client.force_login(mixed)
    response = client.get(reverse("inbox"), {"unread": "on"})
    assert sorted(shown(response)) == sorted(
        [f"{K.CASE_OPENED}:c1", f"{K.CASE_OPENED}:c2", f"{K.ESCALATION_COMMENTED}:e1"]
    )


def test_the_inbox_filters_by_kind_and_offers_the_kinds_in_words(client, mixed):
    client.force_login(mixed)
    response = client.get(reverse("inbox"), {"kind": K.ESCALATION_COMMENTED})
    assert sorted(shown(response)) == [f"{K.ESCALATION_COMMENTED}:e0", f"{K.ESCALATION_COMMENTED}:e1"]
    page = response.content.decode()
    select = re.search(r'<select name="kind".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    # The kinds this person has received, in words; codes stay in the values.
    assert options == [
        ("", "All kinds"),
        (K.CASE_OPENED, "Risk case opened"),
        (K.ESCALATION_COMMENTED, "Comment on an escalation"),
    ]
    both = client.get(reverse("inbox"), {"kind": K.CASE_OPENED, "unread": "on"})
    assert sorted(shown(both)) == [f"{K.CASE_OPENED}:c1", f"{K.CASE_OPENED}:c2"]


def test_an_unknown_kind_shows_everything_rather_than_failing(client, mixed):
    client.force_login(mixed)
    response = client.get(reverse("inbox"), {"kind": "no_such_kind", "page": "x"})
    assert response.status_code == 200 and len(shown(response)) == 5


def test_mark_all_read_marks_only_what_the_filter_shows(client, mixed, personas):
    client.force_login(mixed)
    response = client.post(reverse("inbox-read-all"), {"kind": K.CASE_OPENED, "unread": "on"})
    assert response["Location"] == f"{reverse('inbox')}?unread=on&kind={K.CASE_OPENED}"
    unread = set(Notification.objects.filter(read_at__isnull=True).values_list("recipient__username", "key"))
    assert unread == {("alice", f"{K.ESCALATION_COMMENTED}:e1"), ("carol", f"{K.CASE_OPENED}:other")}
    client.post(reverse("inbox-read-all"))
    assert not Notification.objects.filter(recipient=mixed, read_at__isnull=True).exists()
    assert Notification.objects.filter(recipient=personas["provider"], read_at__isnull=True).exists()


def test_the_mark_all_button_says_how_many_of_the_shown_it_marks(client, mixed):
    client.force_login(mixed)
    page = client.get(reverse("inbox"), {"kind": K.CASE_OPENED}).content.decode()
    assert "Mark all 2 shown read" in page
    page = client.get(reverse("inbox")).content.decode()
    assert "Mark all read" in page and "3 unread" in page


def test_marking_one_read_goes_back_to_the_inbox_as_it_was_filtered(client, mixed):
    client.force_login(mixed)
    note = Notification.objects.get(key=f"{K.CASE_OPENED}:c1")
    response = client.post(reverse("inbox-read", args=[note.pk]), {"unread": "on", "kind": K.CASE_OPENED})
    assert response["Location"] == f"{reverse('inbox')}?unread=on&kind={K.CASE_OPENED}"
    note.refresh_from_db()
    assert note.read_at is not None


def test_pages_of_a_filtered_inbox_keep_the_filter(client, personas):
    alice = personas["merchant"]
    for i in range(30):
        notify.announce(K.CASE_OPENED, f"p{i}", [alice], context={"rule": "stalled", "order_no": f"O{i}"}, link="/")
    client.force_login(alice)
    page = client.get(reverse("inbox"), {"unread": "on"}).content.decode()
    assert "?unread=on&amp;page=2" in page and "Page 1 of 2" in page


def test_the_bell_is_an_svg_icon_named_inbox_with_the_unread_count(client, mixed):
    client.force_login(mixed)
    bell = client.get(reverse("inbox-count")).content.decode()
    assert re.search(r'<a [^>]*id="bell"[^>]*aria-label="Inbox"', bell)
    assert "<svg" in bell and 'aria-hidden="true"' in bell and "🔔" not in bell
    assert "style=" not in bell  # allowed by the Content-Security-Policy
    assert re.search(r"data-unread>3<", bell)
    client.post(reverse("inbox-read-all"))
    assert "data-unread" not in client.get(reverse("inbox-count")).content.decode()
    # Every page carries the bell, refreshed as soon as it loads.
    page = client.get(reverse("risks:cases")).content.decode()
    assert 'id="bell"' in page and "<svg" in page and 'hx-trigger="load, every 30s"' in page


def test_each_page_has_one_name(client, personas):
    client.force_login(personas["merchant"])
    inbox = client.get(reverse("inbox")).content.decode()
    assert "<title>Inbox ·" in inbox and '<h1 class="h4 mb-0">Inbox</h1>' in inbox
    settings_page = client.get(reverse("notification-preferences")).content.decode()
    assert "<title>Notification settings ·" in settings_page and ">Notification settings</h1>" in settings_page
    nav = re.search(r'<ul class="navbar-nav.*?</ul>', inbox, re.S).group(0)
    link = re.search(r'<a class="nav-link" href="/settings/notifications/">([^<]*)</a>', nav)
    assert link.group(1) == "Notification settings"
    assert ">Notifications<" not in inbox + settings_page


def test_the_settings_offer_each_kind_in_words_and_say_why_some_stay_on(client, personas):
    client.force_login(personas["merchant"])
    response = client.get(reverse("notification-preferences"))
    form = response.context["form"]
    assert set(form.fields) == {
        K.CASE_OPENED,
        K.CASE_OPENED_SUMMARY,
        K.DEADLINE_AT_RISK_SUMMARY,
        K.ESCALATION_ASSIGNED,
        K.ESCALATION_COMMENTED,
        K.ESCALATION_CLOSED,
    }
    page = response.content.decode()
    assert "Risk cases found by the sweep" in page and "One message per sweep" in page
    assert "Cannot be switched off: money is about to be lost" in page
    assert "off" not in dict(form.fields[K.DEADLINE_AT_RISK_SUMMARY].choices)
    assert "deadline_at_risk_summary</" not in page  # codes stay in names and values
    client.force_login(personas["operator"])
    operator_form = client.get(reverse("notification-preferences")).context["form"]
    platform_only = {K.ESCALATION_OPENED, K.ESCALATION_OPENED_SUMMARY, K.ESCALATION_REMINDER_SUMMARY}
    assert platform_only <= set(operator_form.fields)
    assert "off" not in dict(operator_form.fields[K.ESCALATION_REMINDER_SUMMARY].choices)


def test_a_choice_made_for_a_summary_is_saved_and_shown_again(client, personas):
    client.force_login(personas["merchant"])
    form = client.get(reverse("notification-preferences")).context["form"]
    data = {name: field.initial for name, field in form.fields.items()}
    assert data[K.CASE_OPENED_SUMMARY] == "digest"
    data[K.CASE_OPENED_SUMMARY] = "off"
    assert client.post(reverse("notification-preferences"), data).status_code == 302
    again = client.get(reverse("notification-preferences")).context["form"]
    assert again.fields[K.CASE_OPENED_SUMMARY].initial == "off"


FAVICON = '<link rel="icon" href="/static/portal/favicon.svg" type="image/svg+xml">'


def test_every_page_links_the_icon_and_it_is_served(client, personas, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep()
    assert FAVICON in client.get(reverse("login")).content.decode()
    pages = {
        "merchant": ["home", "inbox", "notification-preferences", "risks:cases", "risks:escalations", "api-keys"],
        "operator": ["orders:list", "inbox", "risks:cases"],
    }
    for persona, names in pages.items():
        client.force_login(personas[persona])
        for name in names:
            response = client.get(reverse(name), follow=True)
            assert response.status_code == 200, name
            assert FAVICON in response.content.decode(), name
    client.force_login(personas["merchant"])
    assert FAVICON in client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    icon = client.get("/static/portal/favicon.svg")
    assert icon.status_code == 200 and icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])
