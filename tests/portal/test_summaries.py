"""A sweep tells each person once per kind: one summary of everything it
found for them, linking to the list of exactly those, instead of one
notification per case."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db.models import Count
from django.utils import timezone, translation
from django.utils.translation import gettext

from orders import workflow
from orders.choices import Action, OrderState
from orders.models import Order
from portal import delivery, digest, notify
from portal.models import EmailStatus, Notification, NotificationKind, NotificationPreference
from risks import cases
from risks.choices import Rule
from risks.models import RiskCase
from risks.sweep import run_sweep
from tests.factories import UserFactory, advance, new_order

S = OrderState
K = NotificationKind
AT_RISK = 500


def orders_near_their_deadline(merchants, provider, total, now):
    """``total`` fresh orders due in 20 hours, shared out between ``merchants``,
    amounts 100.00, 101.00, …; written directly, as the sweep only reads them."""
    Order.objects.bulk_create(
        Order(
            order_no=f"NEAR-{i:05d}",
            trade_no=f"TN-{i:05d}",
            merchant=merchants[i % len(merchants)],
            provider=provider,
            sku="S",
            item_title="item",
            amount=Decimal(100 + i),
            paid_at=now - timedelta(hours=1),
            auto_confirm_at=now + timedelta(hours=20),
            state=S.AWAITING_SHIPMENT,
            state_changed_at=now - timedelta(hours=1),
        )
        for i in range(total)
    )


def money_of(merchant_index, merchants):
    return sum(Decimal(100 + i) for i in range(AT_RISK) if i % merchants == merchant_index)


def items(user):
    """{kind: how many notifications of it} for ``user``."""
    rows = Notification.objects.filter(recipient=user).values("kind").annotate(n=Count("pk"))
    return {row["kind"]: row["n"] for row in rows}


@pytest.fixture
def swept(personas, merchant_org, merchant2_org, provider_org, platform):
    now = timezone.now()
    orders_near_their_deadline([merchant_org, merchant2_org], provider_org, AT_RISK, now)
    summary = run_sweep(now)
    assert summary.opened == {Rule.DEADLINE_AT_RISK: AT_RISK}
    return now


def test_a_sweep_over_500_orders_at_risk_gives_each_person_one_summary_per_kind(personas, swept):
    assert items(personas["merchant"]) == {K.DEADLINE_AT_RISK_SUMMARY: 1}
    assert items(personas["merchant2"]) == {K.DEADLINE_AT_RISK_SUMMARY: 1}
    assert items(personas["provider"]) == {K.DEADLINE_AT_RISK_SUMMARY: 1}
    # The platform owns deadline cases: its operators hear of the cases, not the deadlines.
    assert items(personas["operator"]) == {K.CASE_OPENED_SUMMARY: 1}
    assert items(personas["provider2"]) == {} and items(personas["outsider"]) == {}
    assert Notification.objects.count() == 4


def test_each_summary_carries_its_count_and_money(personas, swept):
    alice = Notification.objects.get(recipient=personas["merchant"])
    bob = Notification.objects.get(recipient=personas["merchant2"])
    carol = Notification.objects.get(recipient=personas["provider"])
    olivia = Notification.objects.get(recipient=personas["operator"])
    assert (alice.context["count"], Decimal(alice.context["money"])) == (250, money_of(0, 2))
    assert (bob.context["count"], Decimal(bob.context["money"])) == (250, money_of(1, 2))
    assert (carol.context["count"], Decimal(carol.context["money"])) == (AT_RISK, money_of(0, 2) + money_of(1, 2))
    assert olivia.context["count"] == AT_RISK
    assert olivia.context["topics"] == [[Rule.DEADLINE_AT_RISK, AT_RISK]]
    assert olivia.context["severities"] == {"high": AT_RISK}
    # A deadline at risk is money about to be lost: at once, for everyone.
    assert {alice.email_status, bob.email_status, carol.email_status, olivia.email_status} == {EmailStatus.PENDING}


def test_the_inbox_titles_say_how_many_and_how_much(client, personas, swept):
    client.force_login(personas["merchant"])
    page = client.get("/inbox/").content.decode()
    assert f"250 orders near their deadline — ¥{money_of(0, 2):,.2f}" in page
    client.force_login(personas["operator"])
    page = client.get("/inbox/").content.decode()
    assert "500 new risk cases for Platform (500 high)" in page


def test_a_repeated_sweep_adds_no_summary(personas, swept):
    before = list(Notification.objects.order_by("pk").values_list("pk", "key"))
    again = run_sweep(swept + timedelta(minutes=5))
    assert again.opened == {}
    assert list(Notification.objects.order_by("pk").values_list("pk", "key")) == before


def test_the_same_sweep_retried_finds_its_summaries_written(personas, swept):
    """The summary is keyed by the sweep's time: told once, whatever runs again."""
    RiskCase.objects.all().delete()  # as if the cases had not been committed to be seen
    run_sweep(swept)
    assert Notification.objects.count() == 4
    assert items(personas["provider"]) == {K.DEADLINE_AT_RISK_SUMMARY: 1}


