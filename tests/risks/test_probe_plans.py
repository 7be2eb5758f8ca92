"""Open orders are asked for as the open orders' indexes hold them
(``orders.models.OPEN_ORDERS``: in none of the terminal states), so that on
PostgreSQL the planner matches a query to those indexes in a few
comparisons. Explained with sequential scans priced out, as they are on a
table of a million orders."""

import pytest
from django.db import connection
from django.utils import timezone

from orders.choices import OPEN_STATES, OrderState
from orders.models import OPEN_ORDERS, Order
from risks import rules
from risks.choices import Rule
from risks.models import RiskSettings
from tests.factories import advance, new_order

S = OrderState
OPEN_ORDER_INDEXES = {index.name for index in Order._meta.indexes if index.condition == OPEN_ORDERS}


def test_the_open_orders_indexes_and_queries_say_open_the_same_way():
    assert len(OPEN_ORDER_INDEXES) == 7
    for index in Order._meta.indexes:
        # No index lists the open states one by one.
        assert "state__in" not in str(index.condition) or sorted(OPEN_STATES) != sorted(
            dict(index.condition.children).get("state__in", [])
        ), index.name
    assert Order.objects.open().query.where == Order.objects.filter(OPEN_ORDERS).query.where


def plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def orders(merchant_org, provider_org):
    for state in (S.ARRIVED, S.SIGNED_IN, S.PACKED):
        advance(new_order(merchant_org, provider_org), state)
    finished = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    Order.objects.filter(pk=finished.pk).update(state=S.COMPLETED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")


@pytest.mark.postgres
def test_the_deadline_probe_reads_an_open_orders_index(postgres, orders):
    ctx = rules.Context.build(timezone.now(), RiskSettings.current())
    (part,) = rules.RULES[Rule.DEADLINE_AT_RISK].probe(ctx)
    used = plan(part.values("pk")[:1])
    assert any(f"using {name} " in used for name in OPEN_ORDER_INDEXES), used


@pytest.mark.postgres
def test_a_providers_open_orders_are_read_from_an_open_orders_index(postgres, orders, provider_org):
    used = plan(Order.objects.open().filter(provider=provider_org).order_by("auto_confirm_at", "id")[:50])
    assert any(f"using {name} " in used for name in OPEN_ORDER_INDEXES), used


def test_an_order_cannot_hold_a_state_the_workflow_does_not_know(merchant_org, provider_org):
    from django.db import IntegrityError, transaction

    order = new_order(merchant_org, provider_org)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(state="lost_in_the_post")
    # So the open orders, said as "in no terminal state", are exactly those in an open one.
    assert list(Order.objects.open()) == list(Order.objects.filter(state__in=sorted(OPEN_STATES)))
