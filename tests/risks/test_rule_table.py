"""``risks.rules.RULES``: every rule of SPEC §3 declared once, with all it needs."""

import html
import inspect

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from orders.choices import Action, OrderState
from portal.choices import OrganisationKind
from risks import rules
from risks.choices import GROUP_RULES, EscalationCategory, Rule, Severity
from risks.models import RiskCase, RiskSettings
from risks.sweep import run_sweep
from tests.factories import advance, new_order


def test_the_rule_table_declares_every_rule_exactly_once():
    declared = [spec.code for spec in rules.RULES.values()]
    assert sorted(declared) == sorted(Rule)
    assert len(declared) == len(set(declared)) == len(Rule)
    assert all(code == spec.code for code, spec in rules.RULES.items())


def test_a_rule_declared_twice_or_not_at_all_is_refused():
    specs = list(rules.RULES.values())
    with pytest.raises(ImproperlyConfigured):
        rules._one_per_code(*specs, specs[0])
    with pytest.raises(ImproperlyConfigured):
        rules._one_per_code(*specs[1:])


@pytest.mark.parametrize("spec", rules.RULES.values(), ids=lambda spec: spec.code)
def test_each_rule_is_declared_in_full(spec):
    assert list(inspect.signature(spec.evaluate).parameters) == ["ctx", "orders"]
    assert inspect.signature(spec.evaluate).parameters["orders"].default is None
    assert spec.severity in Severity.values
    assert spec.category in EscalationCategory.values
    assert spec.response_hours > 0
    assert str(spec.instructions).strip()
    assert spec.group == (spec.code in GROUP_RULES)
    assert not spec.opened_by or spec.opened_by in Action.values


def test_the_rules_name_every_threshold_and_only_real_ones():
    hours = {f.name for f in RiskSettings._meta.get_fields() if f.name.endswith(("_hours", "_samples"))}
    named = [name for spec in rules.RULES.values() for name in spec.thresholds]
    assert set(named) <= hours
    # Every case's due time reads the overdue threshold; the rest belong to one rule each.
    assert sorted(named) == sorted(hours - {"escalate_overdue_after_hours"})


def test_a_stalled_order_has_an_owner_in_every_state_with_an_sla():
    spec = rules.RULES[Rule.STALLED]
    assert set(spec.owner) == set(RiskSettings().sla())
    assert {spec.owner_of(state) for state in spec.owner} <= set(OrganisationKind.values)
    assert spec.owner_of(OrderState.OUTBOUND) == OrganisationKind.PLATFORM


def test_the_case_page_shows_the_rules_instructions(client, merchant_org, provider_org, platform, provider):
    for _n in range(2):
        advance(new_order(merchant_org, provider_org, trade_no="T-I", sku="SKU-I"), OrderState.SIGNED_IN)
    run_sweep()
    case = RiskCase.objects.get(rule=Rule.SPLIT_ORDER)
    client.force_login(provider)

    page = html.unescape(client.get(reverse("risks:case", args=[case.pk])).content.decode())

    assert str(rules.RULES[Rule.SPLIT_ORDER].instructions) in page
    assert str(rules.RULES[Rule.STALLED].instructions) not in page