def test_a_summary_links_to_the_list_of_exactly_its_cases(
    client, personas, swept, merchant_org, merchant2_org, provider_org
):
    # An order that comes near its deadline later is the next sweep's, not among them.
    later = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=10))
    run_sweep(swept + timedelta(minutes=5))
    assert RiskCase.objects.filter(order=later).exists()
    key = f"{K.DEADLINE_AT_RISK_SUMMARY}:{swept.isoformat()}"
    for persona, merchants in (("merchant", [merchant_org]), ("merchant2", [merchant2_org]), ("provider", None)):
        note = Notification.objects.get(recipient=personas[persona], key=key)
        client.force_login(personas[persona])
        response = client.get(note.link)
        assert response.status_code == 200
        shown = set(response.context["filter"].qs.values_list("order__order_no", flat=True))
        expected = Order.objects.filter(order_no__startswith="NEAR-")
        if merchants:
            expected = expected.filter(merchant__in=merchants)
        assert shown == set(expected.values_list("order_no", flat=True)), persona
    olivia = Notification.objects.filter(recipient=personas["operator"], kind=K.CASE_OPENED_SUMMARY).earliest("pk")
    client.force_login(personas["operator"])
    response = client.get(olivia.link)
    assert response.context["filter"].qs.count() == AT_RISK
    page = response.content.decode()
    # The list says which sweep it shows, in local time, and can drop that filter.
    when = timezone.localtime(swept).strftime("%Y-%m-%d %H:%M")
    assert re.search(rf'<select name="opened"[^>]*>.*<option value="[^"]+" selected>{when}</option>', page, re.S)


def test_escalations_the_sweep_opens_are_summed_up_for_the_operators(personas, merchant_org, provider_org, platform):
    now = timezone.now()
    blocked = [advance(new_order(merchant_org, provider_org), S.SIGNED_IN) for _ in range(3)]
    # Reported blocked outside the portal's steps (imported data): only the sweep finds them.
    Order.objects.filter(pk__in=[o.pk for o in blocked]).update(flow_blocked=True, blocked_stage="entry")
    run_sweep(now)
    operator = personas["operator"]
    assert items(operator) == {K.CASE_OPENED_SUMMARY: 1, K.ESCALATION_OPENED_SUMMARY: 1}
    raised = Notification.objects.get(recipient=operator, kind=K.ESCALATION_OPENED_SUMMARY)
    assert raised.context["count"] == 3 and raised.context["topics"] == [["flow_blocked", 3]]
    # The provider, in whose name the rule raised them, hears nothing of escalations it did not raise itself.
    assert K.ESCALATION_OPENED_SUMMARY not in items(personas["provider"])


def test_the_escalation_summary_lists_exactly_the_cases_sent_to_the_platform(
    client, personas, merchant_org, provider_org, platform
):
    now = timezone.now()
    blocked = [advance(new_order(merchant_org, provider_org), S.SIGNED_IN) for _ in range(2)]
    Order.objects.filter(pk__in=[o.pk for o in blocked]).update(flow_blocked=True, blocked_stage="entry")
    run_sweep(now)
    raised = Notification.objects.get(recipient=personas["operator"], kind=K.ESCALATION_OPENED_SUMMARY)
    client.force_login(personas["operator"])
    response = client.get(raised.link)
    shown = set(response.context["filter"].qs.values_list("order__order_no", flat=True))
    assert shown == {o.order_no for o in blocked}


