"""``manage.py seed_demo``: idempotent demo data in every state."""

import json

import pytest
from django.core.management import CommandError, call_command

from orders.choices import OrderState
from orders.events import replay_order, snapshot
from orders.models import Order
from portal import apikeys, demo
from portal.models import ApiKey, CarrierIntegration, Organisation, User
from risks.models import RiskCase


def test_seed_demo_creates_every_state_and_the_logins_and_is_idempotent(db, tmp_path, capsys):
    credentials = tmp_path / "demo.json"

    call_command("seed_demo", "--orders", "200", "--credentials", str(credentials))
    first = capsys.readouterr().out
    call_command("seed_demo", "--orders", "200", "--credentials", str(credentials))
    second = capsys.readouterr().out

    present = Order.objects.exclude(order_no__startswith="DEMO-H-")
    past = Order.objects.filter(order_no__startswith="DEMO-H-").count()
    assert present.count() == 200
    assert past == 2 * demo.HISTORY_ORDERS_PER_PROVIDER + 2 * len(demo.HISTORY_SPLITS)
    assert "200 new orders" in first and "0 new orders" in second
    assert f"History: {past} new finished orders" in first and "History: 0 new finished orders" in second
    # The sweep ran: a newcomer's first page already shows cases.
    assert RiskCase.objects.exists()
    assert "Risk sweep: opened " in first and "Risk sweep: opened 0," in second
    assert set(present.values_list("state", flat=True)) == set(OrderState.values)
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
    for order in [*present.order_by("pk")[:50], *Order.objects.filter(order_no__startswith="DEMO-H-")[:50]]:
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


def test_seed_demo_without_history_makes_only_the_present(db, capsys):
    call_command("seed_demo", "--orders", "20", "--history-days", "0")
    assert Order.objects.count() == 20
    assert not Order.objects.filter(order_no__startswith="DEMO-H-").exists()
    assert "History:" not in capsys.readouterr().out


def test_seed_demo_refuses_a_history_shorter_than_a_deadline(db):
    with pytest.raises(CommandError, match="--history-days"):
        call_command("seed_demo", "--orders", "20", "--history-days", "5")


def test_demo_keys_are_the_same_on_every_run_and_authenticate(db, tmp_path, monkeypatch):
    monkeypatch.delenv("DEMO_SECRET", raising=False)
    first, second = tmp_path / "first.json", tmp_path / "second.json"

    call_command("seed_demo", "--orders", "0", "--credentials", str(first))
    call_command("seed_demo", "--orders", "0", "--credentials", str(second))

    one, two = json.loads(first.read_text()), json.loads(second.read_text())
    assert one["api_keys"] == two["api_keys"]
    assert set(one["api_keys"]) == {"PLATFORM", "M-DEMO-1", "M-DEMO-2", "P-DEMO-1", "P-DEMO-2"}
    for code, raw in two["api_keys"].items():
        key = apikeys.check(raw)
        assert key is not None and key.organisation.code == code
    assert ApiKey.objects.filter(name="demo key", revoked_at__isnull=True).count() == 5
    assert one["carrier_webhook_secret"] == two["carrier_webhook_secret"]
    assert CarrierIntegration.objects.get(name="demo-carrier").secret == two["carrier_webhook_secret"]


def test_another_demo_secret_gives_other_keys_and_retires_the_old_ones(db, tmp_path, monkeypatch):
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    monkeypatch.delenv("DEMO_SECRET", raising=False)
    call_command("seed_demo", "--orders", "0", "--credentials", str(before))
    monkeypatch.setenv("DEMO_SECRET", "a-private-demo")
    call_command("seed_demo", "--orders", "0", "--credentials", str(after))

    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    assert old["api_keys"]["M-DEMO-1"] != new["api_keys"]["M-DEMO-1"]
    assert apikeys.check(old["api_keys"]["M-DEMO-1"]) is None
    assert apikeys.check(new["api_keys"]["M-DEMO-1"]).organisation.code == "M-DEMO-1"
    assert old["carrier_webhook_secret"] != new["carrier_webhook_secret"]
