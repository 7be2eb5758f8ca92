"""The statements a list page sends are served by an index on PostgreSQL: the
worklist tab counts and the first page of each default list read the open
orders only, whatever the history of finished ones behind them.

The SQL is what the page really sent (captured during the request), explained
with sequential scans priced out, as they are on a table of a million orders:
a statement an index can serve is then planned on it."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.choices import OrderState
from orders.models import Order
from tests.factories import advance, new_order

S = OrderState


@pytest.fixture
def history(merchant_org, merchant2_org, provider_org, provider2_org, outsider_org):
    """A few open orders of the persona's organisations, beside many more
    open orders of other providers and many finished ones: the shape of a
    real table, where one provider's open work is a small part of the open
    orders, and its finished orders outnumber its open ones."""
    for state in (S.ARRIVED, S.SIGNED_IN, S.INSPECTED):
        advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=30)), state)
    others = [advance(new_order(merchant2_org, org), S.SIGNED_IN) for org in (provider2_org, outsider_org)]
    finished = new_order(merchant_org, provider_org)
    Order.objects.filter(pk=finished.pk).update(state=S.COMPLETED)
    finished.refresh_from_db()
    copies = []
    for i in range(2000):
        model = finished if i % 10 < 3 else others[i % 2]
        fields = {f.attname: getattr(model, f.attname) for f in Order._meta.concrete_fields if not f.primary_key}
        copies.append(Order(**{**fields, "order_no": f"PO-COPY-{i}"}))
    Order.objects.bulk_create(copies)
    with connection.cursor() as cursor:
        # Earlier tests' rows, rolled back, leave the indexes' pages behind
        # (a live table's vacuum would reclaim them), and the planner prices
        # an index by its pages: rebuilt within this test's transaction, they
        # are the size these rows make them.
        cursor.execute("REINDEX TABLE orders_order")
        cursor.execute("ANALYZE orders_order")


def sent(client, url, marker):
    """The one statement of the page at ``url`` that contains ``marker``."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    matching = [q["sql"] for q in queries.captured_queries if marker in q["sql"]]
    assert len(matching) == 1, matching
    return matching[0]


def plan(sql):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
def test_the_worklist_tab_counts_read_the_open_work_index_alone(postgres, client, personas, history):
    client.force_login(personas["provider"])
    sql = sent(client, reverse("orders:worklist", args=["to-appraise"]), 'AS "blocked"')
    text = plan(sql)
    # The provider's open orders, from an index over open orders only: the
    # covering one (read alone once the table's pages are all visible), or
    # the lists' one when the planner reckons the pages must be read anyway.
    assert "order_provider_work" in text or "order_provider_open" in text, text
    assert "Seq Scan" not in text, text


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("persona", "index"), [("provider", "order_provider_open"), ("merchant", "order_merchant_open")]
)
def test_the_default_list_reads_its_first_page_in_order_from_an_index(
    postgres, client, personas, history, persona, index
):
    client.force_login(personas[persona])
    sql = sent(client, reverse("orders:list"), 'ORDER BY "orders_order"."auto_confirm_at"')
    text = plan(sql)
    assert f"Index Scan using {index}" in text, text
    assert "Sort Key: orders_order.auto_confirm_at" not in text, text


@pytest.mark.postgres
@pytest.mark.parametrize("persona", ["provider", "merchant", "operator"])
def test_the_filter_forms_choices_are_one_plain_query(postgres, client, personas, history, persona):
    # Not a server-side cursor (DECLARE, FETCH, CLOSE) for a handful of organisations.
    client.force_login(personas[persona])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("orders:list"))
    assert response.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("DECLARE", "FETCH", "CLOSE"))]
    assert 'value="M-1"' in response.content.decode() or persona == "merchant"
