"""SPEC §5: who is told what, in which language, once per cause; delivery and the inbox."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.urls import reverse
from django.utils import timezone

from orders import workflow
from orders.choices import Action, OrderState
from orders.models import Order
from portal import delivery, digest
from portal.models import EmailStatus, Notification, NotificationKind, NotificationPreference
from risks import cases, escalations
from risks.choices import Rule
from risks.models import RiskCase
from risks.sweep import run_sweep
from tests.factories import UserFactory, advance, new_order

S = OrderState
K = NotificationKind


def told(kind):
    """Who got a notification of ``kind``: {username: email status}."""
    return dict(Notification.objects.filter(kind=kind).values_list("recipient__username", "email_status"))


@pytest.fixture
def team(personas, merchant_org, provider_org, platform):
    """A second person in the provider and one at the platform, who reads Chinese."""
    extra = {
        "provider_zh": UserFactory(username="pz", organisation=provider_org, language="zh-hans"),
        "operator2": UserFactory(username="o2", organisation=platform),
    }
    return {**personas, **extra}


def stalled_order(merchant_org, provider_org, hours=30):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=20)), S.SIGNED_IN)
    Order.objects.filter(pk=order.pk).update(state_changed_at=timezone.now() - timedelta(hours=hours))
    return order


# --- who is told -------------------------------------------------------------------------


def test_a_medium_case_goes_to_the_owners_people_in_the_digest(team, merchant_org, provider_org):
    stalled_order(merchant_org, provider_org)
    run_sweep()
    # The sweep tells each person once: a summary of the cases it found for them.
    assert told(K.CASE_OPENED_SUMMARY) == {"carol": EmailStatus.DIGEST, "pz": EmailStatus.DIGEST}
    assert not Notification.objects.filter(kind=K.CASE_OPENED).exists()


def test_a_high_case_is_emailed_at_once(team, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.INSPECTED)
    workflow.perform(
        order, Action.REPORT_BLOCKED, workflow.Actor.of_organisation(provider_org), stage="packing", reason="x"
    )
    # The blocked flow is the platform's case, escalated at once.
    assert told(K.CASE_OPENED) == {"olivia": EmailStatus.PENDING, "o2": EmailStatus.PENDING}
    assert set(told(K.ESCALATION_OPENED)) == {"olivia", "o2"}


def test_a_deadline_at_risk_reaches_merchant_and_provider_at_once(team, merchant_org, provider_org):
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep()
    assert told(K.DEADLINE_AT_RISK_SUMMARY) == {
        "alice": EmailStatus.PENDING,
        "carol": EmailStatus.PENDING,
        "pz": EmailStatus.PENDING,
    }
    assert set(told(K.CASE_OPENED_SUMMARY)) == {"olivia", "o2"}  # the platform owns the case


def test_a_person_may_change_how_a_kind_reaches_them_except_critical(team, merchant_org, provider_org):
    NotificationPreference.objects.create(user=team["provider"], kind=K.CASE_OPENED, delivery="immediately")
    NotificationPreference.objects.create(user=team["provider_zh"], kind=K.CASE_OPENED, delivery="off")
    stalled_order(merchant_org, provider_org)
    run_sweep()
    # The sweep's summary follows the choice made for single cases.
    assert told(K.CASE_OPENED_SUMMARY) == {"carol": EmailStatus.PENDING, "pz": EmailStatus.OFF}

    Notification.objects.all().delete()
    order = advance(new_order(merchant_org, provider_org), S.PACKED)
    from tests.factories import scan

    scan("YT0001112223", "picked_up", order_no=order.order_no, carrier_name="YTO")  # critical, platform-owned
    NotificationPreference.objects.create(user=team["operator"], kind=K.CASE_OPENED, delivery="off")
    run_sweep()
    assert told(K.CASE_OPENED)["olivia"] == EmailStatus.PENDING


def test_an_escalation_thread_tells_the_raisers_and_the_assignee(team, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org)
    raised = cases.escalate_order(order, workflow.Actor.of_user(team["merchant"]), "please look")
    assert set(told(K.ESCALATION_OPENED)) == {"olivia", "o2"}

    escalations.assign_to_me(raised, workflow.Actor.of_user(team["operator"]))
    assert set(told(K.ESCALATION_ASSIGNED)) == {"alice"}  # not the operator who took it

    escalations.comment(raised, workflow.Actor.of_user(team["merchant"]), "any news?")
    assert set(told(K.ESCALATION_COMMENTED)) == {"olivia"}  # the assignee, not the author
    Notification.objects.filter(kind=K.ESCALATION_COMMENTED).delete()

    escalations.comment(raised, workflow.Actor.of_user(team["operator2"]), "the ERP vendor is on it", internal=True)
    assert set(told(K.ESCALATION_COMMENTED)) == {"olivia"}  # internal: the platform only
    Notification.objects.filter(kind=K.ESCALATION_COMMENTED).delete()
    escalations.comment(raised, workflow.Actor.of_user(team["operator"]), "extended by 3 days")
    assert set(told(K.ESCALATION_COMMENTED)) == {"alice"}

    escalations.close(raised, workflow.Actor.of_user(team["operator"]), "done")
    assert set(told(K.ESCALATION_CLOSED)) == {"alice"}


def test_an_unassigned_escalation_reminds_the_operators_once_per_interval(team, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org)
    raised = cases.escalate_order(order, workflow.Actor.of_user(team["provider"]), "help")
    due = raised.first_response_due_at
    reminders = Notification.objects.filter(kind=K.ESCALATION_REMINDER_SUMMARY)
    run_sweep(due - timedelta(minutes=1))
    assert not reminders.exists()
    run_sweep(due + timedelta(minutes=1))
    run_sweep(due + timedelta(minutes=30))
    assert reminders.count() == 2  # two operators, once
    run_sweep(due + timedelta(hours=4, minutes=1))
    assert reminders.count() == 4
    escalations.assign_to_me(raised, workflow.Actor.of_user(team["operator"]))
    run_sweep(due + timedelta(hours=9))
    assert reminders.count() == 4


def test_the_same_cause_reaches_each_person_once(team, merchant_org, provider_org):
    order = stalled_order(merchant_org, provider_org)
    run_sweep()
    run_sweep()
    case = RiskCase.objects.get(rule=Rule.STALLED)
    from portal import notify

    assert Notification.objects.filter(kind=K.CASE_OPENED_SUMMARY, recipient=team["provider"]).count() == 1
    for _ in range(2):
        notify.announce(K.CASE_OPENED, case.pk, [team["provider"]], context={"case": case.pk}, link="/")
    assert Notification.objects.filter(kind=K.CASE_OPENED, recipient=team["provider"]).count() == 1
    assert order.cases.count() == 1


# --- delivery ---------------------------------------------------------------------------------


def test_emails_have_text_and_html_in_the_recipients_language(team, merchant_org, provider_org):
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20), amount="3680.00")
    run_sweep()
    assert delivery.deliver_due() == {"sent": 5, "failed": 0}
    by_person = {m.to[0].split("@")[0]: m for m in mail.outbox}
    english, chinese = by_person["alice"], by_person["pz"]
    assert english.subject == "1 order near its deadline — ¥3,680.00"
    assert "¥3,680.00" in chinese.subject
    # Words the catalogue already has show in the reader's language.
    assert "完成" in chinese.body and "完成" in chinese.alternatives[0][0]
    assert chinese.alternatives[0][1] == "text/html" and '<html lang="zh-hans">' in chinese.alternatives[0][0]
    assert '<html lang="en">' in english.alternatives[0][0]
    assert "/cases/?rule=deadline_at_risk&opened=" in english.body
    assert english.extra_headers["Message-ID"].startswith("<notification-")
    assert not Notification.objects.exclude(email_status__in=[EmailStatus.SENT, EmailStatus.DIGEST]).exists()
    assert delivery.deliver_due() == {"sent": 0, "failed": 0}


def test_a_failing_send_is_retried_with_capped_back_off_for_the_window_then_marked_failed(
    team, merchant_org, provider_org, settings, monkeypatch
):
    settings.NOTIFY_RETRY_BASE_SECONDS = 60
    settings.NOTIFY_RETRY_MAX_SECONDS = 600
    settings.NOTIFY_RETRY_WINDOW_HOURS = 24
    order = new_order(merchant_org, provider_org)
    cases.escalate_order(order, workflow.Actor.of_user(team["merchant"]), "help")
    Notification.objects.exclude(recipient=team["operator"]).delete()

    def refuse(notification, connection=None):
        raise OSError("SMTP server down")

    monkeypatch.setattr(delivery, "send", refuse)
    before = timezone.now()
    delivery.deliver_due()
    row = Notification.objects.get()
    assert row.email_status == EmailStatus.PENDING and row.attempts == 1
    assert "SMTP server down" in row.last_error
    assert before <= row.failing_since <= timezone.now()
    assert timedelta(seconds=59) < row.next_attempt_at - row.failing_since < timedelta(seconds=62)
    first_failure = row.failing_since

    # Ten more failures: the wait doubles to the cap and stays there; the window still runs from the first.
    for _ in range(10):
        Notification.objects.update(next_attempt_at=timezone.now())
        delivery.deliver_due()
    row.refresh_from_db()
    assert row.email_status == EmailStatus.PENDING and row.attempts == 11
    assert row.failing_since == first_failure
    assert timedelta(seconds=598) < row.next_attempt_at - timezone.now() <= timedelta(seconds=600)

    # 23 h 55 min into the outage the next wait (10 min) would end past 24 h: it is given up.
    Notification.objects.update(next_attempt_at=timezone.now(), failing_since=timezone.now() - timedelta(minutes=1435))
    delivery.deliver_due()
    row.refresh_from_db()
    assert row.email_status == EmailStatus.FAILED and row.next_attempt_at is None and row.attempts == 12


def test_back_off_doubles_from_the_base_up_to_the_cap(settings):
    settings.NOTIFY_RETRY_BASE_SECONDS = 60
    settings.NOTIFY_RETRY_MAX_SECONDS = 1800
    waits = [delivery.backoff(n).total_seconds() for n in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert delivery.backoff(10_000).total_seconds() == 1800  # a long outage cannot overflow


class RecordingAtClose(locmem.EmailBackend):
    """The local mail backend behaving like the SMTP one: sending on a closed
    connection opens it and closes it (QUIT) afterwards. Notes each
    notification's status at every close."""

    seen_at_close = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connected = False

    def open(self):
        if self.connected:
            return False
        self.connected = True
        return True

    def close(self):
        RecordingAtClose.seen_at_close.append(sorted(Notification.objects.values_list("email_status", flat=True)))
        self.connected = False

    def send_messages(self, messages):
        opened_here = self.open()
        try:
            return super().send_messages(messages)
        finally:
            if opened_here:
                self.close()


