"""Kept statements (``portal.kept``): the ORM's statement written once and
sent again with new values, or the ORM itself wherever that would not be
the same statement."""

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from orders.choices import OrderState
from orders.models import Order
from portal.kept import Kept
from tests.factories import advance, new_order

pytestmark = pytest.mark.django_db


def _by_number_and_state(order_no, state):
    return Order.objects.filter(order_no=order_no, state=state).annotate(merchant_code=F("merchant__code"))


def _as_values(trade_no, sku):
    return Order.objects.filter(trade_no=trade_no, sku=sku).order_by("pk").values("pk", "order_no", "state")


@pytest.fixture
def orders(merchant_org, provider_org):
    first = new_order(merchant_org, provider_org, trade_no="T-K")
    second = advance(new_order(merchant_org, provider_org, trade_no="T-K"), OrderState.INBOUND)
    return first, second


def test_a_kept_statement_reads_what_the_orm_reads(orders):
    kept = Kept(_by_number_and_state, (("kept-a", "kept-state-a"), ("kept-b", "kept-state-b")), model=Order)
    for order in orders:
        for state in (order.state, "inbound", "awaiting_shipment", "no such state"):
            got = kept.instances((order.order_no, state))
            expected = list(_by_number_and_state(order.order_no, state))
            assert [(o.pk, o.version, o.merchant_code) for o in got] == [
                (o.pk, o.version, o.merchant_code) for o in expected
            ]
    assert kept.statement() is not None
    with CaptureQueriesContext(connection) as queries:
        kept.instances((orders[1].order_no, "inbound"))
    assert len(queries) == 1


def test_values_come_back_named_as_values_names_them(orders):
    kept = Kept(_as_values, (("kept-trade-a", "kept-sku-a"), ("kept-trade-b", "kept-sku-b")))
    assert kept.rows(("T-K", "SKU-1")) == list(_as_values("T-K", "SKU-1"))
    assert kept.rows(("T-K", "SKU-1"))[0].keys() == {"pk", "order_no", "state"}
    assert kept.rows(("T-none", "SKU-1")) == []


def test_a_value_of_another_type_is_left_to_the_orm(merchant_org, provider_org):
    order = new_order(merchant_org, provider_org, trade_no="T-N")
    kept = Kept(
        lambda stage: Order.objects.filter(blocked_stage=stage).values("pk"), (("kept-stage-a",), ("kept-stage-b",))
    )
    assert kept.rows(("",)) == [{"pk": order.pk}]
    # None is IS NULL, another statement: the ORM writes that one (and finds nothing).
    assert kept.rows((None,)) == []


def test_what_depends_on_its_values_is_not_kept(orders):
    def shaped_by_value(order_no):
        queryset = Order.objects.filter(order_no=order_no)
        return queryset.filter(state="inbound") if order_no.endswith("b") else queryset

    kept = Kept(lambda n: shaped_by_value(n).values("pk"), (("kept-a",), ("kept-b",)))
    assert kept.rows((orders[0].order_no,)) == [{"pk": orders[0].pk}]
    assert kept.statement() is None

    # A constant equal to a sample could be taken for a value.
    kept = Kept(lambda n: Order.objects.filter(order_no=n, sku="SKU-1").values("pk"), (("SKU-1",), ("kept-b",)))
    assert kept.statement() is None
    assert kept.rows((orders[0].order_no,)) == [{"pk": orders[0].pk}]

    # A value the adapter turns into something else (an organisation into its id).
    kept = Kept(
        lambda org: Order.objects.filter(merchant=org).values("pk"),
        ((orders[0].merchant,), (orders[0].provider,)),
    )
    assert kept.statement() is None
    assert len(kept.rows((orders[0].merchant,))) == 2


def test_an_empty_scope_is_the_orms_to_answer(orders):
    kept = Kept(lambda n: Order.objects.none().filter(order_no=n).values("pk"), (("kept-a",), ("kept-b",)))
    assert kept.rows((orders[0].order_no,)) == []
    assert kept.statement() is None


def test_samples_must_differ():
    with pytest.raises(ValueError):
        Kept(_as_values, (("a", "b"), ("a", "c")))


def test_rows_are_converted_as_the_orm_converts_them(orders):
    def with_times_and_money(order_no):
        return Order.objects.filter(order_no=order_no).values(
            "pk", "amount", "paid_at", "flow_blocked", "provider__appraisal_fee", "provider__is_active"
        )

    kept = Kept(with_times_and_money, (("kept-a",), ("kept-b",)))
    for order in orders:
        assert kept.rows((order.order_no,)) == list(with_times_and_money(order.order_no))
    row = kept.rows((orders[0].order_no,))[0]
    assert type(row["amount"]) is type(orders[0].amount)
    assert row["paid_at"] == orders[0].paid_at
    assert kept.statement() is not None


def test_a_checked_key_carries_its_organisation_as_stored(provider_org):
    from portal import apikeys
    from portal.models import Organisation

    stored, raw = apikeys.issue(provider_org, "integration")
    key = apikeys.check(raw)
    assert key.pk == stored.pk and key.prefix == stored.prefix and key.created_at == stored.created_at
    fresh = Organisation.objects.get(pk=provider_org.pk)
    for field in Organisation._meta.concrete_fields:
        assert getattr(key.organisation, field.attname) == getattr(fresh, field.attname), field.name
    assert not key._state.adding and not key.organisation._state.adding
    assert apikeys.check(raw.replace(stored.prefix, "0" * len(stored.prefix))) is None


def test_a_kept_update_writes_what_save_writes(orders):
    from django.utils import timezone

    from portal.kept import updating

    update = updating(Order)
    order = orders[0]
    names = ("flow_blocked", "blocked_stage", "state_changed_at", "version")
    for stage, version in (("inbound", order.version + 1), ("outbound", order.version + 2)):
        when = timezone.now()
        assert update.execute((order.pk, True, stage, when, version), (names,)) == 1
        stored = Order.objects.get(pk=order.pk)
        assert (stored.flow_blocked, stored.blocked_stage, stored.state_changed_at, stored.version) == (
            True,
            stage,
            when,
            version,
        )
    assert Order.objects.get(pk=orders[1].pk).version == orders[1].version
    if connection.vendor == "postgresql":
        assert update.statement((names,)) is not None
