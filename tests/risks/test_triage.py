"""The operators' triage queue and the escalation page (SPEC §4): live
escalations first and unassigned before taken, "Take it" and bulk assignment
with a reason for every refusal, each organisation in its own scope, the
page an operator decides from, and thread lines in each reader's language."""

import importlib
import threading
from datetime import timedelta

import pytest
from django.apps import apps
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from orders import workflow
from orders.choices import Action, AppraisalResult, BlockedStage, OrderState
from portal import delivery
from portal.actors import Actor
from risks import cases, escalations
from risks.choices import EscalationStatus, Rule
from risks.models import EntryCode, EntryKind, Escalation, EscalationEntry
from tests.factories import UserFactory, advance, new_order

S = OrderState


@pytest.fixture
def colleague(platform):
    return UserFactory(username="olga", organisation=platform)


def raised(order, person, *, due_in=timedelta(hours=4), reason="help"):
    """An escalation ``person`` raised about ``order``, due ``due_in`` from now."""
    escalation = cases.escalate_order(order, Actor.of_user(person), reason)
    Escalation.objects.filter(pk=escalation.pk).update(first_response_due_at=timezone.now() + due_in)
    escalation.refresh_from_db()
    return escalation


def blocked(merchant_org, provider_org, *, reason="The ERP refuses the packing record", **fields):
    """An order whose provider reported the flow blocked at packing: the rule
    raises its escalation at once."""
    order = advance(new_order(merchant_org, provider_org, **fields), S.PACKED)
    provider = workflow.Actor.of_organisation(provider_org)
    workflow.perform(order, Action.REPORT_BLOCKED, provider, stage=BlockedStage.PACKING, reason=reason)
    return Escalation.objects.get(order=order)


def rows(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].paginated_rows]


def take(client, escalation, seen="", query="status=live", **extra):
    return client.post(
        reverse("risks:escalation-assign", args=[escalation.pk]),
        {f"seen-{escalation.pk}": seen, "query": query, "take": escalation.pk},
        **extra,
    )


# --- the queue ------------------------------------------------------------------


def test_the_queue_shows_live_ones_unassigned_first_then_the_nearest_first_response(
    client, operator, colleague, provider, merchant, merchant_org, provider_org
):
    late = raised(new_order(merchant_org, provider_org), merchant, due_in=timedelta(hours=-2))
    soon = raised(new_order(merchant_org, provider_org), provider, due_in=timedelta(hours=1))
    later = raised(new_order(merchant_org, provider_org), provider, due_in=timedelta(hours=3))
    taken = raised(new_order(merchant_org, provider_org), provider, due_in=timedelta(hours=-5))
    escalations.assign_to_me(taken, Actor.of_user(colleague))
    closed = raised(new_order(merchant_org, provider_org), provider, due_in=timedelta(hours=-9))
    escalations.close(closed, Actor.of_user(colleague), "done")

    client.force_login(operator)
    response = client.get(reverse("risks:escalations"))

    assert rows(response) == [late.pk, soon.pk, later.pk, taken.pk]
    page = response.content.decode()
    assert "2 escalations" not in page and "4 escalations" in page
    # The overdue one says so in words, not only in red; the others count down.
    row = page.split(f'data-escalation="{late.pk}"')[1].split("</tr>")[0]
    assert "overdue" in row and "table-danger" in page.split(f'data-escalation="{late.pk}"')[0][-80:]
    assert "data-countdown" in row
    # Any status: the closed one too, last.
    everything = client.get(reverse("risks:escalations"), {"status": ""})
    assert rows(everything) == [late.pk, soon.pk, later.pk, taken.pk, closed.pk]


def test_the_queue_filters_by_category_raiser_assignee_and_status(
    client, operator, colleague, provider, merchant, merchant2, merchant_org, merchant2_org, provider_org
):
    mine = raised(new_order(merchant_org, provider_org), merchant)
    escalations.assign_to_me(mine, Actor.of_user(operator))
    hers = raised(new_order(merchant2_org, provider_org), merchant2)
    escalations.assign_to_me(hers, Actor.of_user(colleague))
    waiting = blocked(merchant_org, provider_org)
    client.force_login(operator)

    def shown(**query):
        return set(rows(client.get(reverse("risks:escalations"), query)))

    assert shown(assignee="me") == {mine.pk}
    assert shown(assignee="none") == {waiting.pk}
    assert shown(assignee=str(colleague.pk)) == {hers.pk}
    assert shown(category="flow_blocked") == {waiting.pk}
    assert shown(organisation="M-2") == {hers.pk}
    assert shown(organisation=provider_org.code) == {waiting.pk}
    escalations.close(hers, Actor.of_user(colleague), "sorted")
    assert shown() == {mine.pk, waiting.pk}
    assert shown(status="resolved") == {hers.pk}
    # Someone who is not an operator is not a choice.
    assert shown(assignee=str(merchant.pk)) == set()