def test_a_persons_own_step_is_told_as_one_item_about_that_one_thing(personas, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.INSPECTED)
    workflow.perform(
        order, Action.REPORT_BLOCKED, workflow.Actor.of_organisation(provider_org), stage="packing", reason="x"
    )
    operator = personas["operator"]
    assert items(operator) == {K.CASE_OPENED: 1, K.ESCALATION_OPENED: 1}
    case = RiskCase.objects.get(rule=Rule.FLOW_BLOCKED)
    assert Notification.objects.get(recipient=operator, kind=K.CASE_OPENED).link == f"/cases/{case.pk}/"

    other = new_order(merchant_org, provider_org)
    raised = cases.escalate_order(other, workflow.Actor.of_user(personas["merchant"]), "please look")
    note = Notification.objects.get(recipient=operator, key=f"{K.ESCALATION_OPENED}:{raised.pk}")
    assert note.context["order_no"] == other.order_no


def test_reminders_of_many_escalations_are_one_summary_per_interval(personas, merchant_org, provider_org):
    actor = workflow.Actor.of_user(personas["merchant"])
    raised = [cases.escalate_order(new_order(merchant_org, provider_org), actor, "help") for _ in range(3)]
    due = max(e.first_response_due_at for e in raised)
    run_sweep(due + timedelta(minutes=1))
    run_sweep(due + timedelta(minutes=30))
    reminders = Notification.objects.filter(kind=K.ESCALATION_REMINDER_SUMMARY)
    assert [(n.recipient, n.context["count"]) for n in reminders] == [(personas["operator"], 3)]
    assert reminders.get().link == "/escalations/?overdue=yes"


# --- preferences ----------------------------------------------------------------------------


def stalled(merchant_org, provider_org):
    """An order stuck with its provider: a medium case for the provider."""
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=20)), S.SIGNED_IN)
    Order.objects.filter(pk=order.pk).update(state_changed_at=timezone.now() - timedelta(hours=30))
    return order


@pytest.fixture
def second_provider_person(provider_org):
    return UserFactory(username="pat", organisation=provider_org)


def test_a_summary_switched_off_sends_no_email_but_stays_in_the_inbox(
    personas, second_provider_person, merchant_org, provider_org
):
    NotificationPreference.objects.create(user=personas["provider"], kind=K.CASE_OPENED_SUMMARY, delivery="off")
    stalled(merchant_org, provider_org)
    run_sweep()
    carol = Notification.objects.get(recipient=personas["provider"], kind=K.CASE_OPENED_SUMMARY)
    pat = Notification.objects.get(recipient=second_provider_person, kind=K.CASE_OPENED_SUMMARY)
    assert (carol.email_status, pat.email_status) == (EmailStatus.OFF, EmailStatus.DIGEST)
    assert delivery.deliver_due() == {"sent": 0, "failed": 0}
    assert carol.read_at is None  # in the inbox all the same


def test_a_summary_chosen_immediately_is_emailed_at_once(personas, merchant_org, provider_org):
    NotificationPreference.objects.create(user=personas["provider"], kind=K.CASE_OPENED_SUMMARY, delivery="immediately")
    stalled(merchant_org, provider_org)
    run_sweep()
    assert delivery.deliver_due() == {"sent": 1, "failed": 0}
    assert mail.outbox[0].to == [personas["provider"].email]
    assert mail.outbox[0].subject == "1 new risk case for Provider One"


