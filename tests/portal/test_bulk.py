"""Writing many rows at once: the same outcome on PostgreSQL (COPY) and elsewhere."""

from decimal import Decimal

import pytest
from django.utils import timezone

from portal import bulk
from portal.models import EmailStatus, Notification, NotificationKind
from risks.models import CaseEvent, RiskCase


@pytest.fixture(params=[True, False], ids=["streamed", "bulk_create"], autouse=True)
def stream(request, monkeypatch):
    """Both ways of writing (on PostgreSQL; elsewhere both are bulk_create)."""
    real = bulk.insert
    monkeypatch.setattr(bulk, "insert", lambda *args, **kwargs: real(*args, **kwargs, stream=request.param))


def test_rows_land_with_their_defaults_and_a_repeated_key_is_skipped(merchant):
    now = timezone.now()
    fields = ["recipient_id", "kind", "key", "context", "link", "created_at", "email_status"]
    kind = NotificationKind.CASE_OPENED
    rows = [
        (merchant.pk, kind, "case_opened:1", {"order_no": "O1", "money": "¥1"}, "/a/", now, "off"),
        (merchant.pk, kind, "case_opened:2", {"nested": [1, {"x": None}]}, "/b/", now, "off"),
        (merchant.pk, kind, "case_opened:1", {"order_no": "again"}, "/c/", now, "off"),
    ]

    bulk.insert(Notification, fields, rows)
    bulk.insert(Notification, fields, rows[:1])  # a second time in another statement: nothing new

    stored = {n.key: n for n in Notification.objects.all()}
    assert set(stored) == {"case_opened:1", "case_opened:2"}
    first = stored["case_opened:1"]
    assert first.context == {"order_no": "O1", "money": "¥1"} and first.link == "/a/"
    assert stored["case_opened:2"].context == {"nested": [1, {"x": None}]}
    assert first.attempts == 0 and first.last_error == "" and first.read_at is None
    assert first.email_status == EmailStatus.OFF and first.created_at == now


def test_money_times_and_model_defaults_of_a_case(order):
    now = timezone.now()
    fields = ["rule", "subject", "order_id", "trade_no", "sku", "owner_id", "severity", "due_at", "money_at_risk"]
    row = ("stalled", f"order:{order.pk}", order.pk, "T", "S", order.provider_id, "high", now, Decimal("1234.50"))
    with pytest.raises(ValueError, match="opened_at"):
        bulk.insert(RiskCase, fields, [row])
    bulk.insert(RiskCase, [*fields, "opened_at"], [(*row, now)])
    case = RiskCase.objects.get()
    assert case.money_at_risk == Decimal("1234.50") and case.due_at == now
    assert case.status == "open" and case.details == {} and case.note == "" and case.updated_at is not None
    bulk.insert(CaseEvent, ["case_id", "kind", "at"], [(case.pk, "opened", now)])
    assert CaseEvent.objects.get().case == case
    bulk.insert(CaseEvent, ["case_id", "kind", "at"], [])  # nothing to write is fine