def test_an_email_is_marked_sent_before_the_connection_is_closed(team, merchant_org, provider_org, settings):
    settings.EMAIL_BACKEND = f"{__name__}.RecordingAtClose"
    RecordingAtClose.seen_at_close = []
    order = new_order(merchant_org, provider_org)
    cases.escalate_order(order, workflow.Actor.of_user(team["merchant"]), "help")
    count = Notification.objects.count()

    assert delivery.deliver_due() == {"sent": count, "failed": 0}
    # One connection for the batch, closed once, after every row was recorded as sent.
    assert RecordingAtClose.seen_at_close[0] == [EmailStatus.SENT] * count
    assert len(mail.outbox) == count


def test_a_row_left_sending_by_a_dead_worker_is_taken_again_after_its_lease(team, merchant_org, provider_org, settings):
    order = new_order(merchant_org, provider_org)
    cases.escalate_order(order, workflow.Actor.of_user(team["merchant"]), "help")
    claimed = delivery.claim()
    assert len(claimed) == 2 and delivery.claim() == []  # a second worker gets nothing
    later = timezone.now() + timedelta(seconds=settings.NOTIFY_LEASE_SECONDS + 1)
    assert sorted(delivery.claim(now=later)) == sorted(claimed)


def test_the_daily_digest_sums_up_and_carries_the_digest_items(team, merchant_org, provider_org):
    stalled_order(merchant_org, provider_org)
    run_sweep()
    assert digest.send_daily_digest() >= 2
    row = Notification.objects.get(kind=K.DAILY_DIGEST, recipient=team["provider"])
    assert row.context["open"] == 1 and len(row.context["items"]) == 1
    assert row.email_status == EmailStatus.PENDING
    assert not Notification.objects.filter(kind=K.CASE_OPENED, email_status=EmailStatus.DIGEST).exists()
    digest.send_daily_digest()
    assert Notification.objects.filter(kind=K.DAILY_DIGEST, recipient=team["provider"]).count() == 1
    delivery.deliver_due()
    assert any("Daily digest: 1 open cases" in m.subject for m in mail.outbox)