def test_a_summary_in_the_digest_is_counted_there(personas, merchant_org, provider_org):
    NotificationPreference.objects.create(user=personas["operator"], kind=K.DEADLINE_AT_RISK_SUMMARY, delivery="digest")
    NotificationPreference.objects.create(user=personas["merchant"], kind=K.DEADLINE_AT_RISK_SUMMARY, delivery="digest")
    for amount in ("100.00", "250.50"):
        new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20), amount=amount)
    stalled(merchant_org, provider_org)
    run_sweep()
    alice = Notification.objects.get(recipient=personas["merchant"], kind=K.DEADLINE_AT_RISK_SUMMARY)
    assert alice.email_status == EmailStatus.DIGEST and alice.context["count"] == 2

    digest.send_daily_digest()
    row = Notification.objects.get(kind=K.DAILY_DIGEST, recipient=personas["merchant"])
    assert row.context["items"] == [{"kind": K.DEADLINE_AT_RISK_SUMMARY, "count": 2, "money": "350.50"}]
    # The totals still count cases, not notifications: the merchant owns none of these.
    assert row.context["open"] == 0
    provider_digest = Notification.objects.filter(kind=K.DAILY_DIGEST, recipient=personas["provider"]).get()
    assert provider_digest.context["open"] == 1  # the stalled order's case
    alice.refresh_from_db()
    assert alice.email_status == EmailStatus.DIGESTED
    mail.outbox.clear()
    delivery.deliver_due()
    sent = next(m for m in mail.outbox if m.to == [personas["merchant"].email])
    assert "Orders near their deadline: 2 · ¥350.50" in sent.body


def test_a_summary_with_a_critical_case_is_emailed_even_when_switched_off(
    personas, merchant_org, provider_org, monkeypatch
):
    from tests.factories import scan

    order = advance(new_order(merchant_org, provider_org), S.PACKED)
    # The scan arrives while the risk reactions are not there (as with data
    # imported set-wise): only the sweep finds the offline shipment.
    monkeypatch.setattr(workflow, "REACTIONS", tuple(r for r in workflow.REACTIONS if "risks" not in str(r)))
    scan("YT0001112223", "picked_up", order_no=order.order_no, carrier_name="YTO")
    monkeypatch.undo()
    assert not RiskCase.objects.exists()
    NotificationPreference.objects.create(user=personas["operator"], kind=K.CASE_OPENED_SUMMARY, delivery="off")
    run_sweep()
    olivia = Notification.objects.get(recipient=personas["operator"], kind=K.CASE_OPENED_SUMMARY)
    assert olivia.context["severities"] == {"critical": 1}
    assert olivia.email_status == EmailStatus.PENDING


def test_an_earlier_choice_for_single_cases_carries_over_to_their_summary(personas, merchant_org, provider_org):
    NotificationPreference.objects.create(user=personas["provider"], kind=K.CASE_OPENED, delivery="off")
    stalled(merchant_org, provider_org)
    run_sweep()
    assert Notification.objects.get(recipient=personas["provider"]).email_status == EmailStatus.OFF


# --- emails ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_summary_emails_have_text_and_html_in_the_recipients_language(
    personas, merchant_org, provider_org, platform, language
):
    for person in personas.values():
        person.language = language
        person.save(update_fields=["language"])
    for amount in ("3680.00", "1000.00"):
        new_order(merchant_org, provider_org, deadline_in=timedelta(hours=20), amount=amount)
    blocked = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    Order.objects.filter(pk=blocked.pk).update(flow_blocked=True, blocked_stage="entry")
    run_sweep()
    assert delivery.deliver_due()["failed"] == 0
    kinds = dict(Notification.objects.values_list("recipient__username", "kind").filter(recipient__username="alice"))
    assert kinds == {"alice": K.DEADLINE_AT_RISK_SUMMARY}
    by_person = {}
    for message in mail.outbox:
        by_person.setdefault(message.to[0].split("@")[0], []).append(message)
    with translation.override(language):
        finish = gettext("Finish the online flow, or ask the platform to extend the confirmation time.")
        deadline_rule = str(Rule.DEADLINE_AT_RISK.label)
        blocked_category = gettext("Online flow blocked")
        open_link = gettext("Open in the portal")
    (alice,) = by_person["alice"]
    html = alice.alternatives[0][0]
    assert alice.alternatives[0][1] == "text/html"
    assert "¥4,680.00" in alice.subject and "¥4,680.00" in alice.body and "¥4,680.00" in html
    assert finish in alice.body and finish in html and open_link in alice.body
    assert "/cases/?rule=deadline_at_risk&opened=" in alice.body
    operator_mail = {m.subject: m for m in by_person["olivia"]}
    assert len(operator_mail) == 2  # the cases, and the escalation the blocked flow raised
    bodies = " ".join(m.body + m.alternatives[0][0] for m in operator_mail.values())
    assert deadline_rule in bodies and blocked_category in bodies
    if language == "zh-hans":
        assert finish != "Finish the online flow, or ask the platform to extend the confirmation time."


