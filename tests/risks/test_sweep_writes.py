"""What a sweep writes when it opens cases, written set-wise: each case with
its first event, the escalations of rules that escalate at once with their
first thread line, nothing for a hit whose case is live or whose evidence a
person resolved, and the same moments read as the models read them."""

import gc
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orders.choices import OrderState
from orders.models import Order
from risks import cases, rules, sweep
from risks.choices import CaseEventKind, CaseStatus, EscalationStatus, Resolution, Rule
from risks.models import CaseEvent, EntryCode, EntryKind, Escalation, RiskCase, RiskSettings
from risks.sweep import run_sweep
from tests.factories import advance, new_order, platform_actor

S = OrderState


def blocked_elsewhere(merchant_org, provider_org, n):
    """Orders reported blocked outside the portal's steps (imported data): only the sweep finds them."""
    orders = [advance(new_order(merchant_org, provider_org), S.SIGNED_IN) for _ in range(n)]
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(flow_blocked=True, blocked_stage="entry")
    return orders


def test_a_case_escalated_at_once_is_opened_escalated_with_its_history_and_escalation(
    merchant_org, provider_org, platform
):
    now = timezone.now()
    (order,) = blocked_elsewhere(merchant_org, provider_org, 1)

    assert run_sweep(now).opened == {Rule.FLOW_BLOCKED: 1}

    case = RiskCase.objects.get(rule=Rule.FLOW_BLOCKED)
    assert case.order == order and case.owner == platform and case.status == CaseStatus.ESCALATED
    assert case.opened_at == case.escalated_at == case.updated_at == now
    events = list(case.events.order_by("pk").values_list("kind", "at", "actor_user", "actor_organisation"))
    assert events == [(CaseEventKind.OPENED, now, None, None), (CaseEventKind.ESCALATED, now, None, None)]
    assert case.events.get(kind=CaseEventKind.ESCALATED).note.startswith("Sent to the platform at once")
    escalation = case.escalations.get()
    assert escalation.status == EscalationStatus.OPEN and escalation.order == order
    # The platform owns the case: the escalation is raised in the provider's name.
    assert escalation.raised_by_organisation == provider_org and escalation.raised_by_rule == Rule.FLOW_BLOCKED
    assert escalation.category == rules.RULES[Rule.FLOW_BLOCKED].category and escalation.created_at == now
    assert escalation.first_response_due_at == now + timedelta(hours=4)
    (entry,) = escalation.entries.all()
    assert (entry.kind, entry.code, entry.created_at) == (EntryKind.RAISED, EntryCode.RAISED_BY_RULE, now)
    assert entry.params["rule"] == Rule.FLOW_BLOCKED and "Raised by the rule" in entry.body

    again = run_sweep(now + timedelta(minutes=5))
    assert again.opened == {} and CaseEvent.objects.count() == 2 and Escalation.objects.count() == 1


def test_cases_are_written_in_one_go_and_only_new_ones_get_events(merchant_org, provider_org, platform):
    now = timezone.now()
    orders = blocked_elsewhere(merchant_org, provider_org, 3)
    ctx = rules.Context.build(now, RiskSettings.current())
    hits = rules.RULES[Rule.FLOW_BLOCKED].evaluate(ctx)
    assert sweep.open_all({Rule.FLOW_BLOCKED: hits[:1]}, now) == {Rule.FLOW_BLOCKED: 1}

    # The first one is live already: the database skips it, the other two open.
    assert sweep.open_all({Rule.FLOW_BLOCKED: hits}, now) == {Rule.FLOW_BLOCKED: 2}
    assert RiskCase.objects.filter(rule=Rule.FLOW_BLOCKED).count() == 3
    for order in orders:
        case = RiskCase.objects.get(order=order)
        assert list(case.events.values_list("kind", flat=True)) == [CaseEventKind.OPENED, CaseEventKind.ESCALATED]
        assert case.escalations.count() == 1
    assert sweep.open_all({}, now) == {} and sweep.open_all({Rule.FLOW_BLOCKED: []}, now) == {}


def test_evidence_a_person_resolved_is_not_opened_again(merchant_org, provider_org, platform):
    now = timezone.now()
    blocked_elsewhere(merchant_org, provider_org, 2)
    run_sweep(now)
    first = RiskCase.objects.order_by("pk").first()
    cases.resolve(first, platform_actor(), "fixed by phone")
    assert RiskCase.objects.get(pk=first.pk).resolution == Resolution.BY_OWNER

    assert run_sweep(now + timedelta(minutes=5)).opened == {}
    assert RiskCase.objects.filter(order=first.order).count() == 1


def test_overdue_cases_escalate_set_wise_each_once(merchant_org, provider_org, platform):
    now = timezone.now()
    stuck = [new_order(merchant_org, provider_org) for _ in range(3)]
    Order.objects.filter(pk__in=[o.pk for o in stuck]).update(state_changed_at=now - timedelta(hours=60))
    run_sweep(now)
    later = now + timedelta(hours=12 + 12 + 1)  # response time, then the grace before escalating

    assert run_sweep(later).escalated == 3
    for case in RiskCase.objects.filter(rule=Rule.STALLED):
        assert case.status == CaseStatus.ESCALATED and case.escalated_at == later
        escalation = case.escalations.get()
        assert escalation.raised_by_organisation == merchant_org and escalation.entries.count() == 1
    assert run_sweep(later + timedelta(minutes=5)).escalated == 0


@pytest.mark.parametrize("microsecond", [0, 123456])
def test_the_rules_read_moments_as_the_models_do(merchant_org, provider_org, microsecond):
    order = new_order(merchant_org, provider_org)
    moment = timezone.now().replace(microsecond=microsecond) - timedelta(days=3)
    Order.objects.filter(pk=order.pk).update(auto_confirm_at=moment, state_changed_at=moment)
    order.refresh_from_db()

    (row,) = rules._order_rows(Order.objects.filter(pk=order.pk), since="state_changed_at")

    for read, stored in ((row["deadline"], order.auto_confirm_at), (row["since"], order.state_changed_at)):
        assert read == stored and read.tzinfo == stored.tzinfo
        assert read.isoformat() == stored.isoformat()


def test_a_split_group_is_read_by_name_and_by_attribute(merchant_org, provider_org):
    for _ in range(2):
        new_order(merchant_org, provider_org, trade_no="T-GROUP", sku="S")
    ctx = rules.Context.build(timezone.now(), RiskSettings.current())
    (group,) = rules.group_rows(ctx)
    assert group["size"] == group.size == 2 and group.open_orders == 2
    assert group["appraisal_fee"] == provider_org.appraisal_fee and group.trade_no == "T-GROUP"


def test_the_sweep_leaves_the_collector_and_the_planner_as_it_found_them(merchant_org, provider_org, platform):
    blocked_elsewhere(merchant_org, provider_org, 1)
    assert gc.isenabled()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            before = cursor.fetchone()[0]
    run_sweep()
    assert gc.isenabled()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            assert cursor.fetchone()[0] == before