def test_beat_runs_delivery_every_minute_and_the_digest_at_nine(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["deliver-notifications"]["task"] == "portal.tasks.deliver_due"
    crontab = schedule["daily-digest"]["schedule"]
    assert crontab.hour == {9} and crontab.minute == {0}
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"


# --- the inbox ------------------------------------------------------------------------------------


def test_the_inbox_lists_counts_and_marks_read(client, team, merchant_org, provider_org):
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep()
    client.force_login(team["merchant"])
    assert "data-unread>1<" in client.get(reverse("inbox-count")).content.decode()
    page = client.get(reverse("inbox")).content.decode()
    assert "1 order near its deadline — ¥1,234.50" in page
    note = Notification.objects.get(recipient=team["merchant"])
    response = client.post(reverse("inbox-read", args=[note.pk]), {"open": "1"})
    assert response["Location"] == note.link
    assert "data-unread" not in client.get(reverse("inbox-count")).content.decode()


def test_mark_all_read_and_no_one_elses(client, team, merchant_org, provider_org):
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20))
    run_sweep()
    theirs = Notification.objects.filter(recipient=team["provider"]).first()
    client.force_login(team["merchant"])
    assert client.post(reverse("inbox-read", args=[theirs.pk])).status_code == 404
    client.post(reverse("inbox-read-all"))
    assert not Notification.objects.filter(recipient=team["merchant"], read_at__isnull=True).exists()
    assert Notification.objects.filter(recipient=team["provider"], read_at__isnull=True).exists()