def test_every_summary_kind_has_its_email_and_inbox_title():
    from django.template.loader import get_template

    for kind in notify.SUMMARY_OF.values():
        for part in ("subject.txt", "txt", "html"):
            get_template(f"emails/{kind}.{part}")


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_tell_each_person_once(postgres, personas, merchant_org, merchant2_org, provider_org):
    from tests.integration.test_concurrency import run_together

    actor = workflow.Actor.of_user(personas["merchant"])
    waiting = [cases.escalate_order(new_order(merchant_org, provider_org), actor, "help") for _ in range(3)]
    Notification.objects.all().delete()
    later = max(e.first_response_due_at for e in waiting) + timedelta(minutes=1)
    orders_near_their_deadline([merchant_org, merchant2_org], provider_org, 60, later)

    def sweep():
        return lambda: run_sweep(later + timedelta(microseconds=int(timezone.now().microsecond)))

    outcomes = run_together(sweep, sweep, sweep)

    assert sum(sum(o.opened.values()) for o in outcomes) == 60, outcomes
    for persona, expected in (("merchant", 30), ("merchant2", 30), ("provider", 60)):
        (told,) = Notification.objects.filter(recipient=personas[persona])
        assert (told.kind, told.context["count"]) == (K.DEADLINE_AT_RISK_SUMMARY, expected)
    assert items(personas["operator"]) == {K.CASE_OPENED_SUMMARY: 1, K.ESCALATION_REMINDER_SUMMARY: 1}
    reminded = Notification.objects.get(recipient=personas["operator"], kind=K.ESCALATION_REMINDER_SUMMARY)
    assert reminded.context["count"] == 3


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_remind_the_operators_once(postgres, personas, merchant_org, provider_org):
    """Nothing new to open, so nothing else makes the sweeps wait for each
    other: the sweep's lock alone keeps the second from reminding again."""
    from tests.integration.test_concurrency import run_together

    actor = workflow.Actor.of_user(personas["merchant"])
    waiting = [cases.escalate_order(new_order(merchant_org, provider_org), actor, "help") for _ in range(3)]
    later = max(e.first_response_due_at for e in waiting) + timedelta(minutes=1)

    def sweep(offset):
        return lambda: lambda: run_sweep(later + timedelta(seconds=offset))

    run_together(*(sweep(i) for i in range(4)))

    reminded = Notification.objects.filter(kind=K.ESCALATION_REMINDER_SUMMARY)
    assert [(n.recipient, n.context["count"]) for n in reminded] == [(personas["operator"], 3)]


@pytest.mark.parametrize("given", ["yesterday", "2026-13-45T00:00:00+00:00", "2026-11-30T08:00:00+99:00"])
def test_a_malformed_moment_shows_no_cases_and_fails_nothing(client, personas, swept, given):
    client.force_login(personas["operator"])
    response = client.get("/cases/", {"opened": given, "status": ""})
    assert response.status_code == 200 and not response.context["filter"].is_valid()
    api = client.get("/api/v1/cases/", {"opened": given})
    assert api.status_code == 400


def test_the_api_lists_the_cases_of_one_sweep(client, personas, swept):
    client.force_login(personas["merchant"])
    response = client.get("/api/v1/cases/", {"opened": swept.isoformat(), "rule": Rule.DEADLINE_AT_RISK})
    assert response.status_code == 200
    rows, page = [], response.json()
    while True:
        rows += page["results"]
        if not page.get("next"):
            break
        page = client.get(page["next"]).json()
    assert len(rows) == 250
