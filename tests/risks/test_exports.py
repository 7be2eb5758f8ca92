"""The risk lists as files: cases and escalations filtered and scoped exactly
as the page shows them (another organisation's never in the file), rules,
severities and statuses in the reader's language, streamed, in a few queries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst

from orders import workflow
from orders.choices import Action, OrderState
from portal.actors import Actor
from portal.exports import FORMATS
from risks import cases
from risks.choices import CaseStatus, Rule, Severity
from risks.models import Escalation, RiskCase
from risks.sweep import run_sweep
from tests.downloads import column, csv_rows, sheet, sheet_rows
from tests.factories import advance, new_order

FORMULA = '=HYPERLINK("http://x","y")'


def header(model, name: str) -> str:
    return str(capfirst(model._meta.get_field(name).verbose_name))


CASE = "Risk case"
ESCALATION = "Escalation"


def export(client, name, fmt="csv", **filters):
    response = client.get(reverse(name), {**filters, "export": fmt})
    assert response.status_code == 200
    assert response.streaming
    return response


def rows_of(response, fmt):
    return csv_rows(response) if fmt == "csv" else sheet_rows(response)


def ids(rows, name) -> list[int]:
    return sorted(int(value) for value in column(rows, name))


def blocked(merchant_org, provider_org):
    """An order whose provider reported the flow blocked: a case and an escalation at once."""
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=40)), OrderState.SIGNED_IN)
    workflow.perform(
        order, Action.REPORT_BLOCKED, workflow.Actor.of_organisation(provider_org), stage="entry", reason="ERP down"
    )
    return order


@pytest.fixture
def story(merchant_org, merchant2_org, provider_org, provider2_org, merchant, merchant2):
    """A blocked order for each merchant and provider pair, each near its
    deadline too, swept; and an escalation each merchant raised itself."""
    mine = blocked(merchant_org, provider_org)
    theirs = blocked(merchant2_org, provider2_org)
    run_sweep()
    raised = cases.escalate_order(mine, Actor.of_user(merchant), FORMULA)
    raised2 = cases.escalate_order(theirs, Actor.of_user(merchant2), "theirs")
    return {"mine": mine, "theirs": theirs, "raised": raised, "raised2": raised2}


def test_a_chinese_reader_gets_rules_severities_and_statuses_in_chinese(client, merchant, story):
    merchant.language = "zh-hans"
    merchant.save(update_fields=["language"])
    client.force_login(merchant)

    rows = csv_rows(export(client, "risks:cases", status="live", rule=Rule.FLOW_BLOCKED))

    with translation.override("zh-hans"):
        rule, severity, status = (header(RiskCase, name) for name in ("rule", "severity", "status"))
        expected = {rule: str(Rule.FLOW_BLOCKED.label), severity: str(Severity.HIGH.label)}
        expected[status] = str(CaseStatus.ESCALATED.label)
    assert rule == "规则" and expected[rule] == "线上流程走不通"
    assert {name: column(rows, name) for name in expected} == {name: [value] for name, value in expected.items()}
    assert Rule.FLOW_BLOCKED.value not in rows[1] and Severity.HIGH.value not in rows[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cases_export_what_the_filter_shows_and_nothing_outside_the_scope(client, personas, story, fmt):
    for persona, outside in (("merchant", "theirs"), ("provider2", "mine"), ("operator", None)):
        user = personas[persona]
        client.force_login(user)
        rows = rows_of(export(client, "risks:cases", fmt, status="live"), fmt)
        shown = RiskCase.objects.visible_to(user).live()
        assert ids(rows, CASE) == sorted(shown.values_list("pk", flat=True)), persona
        assert set(column(rows, "Rule")) == {str(Rule.FLOW_BLOCKED.label), str(Rule.DEADLINE_AT_RISK.label)}
        if outside:
            assert story[outside].order_no not in column(rows, "Order"), persona
        only = rows_of(export(client, "risks:cases", fmt, status="live", rule=Rule.DEADLINE_AT_RISK), fmt)
        assert ids(only, CASE) == sorted(shown.filter(rule=Rule.DEADLINE_AT_RISK).values_list("pk", flat=True))


def test_the_case_list_exports_its_default_of_open_cases(client, operator, story):
    RiskCase.objects.filter(rule=Rule.DEADLINE_AT_RISK, order=story["mine"]).update(status=CaseStatus.ACKNOWLEDGED)
    client.force_login(operator)

    statuses = column(csv_rows(export(client, "risks:cases")), "Status")

    # As the page: without a status filter, the open cases.
    assert set(statuses) == {str(CaseStatus.OPEN.label)}
    assert len(statuses) == RiskCase.objects.filter(status=CaseStatus.OPEN).count() >= 1


def test_a_group_case_names_the_readers_own_order_only(client, merchant_org, provider_org, provider2, provider2_org):
    first = new_order(merchant_org, provider_org, trade_no="T-G", sku="SKU-G")
    second = new_order(merchant_org, provider2_org, trade_no="T-G", sku="SKU-G")
    run_sweep()
    case = RiskCase.objects.live().get(rule=Rule.SPLIT_ORDER)
    assert case.order == first, "filed under the first provider's order"
    client.force_login(provider2)

    rows = csv_rows(export(client, "risks:cases", rule=Rule.SPLIT_ORDER))

    assert ids(rows, CASE) == [case.pk]
    assert column(rows, "Order") == [second.order_no]
    assert first.order_no not in str(rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_escalations_export_the_filtered_queue_and_nothing_outside_the_scope(client, personas, story, fmt):
    for persona, outside in (("merchant", "raised2"), ("merchant2", "raised"), ("operator", None)):
        user = personas[persona]
        client.force_login(user)
        rows = rows_of(export(client, "risks:escalations", fmt), fmt)
        listed = ids(rows, ESCALATION)
        assert listed == sorted(Escalation.objects.visible_to(user).live().values_list("pk", flat=True)), persona
        if outside:
            assert story[outside].pk not in listed and story[outside].order.order_no not in column(rows, "Order")
    client.force_login(personas["operator"])
    raiser = story["raised"].raised_by_organisation
    rows = rows_of(export(client, "risks:escalations", fmt, organisation=raiser.code), fmt)
    assert ids(rows, ESCALATION) == [story["raised"].pk]
    assert column(rows, "Raised by organisation") == [raiser.name]


def test_an_escalations_reason_that_looks_like_a_formula_stays_text(client, merchant, story):
    client.force_login(merchant)
    reason = header(Escalation, "reason")

    assert column(csv_rows(export(client, "risks:escalations")), reason) == ["'" + FORMULA]
    found = sheet(export(client, "risks:escalations", "xlsx"))
    names = [cell.value for cell in found[1]]
    cell = found.cell(row=2, column=names.index(reason) + 1)
    assert (cell.data_type, cell.value) == ("s", FORMULA)


def test_money_at_risk_is_a_number_and_the_due_time_a_date_in_xlsx(client, operator, story):
    client.force_login(operator)
    found = sheet(export(client, "risks:cases", "xlsx", status="live", rule=Rule.FLOW_BLOCKED))
    names = [cell.value for cell in found[1]]
    money = found.cell(row=2, column=names.index(header(RiskCase, "money_at_risk")) + 1)
    due = found.cell(row=2, column=names.index(header(RiskCase, "due_at")) + 1)
    assert money.data_type == "n" and money.value > 0
    assert due.is_date and due.number_format == "yyyy-mm-dd hh:mm:ss"


@pytest.mark.parametrize("name", ["risks:cases", "risks:escalations"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_risk_export_runs_the_same_few_queries_however_many_rows(
    client, operator, merchant_org, provider_org, django_assert_max_num_queries, monkeypatch, name, fmt
):
    monkeypatch.setattr("orders.exports.CHUNK_SIZE", 3)
    client.force_login(operator)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            rows = rows_of(export(client, name, fmt, status="live"), fmt)
        return len(captured), len(rows) - 1

    for _ in range(2):
        blocked(merchant_org, provider_org)
    few = queries()
    for _ in range(8):
        blocked(merchant_org, provider_org)
    many = queries()

    assert many[1] > few[1] >= 2
    assert few[0] == many[0]
    with django_assert_max_num_queries(few[0]):
        rows_of(export(client, name, fmt, status="live"), fmt)
    assert few[0] <= 5


@pytest.mark.parametrize("name", ["risks:cases", "risks:escalations"])
def test_any_other_export_value_shows_the_risk_page_with_its_export_links(client, operator, story, name):
    client.force_login(operator)
    for value in ("pdf", "", "XLSX", "csv;"):
        response = client.get(reverse(name), {"export": value, "rule": Rule.FLOW_BLOCKED})
        assert response.status_code == 200 and not response.streaming, value
    html = client.get(reverse(name), {"rule": Rule.FLOW_BLOCKED, "page": 1}).content.decode()
    for fmt in FORMATS:
        assert f'href="?rule={Rule.FLOW_BLOCKED.value}&amp;export={fmt}"' in html


def test_the_escalation_file_keeps_the_queues_order(client, operator, story, merchant_org, provider_org):
    for _ in range(3):
        blocked(merchant_org, provider_org)
    taken = Escalation.objects.live().order_by("pk").first()
    Escalation.objects.filter(pk=taken.pk).update(assignee=operator)
    client.force_login(operator)

    page = client.get(reverse("risks:escalations"), {"per_page": 100})
    rows = csv_rows(export(client, "risks:escalations"))

    shown = [row.record.pk for row in page.context["table"].paginated_rows]
    assert [int(pk) for pk in column(rows, ESCALATION)] == shown
    assert shown[-1] == taken.pk, "unassigned first, then taken"