def test_preferences_are_saved_and_money_at_risk_cannot_be_switched_off(client, team):
    client.force_login(team["provider"])
    form = client.get(reverse("notification-preferences")).context["form"]
    assert "off" not in dict(form.fields[K.DEADLINE_AT_RISK_SUMMARY].choices)
    data = dict.fromkeys(form.fields, "immediately")
    data[K.CASE_OPENED] = "off"
    client.post(reverse("notification-preferences"), data)
    assert NotificationPreference.objects.get(user=team["provider"], kind=K.CASE_OPENED).delivery == "off"
    data[K.DEADLINE_AT_RISK_SUMMARY] = "off"
    assert client.post(reverse("notification-preferences"), data).status_code == 200  # refused, shown again
    saved = NotificationPreference.objects.get(user=team["provider"], kind=K.DEADLINE_AT_RISK_SUMMARY)
    assert saved.delivery == "immediately"


def test_administrators_see_failed_emails_and_send_them_again(admin_client, team, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org)
    cases.escalate_order(order, workflow.Actor.of_user(team["merchant"]), "help")
    Notification.objects.update(
        email_status=EmailStatus.FAILED,
        attempts=30,
        failing_since=timezone.now() - timedelta(hours=25),
        last_error="SMTPRecipientsRefused: no such user",
    )
    page = admin_client.get(reverse("admin:portal_notification_changelist"), {"email_status": "failed"})
    assert "SMTPRecipientsRefused" in page.content.decode()
    ids = list(Notification.objects.values_list("pk", flat=True))
    admin_client.post(
        reverse("admin:portal_notification_changelist"), {"action": "send_again", "_selected_action": ids}
    )
    assert set(Notification.objects.values_list("email_status", flat=True)) == {EmailStatus.PENDING}
    # A fresh retry window: the outage that failed them counts no more.
    assert set(Notification.objects.values_list("attempts", "failing_since")) == {(0, None)}
    assert delivery.deliver_due()["sent"] == len(ids)


def test_a_batch_that_outlasts_its_lease_is_not_sent_twice(team, settings, monkeypatch):
    """A slow SMTP server: while the first worker is on the first message of
    its batch, the batch's lease runs out and a second worker claims the rest.
    Each message still goes out exactly once."""
    from portal import notify

    for i in range(5):
        notify.announce(K.ESCALATION_OPENED, i, [team["operator"]], context={"order_no": "O1"}, link="/")
    # the first worker claimed its batch longer ago than the lease
    first = delivery.claim()
    Notification.objects.update(claimed_at=timezone.now() - timedelta(seconds=settings.NOTIFY_LEASE_SECONDS + 1))
    real_send = delivery.send
    second = []

    def slow_send(notification, connection=None):
        if not second:
            second.extend(delivery.claim())  # meanwhile, another worker
            monkeypatch.setattr(delivery, "send", real_send)
            delivery.deliver(second)
            monkeypatch.setattr(delivery, "send", slow_send)
        real_send(notification, connection)

    monkeypatch.setattr(delivery, "send", slow_send)
    delivery.deliver(first)
    # the message in flight had its claim renewed; the other four moved over
    assert len(first) == 5 and len(second) == 4
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == len(set(message_ids)) == 5
    assert Notification.objects.filter(email_status=EmailStatus.SENT).count() == 5
