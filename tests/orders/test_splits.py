"""The merchant's answer for a split group, on the orders' side (SPEC §3, split_order)."""

import pytest
from django.urls import reverse

from orders import errors, splits, workflow
from orders.choices import Action, OrderState, SplitChoice
from orders.events import replay_order, snapshot
from orders.models import Order, OrderEvent, SplitGroup
from portal.choices import EventSource
from tests.factories import advance, new_order

S = OrderState


@pytest.fixture
def group(merchant_org, provider_org, platform):
    return [
        advance(new_order(merchant_org, provider_org, trade_no="T-S", sku="SKU-S"), state)
        for state in (S.SIGNED_IN, S.AWAITING_SHIPMENT, S.REFUNDED)
    ]


def test_choosing_writes_one_event_on_every_order_of_the_group(group, merchant):
    versions = {order.pk: order.version for order in group}

    chosen = splits.choose("T-S", "SKU-S", SplitChoice.KEEP_NOT_REQUIRED, workflow.Actor.of_user(merchant))

    assert (chosen.choice, chosen.chosen_by) == ("B", merchant)
    assert SplitGroup.objects.get(trade_no="T-S", sku="SKU-S").chosen_at == chosen.chosen_at
    for order in group:
        order.refresh_from_db()
        assert order.version == versions[order.pk] + 1
        event = OrderEvent.objects.get(order=order, seq=order.version)
        assert event.action == Action.SPLIT_CHOICE
        assert (event.from_state, event.to_state) == (order.state, order.state)
        assert (event.actor_user, event.actor_organisation, event.source) == (merchant, merchant.organisation, "web")
        assert event.payload == {"changes": {}, "params": {"choice": "B"}}
        assert event.occurred_at == chosen.chosen_at
        # The log still rebuilds the order: the choice changes none of its fields.
        assert replay_order(order) == snapshot(order)


def test_a_second_choice_is_recorded_again(group, merchant_org):
    actor = workflow.Actor.of_organisation(merchant_org, EventSource.API)
    splits.choose("T-S", "SKU-S", SplitChoice.KEEP_NOT_REQUIRED, actor)
    splits.choose("T-S", "SKU-S", SplitChoice.REFUND_AND_REBUY, actor)

    first = Order.objects.get(pk=group[0].pk)
    choices = first.events.filter(action=Action.SPLIT_CHOICE).order_by("seq")
    assert [e.payload["params"]["choice"] for e in choices] == ["B", "A"]
    assert SplitGroup.objects.get(trade_no="T-S").choice == "A"


@pytest.mark.parametrize(
    ("who", "choice", "refusal"),
    [
        ("merchant", "C", errors.InvalidInput),
        ("provider", "A", errors.NotAllowed),
        ("operator", "A", errors.NotAllowed),
        ("merchant2", "A", Order.DoesNotExist),
    ],
)
def test_only_the_groups_merchant_chooses_a_or_b_and_a_refusal_writes_nothing(group, personas, who, choice, refusal):
    before = OrderEvent.objects.count()
    with pytest.raises(refusal):
        splits.choose("T-S", "SKU-S", choice, workflow.Actor.of_user(personas[who]))
    assert OrderEvent.objects.count() == before
    assert SplitGroup.objects.get(trade_no="T-S").choice == ""


def test_a_group_whose_orders_are_all_finished_has_nothing_left_to_choose(merchant_org, provider_org, platform):
    for _n in range(2):
        advance(new_order(merchant_org, provider_org, trade_no="T-DONE", sku="SKU-D"), S.REFUNDED)
    before = OrderEvent.objects.count()
    with pytest.raises(errors.InvalidTransition):
        splits.choose("T-DONE", "SKU-D", "A", workflow.Actor.of_organisation(merchant_org))
    assert OrderEvent.objects.count() == before


def test_the_workflow_does_not_take_a_split_choice_as_a_step(group, merchant_org):
    order = group[0]
    with pytest.raises(errors.InvalidInput):
        workflow.perform(order, Action.SPLIT_CHOICE, workflow.Actor.of_organisation(merchant_org), choice="A")
    order.refresh_from_db()
    assert not order.events.filter(action=Action.SPLIT_CHOICE).exists()


def test_the_order_timeline_says_what_the_merchant_chose(client, group, merchant):
    splits.choose("T-S", "SKU-S", SplitChoice.REFUND_AND_REBUY, workflow.Actor.of_user(merchant))
    client.force_login(merchant)

    page = client.get(reverse("orders:detail", args=[group[1].order_no])).content.decode()

    timeline = page[page.index('id="timeline"') :]
    assert "Merchant&#x27;s split-order choice" in timeline
    assert "The merchant chose: Refund and re-buy as normal orders" in timeline
