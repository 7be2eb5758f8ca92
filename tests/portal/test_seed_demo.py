"""``manage.py seed_demo``: idempotent demo data in every state."""

import json

from django.core.management import call_command

from orders.choices import OrderState
from orders.events import replay_order, snapshot
from orders.models import Order
from portal.models import Organisation, User


def test_seed_demo_creates_every_state_and_the_logins_and_is_idempotent(db, tmp_path, capsys):
    credentials = tmp_path / "demo.json"

    call_command("seed_demo", "--orders", "200", "--credentials", str(credentials))
    first = capsys.readouterr().out
    call_command("seed_demo", "--orders", "200", "--credentials", str(credentials))
    second = capsys.readouterr().out

    assert Order.objects.count() == 200
    assert "200 new orders" in first and "0 new orders" in second
    assert set(Order.objects.values_list("state", flat=True)) == set(OrderState.values)
    assert Order.objects.filter(flow_blocked=True).exists()
    groups = Order.objects.values_list("trade_no", "sku")
    assert len(set(groups)) < len(groups), "there are split groups"
    assert set(Organisation.objects.values_list("code", flat=True)) == {
        "PLATFORM",
        "M-DEMO-1",
        "M-DEMO-2",
        "P-DEMO-1",
        "P-DEMO-2",
    }
    for order in Order.objects.all()[:50]:
        assert replay_order(order) == snapshot(order)

    data = json.loads(credentials.read_text())
    kinds = {u["kind"] for u in data["users"]}
    assert kinds == {"platform", "merchant", "provider"}
    for login in data["users"]:
        user = User.objects.get(username=login["username"])
        assert user.check_password(login["password"])
        assert user.organisation.code == login["organisation"]
        assert login["username"] in first


def test_seed_demo_with_no_orders_makes_only_the_people(db):
    call_command("seed_demo", "--orders", "0")
    assert Order.objects.count() == 0
    assert User.objects.filter(username="operator").exists()