def test_take_it_assigns_to_me_and_stays_on_the_queue_with_a_message(
    client, operator, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    response = take(client, escalation, query="status=live&category=flow_blocked")

    assert response.status_code == 302
    assert response["Location"] == reverse("risks:escalations") + "?status=live&category=flow_blocked"
    escalation.refresh_from_db()
    assert escalation.assignee == operator and escalation.status == EscalationStatus.IN_PROGRESS
    page = client.get(response["Location"]).content.decode()
    assert f"Escalation {escalation.pk} (order {escalation.order.order_no}) is yours." in page
    row = page.split(f'data-escalation="{escalation.pk}"')[1].split("</tr>")[0]
    assert "olivia" in row and "Take it" not in row


def test_take_it_through_htmx_answers_with_the_updated_rows_and_the_message(
    client, operator, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    response = take(client, escalation, follow=True, HTTP_HX_REQUEST="true")

    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="results"') and "<html" not in fragment
    assert f"Escalation {escalation.pk} (order {escalation.order.order_no}) is yours." in fragment
    assert "Take it" not in fragment.split(f'data-escalation="{escalation.pk}"')[1].split("</tr>")[0]


def test_an_escalation_someone_took_meanwhile_is_refused_with_the_takers_name(
    client, operator, colleague, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)
    client.get(reverse("risks:escalations"))  # olivia sees it unassigned ...
    escalations.assign_to_me(escalation, Actor.of_user(colleague))  # ... olga takes it first

    page = take(client, escalation, seen="", follow=True).content.decode()

    assert "olga has already taken this escalation." in page
    escalation.refresh_from_db()
    assert escalation.assignee == colleague
    assert list(escalation.entries.filter(kind=EntryKind.ASSIGNED).values_list("author__username", flat=True)) == [
        "olga"
    ]


def test_an_escalation_closed_meanwhile_says_so(client, operator, colleague, provider, merchant_org, provider_org):
    escalation = raised(new_order(merchant_org, provider_org), provider)
    escalations.close(escalation, Actor.of_user(colleague), "not ours", status=EscalationStatus.REJECTED)
    client.force_login(operator)

    page = take(client, escalation, follow=True).content.decode()

    assert "This escalation was closed meanwhile (Rejected)." in page
    escalation.refresh_from_db()
    assert escalation.assignee == colleague and escalation.status == EscalationStatus.REJECTED


@pytest.mark.django_db(transaction=True)
def test_two_operators_taking_one_at_once_one_wins_the_other_is_told_who(
    postgres, operator, colleague, provider, merchant_org, provider_org
):
    escalation = raised(new_order(merchant_org, provider_org), provider)
    barrier = threading.Barrier(2)
    outcomes = {}

    def person(user):
        seen = Escalation.objects.get(pk=escalation.pk)  # both saw it unassigned
        barrier.wait(timeout=10)
        try:
            outcomes[user.username] = escalations.assign_to_me(seen, Actor.of_user(user), seen=None)
        except escalations.AlreadyTaken as exc:
            outcomes[user.username] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=person, args=(user,)) for user in (operator, colleague)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [o for o in outcomes.values() if isinstance(o, Escalation)]
    losers = [o for o in outcomes.values() if isinstance(o, escalations.AlreadyTaken)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert losers[0].message == f"{winners[0].assignee.username} has already taken this escalation."
    assert EscalationEntry.objects.filter(escalation=escalation, kind=EntryKind.ASSIGNED).count() == 1


def test_bulk_assign_reports_each_row_and_refuses_one_taken_meanwhile(
    client, operator, colleague, provider, merchant_org, provider_org
):
    first, second, third = (blocked(merchant_org, provider_org) for _ in range(3))
    client.force_login(operator)
    escalations.assign_to_me(third, Actor.of_user(colleague))  # after olivia's page showed it unassigned

    response = client.post(
        reverse("risks:escalations"),
        {
            "select": [first.pk, second.pk, third.pk],
            **{f"seen-{e.pk}": "" for e in (first, second, third)},
            "assignee": "me",
            "query": "status=live",
        },
    )

    assert response.status_code == 302 and response["Location"].endswith("?status=live")
    assert dict(Escalation.objects.filter(pk__in=[first.pk, second.pk, third.pk]).values_list("pk", "assignee")) == {
        first.pk: operator.pk,
        second.pk: operator.pk,
        third.pk: colleague.pk,
    }
    page = client.get(response["Location"]).content.decode()
    results = page.split('id="bulk-results"')[1].split("</section>")[0]
    assert results.count('data-outcome="done"') == 2 and results.count('data-outcome="refused"') == 1
    assert "olga has already taken this escalation." in results
    assert "2 escalations are with olivia." in page
    # The outcome is shown once; the next look at the queue is the queue.
    assert 'id="bulk-results"' not in client.get(response["Location"]).content.decode()


def test_bulk_assign_to_a_chosen_operator_tells_them(client, operator, colleague, provider, merchant_org, provider_org):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    client.post(
        reverse("risks:escalations"),
        {"select": [escalation.pk], "assignee": str(colleague.pk), "query": ""},
    )

    escalation.refresh_from_db()
    assert escalation.assignee == colleague
    line = escalation.entries.get(kind=EntryKind.ASSIGNED)
    assert (
        line.author == operator and line.line == "olivia assigned the escalation to olga. Status: Open → In progress."
    )
    delivery.deliver_due()
    to_olga = [m for m in mail.outbox if colleague.email in m.to and "is handling the escalation" in m.subject]
    assert len(to_olga) == 1 and "olivia of the platform gave the escalation" in to_olga[0].body


def test_only_operators_of_the_platform_may_be_given_an_escalation(
    client, operator, provider, merchant, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    page = client.post(
        reverse("risks:escalations"),
        {"select": [escalation.pk], "assignee": str(merchant.pk), "query": ""},
        follow=True,
    ).content.decode()

    assert "Choose whom to assign them to." in page
    escalation.refresh_from_db()
    assert escalation.assignee is None
    with pytest.raises(escalations.errors.InvalidInput):
        escalations.assign(escalation, Actor.of_user(operator), merchant)


def test_a_merchant_sees_only_its_own_escalations_and_cannot_take_or_assign(
    client, operator, merchant, merchant2, provider, merchant_org, merchant2_org, provider_org
):
    own = raised(new_order(merchant_org, provider_org), merchant)
    other = raised(new_order(merchant2_org, provider_org), merchant2)
    client.force_login(merchant)

    response = client.get(reverse("risks:escalations"))
    page = response.content.decode()
    assert rows(response) == [own.pk]
    assert "Take it" not in page and 'id="bulk-form"' not in page and 'name="select"' not in page
    assert "assignee" not in response.context["filter"].form.fields
    assert client.get(reverse("risks:escalation", args=[other.pk])).status_code == 404
    assert "Assign to me" not in client.get(reverse("risks:escalation", args=[own.pk])).content.decode()

    assert take(client, own).status_code == 404
    assert take(client, other).status_code == 404
    bulk = client.post(reverse("risks:escalations"), {"select": [own.pk, other.pk], "assignee": "me", "query": ""})
    assert bulk.status_code == 404
    assert not Escalation.objects.filter(assignee__isnull=False).exists()


def test_an_operator_cannot_bulk_assign_what_does_not_exist(client, operator, provider, merchant_org, provider_org):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    response = client.post(
        reverse("risks:escalations"),
        {"select": [escalation.pk + 1000, "x", "9" * 40], f"seen-{escalation.pk}": "9" * 40, "assignee": "me"},
    )

    assert response.status_code == 302

    escalation.refresh_from_db()
    assert escalation.assignee is None


# --- thread lines in the reader's language -----------------------------------


def test_each_action_line_reads_in_the_readers_language(operator, colleague, provider, merchant_org, provider_org):
    escalation = blocked(merchant_org, provider_org)
    escalations.assign(escalation, Actor.of_user(operator), colleague)
    escalations.act_on_order(escalation, Actor.of_user(colleague), Action.UNBLOCK, note="station reset")
    escalations.close(escalation, Actor.of_user(colleague), "Print the waybill now.")
    raised_line, assigned, action, closed = escalation.entries.order_by("pk")
    assert [e.code for e in (raised_line, assigned, action, closed)] == [
        EntryCode.RAISED_BY_RULE,
        EntryCode.ASSIGNED,
        EntryCode.ORDER_ACTION,
        EntryCode.STATUS,
    ]

    with translation.override("en"):
        english = [e.line for e in (raised_line, assigned, action, closed)]
    with translation.override("zh-hans"):
        chinese = [e.line for e in (raised_line, assigned, action, closed)]
        words = {
            "rule": str(Rule.FLOW_BLOCKED.label),
            "in_progress": str(EscalationStatus.IN_PROGRESS.label),
            "resolved": str(EscalationStatus.RESOLVED.label),
            "unblock": str(Action.UNBLOCK.label),
        }
    assert english == [
        "Raised by the rule “Online flow blocked”: Sent to the platform at once, as this rule requires.",
        "olivia assigned the escalation to olga. Status: Open → In progress.",
        "Unblock — Note: station reset",
        "Status: In progress → Resolved.",
    ]
    assert words["in_progress"] != "In progress" and words["unblock"] != "Unblock"
    assert words["rule"] in chinese[0]
    assert words["in_progress"] in chinese[1] and "In progress" not in chinese[1]
    assert chinese[2].startswith(words["unblock"]) and "station reset" in chinese[2]
    assert words["resolved"] in chinese[3]
    # What the operator typed stays as typed, in both languages.
    with translation.override("zh-hans"):
        assert closed.typed_text == "Print the waybill now." and action.typed_text == ""


def test_the_page_shows_each_reader_the_thread_in_their_language(
    client, operator, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    escalations.assign_to_me(escalation, Actor.of_user(operator))
    operator.language = "zh-hans"
    operator.save(update_fields=["language"])
    client.force_login(operator)

    thread = client.get(reverse("risks:escalation", args=[escalation.pk])).content.decode().split('id="thread"')[1]

    with translation.override("zh-hans"):
        in_progress = str(EscalationStatus.IN_PROGRESS.label)
    assert in_progress in thread and "In progress" not in thread.split("</ol>")[0]


def test_a_line_written_before_codes_reads_as_it_was_written(operator, provider, merchant_org, provider_org):
    escalation = raised(new_order(merchant_org, provider_org), provider)
    old = EscalationEntry.objects.create(
        escalation=escalation,
        kind=EntryKind.ACTION,
        author=operator,
        body="解除异常 — 备注: 已重置",
        created_at=timezone.now(),
    )
    assigned = EscalationEntry.objects.create(
        escalation=escalation, kind=EntryKind.ASSIGNED, author=operator, body="olivia", created_at=timezone.now()
    )
    for language in ("en", "zh-hans"):
        with translation.override(language):
            assert old.line == "解除异常 — 备注: 已重置"

    migration = importlib.import_module("risks.migrations.0004_escalation_entry_code_and_params")
    migration.code_old_assignments(apps, None)

    assigned.refresh_from_db()
    old.refresh_from_db()
    assert (assigned.code, assigned.params) == (EntryCode.ASSIGNED, {"assignee": "olivia"})
    assert old.code == ""
    with translation.override("en"):
        assert assigned.line == "Assigned to olivia."


# --- the escalation page --------------------------------------------------------


def test_a_blocked_flow_page_shows_what_the_operator_needs_to_decide(
    client, operator, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org, reason="The ERP refuses the packing record")
    order = escalation.order
    client.force_login(operator)

    page = client.get(reverse("risks:escalation", args=[escalation.pk])).content.decode()

    blocked_box = page.split('id="blocked"')[1].split("</section>")[0]
    assert "Cannot pack" in blocked_box and "The ERP refuses the packing record" in blocked_box
    assert "carol" not in blocked_box and provider_org.name in blocked_box  # reported through the API key
    facts = page.split('id="escalation-order"')[1].split("</section>")[0]
    for fact in (
        order.order_no,
        merchant_org.name,
        provider_org.name,
        "Sneakers × 1",
        "¥1,234.50",
        str(S.PACKED.label),
        order.inbound_tracking_no,
        "left",
    ):
        assert fact in facts, fact
    why = page.split('id="escalation-why"')[1].split("</section>")[0]
    assert "Online flow blocked" in why and "where the flow is blocked" in why and "Cannot pack" in why
    assert page.split('id="money-at-risk"')[1].startswith(">¥1,234.50")
    actions = page.split('id="escalation-actions"')[1].split("</section>")[0]
    assert 'id="assign-to-me"' in actions and 'id="escalation-act-unblock"' in actions
    assert 'id="escalation-act-extend-deadline"' in actions and 'id="escalation-close"' in actions
    assert 'id="escalation-group"' not in page


def test_the_page_of_a_split_order_shows_the_group_and_its_fees(client, operator, merchant, merchant_org, provider_org):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-SPLIT"), S.SIGNED_IN)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-SPLIT"), S.SIGNED_IN)
    workflow.perform(first, Action.APPRAISE, workflow.Actor.of_organisation(provider_org), result=AppraisalResult.PASS)
    escalation = raised(second, merchant)
    client.force_login(operator)

    page = client.get(reverse("risks:escalation", args=[escalation.pk])).content.decode()

    group = page.split('id="escalation-group"')[1].split("</section>")[0]
    assert first.order_no in group and second.order_no in group and 'id="fees"' in group


def test_unblocking_from_the_escalation_page_records_the_step_in_the_thread(
    client, operator, provider, merchant_org, provider_org
):
    escalation = blocked(merchant_org, provider_org)
    client.force_login(operator)

    client.post(reverse("risks:escalation-act", args=[escalation.pk, "unblock"]), {"unblock-note": "reset"})

    escalation.order.refresh_from_db()
    assert not escalation.order.flow_blocked
    line = escalation.entries.get(code=EntryCode.ORDER_ACTION)
    assert line.params == {"action": "unblock", "params": {"note": "reset"}}
    assert line.body == "Unblock — Note: reset"  # stored in English for the API


# --- queries --------------------------------------------------------------------


def _queries(get):
    with CaptureQueriesContext(connection) as queries:
        response = get()
    assert response.status_code == 200
    return len(queries), response


def test_the_queue_runs_the_same_few_queries_at_any_page_size(
    client, operator, colleague, provider, merchant, merchant_org, provider_org
):
    for i in range(12):
        escalation = (
            blocked(merchant_org, provider_org) if i % 2 else raised(new_order(merchant_org, provider_org), merchant)
        )
        if i % 3 == 0:
            escalations.assign_to_me(escalation, Actor.of_user(colleague))
    client.force_login(operator)
    client.get(reverse("risks:escalations"))  # the session's first touch is not the list's

    small, first = _queries(lambda: client.get(reverse("risks:escalations"), {"per_page": 10}))
    large, second = _queries(lambda: client.get(reverse("risks:escalations"), {"per_page": 25}))

    assert (len(rows(first)), len(rows(second))) == (10, 12)
    # Session, person, operators (the assignee filter and the bulk form share
    # them), organisations that raised one, the page's rows, their number.
    assert small == large <= 6, (small, large)


def test_the_escalation_page_runs_the_same_queries_however_long_the_thread(
    client, operator, colleague, provider, merchant_org, provider_org
):
    short, long = blocked(merchant_org, provider_org), blocked(merchant_org, provider_org)
    escalations.assign_to_me(short, Actor.of_user(colleague))
    escalations.assign_to_me(long, Actor.of_user(colleague))
    for n in range(20):
        escalations.comment(long, Actor.of_user(provider if n % 2 else colleague), f"note {n}")
    client.force_login(operator)
    client.get(reverse("risks:escalation", args=[short.pk]))

    few, _response = _queries(lambda: client.get(reverse("risks:escalation", args=[short.pk])))
    many, response = _queries(lambda: client.get(reverse("risks:escalation", args=[long.pk])))

    assert response.content.decode().count('data-kind="comment"') == 20
    # Session, person, the escalation with its order and case, the order's
    # split group, its live cases, the operators, the report of the blocked
    # flow, the thread.
    assert few == many <= 8, (few, many)


def test_the_api_lists_the_queue_with_the_same_filters(
    api, keys, operator, colleague, provider, merchant_org, provider_org
):
    waiting = blocked(merchant_org, provider_org)
    hers = blocked(merchant_org, provider_org)
    escalations.assign_to_me(hers, Actor.of_user(colleague))
    closed = blocked(merchant_org, provider_org)
    escalations.close(closed, Actor.of_user(colleague), "done")
    platform = api.as_key(keys["platform"])

    def listed(**query):
        return {row["id"] for row in platform.get("/api/v1/escalations/", query).json()["results"]}

    assert listed() == {waiting.pk, hers.pk, closed.pk}
    assert listed(status="live") == {waiting.pk, hers.pk}
    assert listed(assignee="none") == {waiting.pk}
    assert listed(assignee=str(colleague.pk)) == {hers.pk, closed.pk}
    refused = api.as_key(keys["provider"]).get("/api/v1/escalations/", {"assignee": str(colleague.pk)})
    assert refused.status_code == 400
