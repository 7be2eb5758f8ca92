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
    monkeypatch.setattr(bulk, "insert", lambda *args, **kwargs: real(*args, **{"stream": request.param, **kwargs}))


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


def _cases_of(order, provider, now, subjects):
    fields = ["rule", "subject", "order_id", "trade_no", "sku", "owner_id", "severity", "due_at", "opened_at"]
    return fields, [("stalled", s, order.pk, "T", "S", provider.pk, "medium", now, now) for s in subjects]


def test_the_rows_written_come_back_and_a_refused_one_does_not(order):
    now = timezone.now()
    fields, rows = _cases_of(order, order.provider, now, ["a", "b"])
    first = bulk.insert(RiskCase, fields, rows[:1], returning=("id", "subject"))
    assert first == [(RiskCase.objects.get(subject="a").pk, "a")]

    # "a" is live already (one live case per rule and subject); rows may come as a generator.
    again = bulk.insert(RiskCase, fields, (row for row in rows), returning=("subject",))
    assert again == [("b",)]
    assert bulk.insert(RiskCase, fields, [], returning=("id",)) == []


def test_a_condition_on_the_new_row_leaves_it_out(order):
    now = timezone.now()
    fields, rows = _cases_of(order, order.provider, now, ["a", "b", "c"])
    unless = ("staged.subject = %s", ["b"])
    written = bulk.insert(RiskCase, fields, rows, returning=("subject",), unless=unless)
    assert sorted(written) == [("a",), ("c",)]
    assert set(RiskCase.objects.values_list("subject", flat=True)) == {"a", "c"}


def test_each_row_written_gets_its_row_of_another_table(order):
    now = timezone.now()
    fields, rows = _cases_of(order, order.provider, now, ["a", "b"])
    bulk.insert(RiskCase, fields, rows[:1])
    then = (CaseEvent, "case", {"kind": "opened", "at": now})
    written = bulk.insert(RiskCase, fields, rows, returning=("subject",), then=then)

    assert written == [("b",)]  # the key is not given back unless asked for
    (event,) = CaseEvent.objects.all()
    assert event.case.subject == "b" and event.kind == "opened" and event.at == now
    assert event.note == "" and event.actor_user is None


def test_one_row_per_id_in_their_order_with_defaults(order):
    now = timezone.now()
    fields, rows = _cases_of(order, order.provider, now, ["a", "b", "c"])
    ids = [pk for (pk,) in bulk.insert(RiskCase, fields, rows, returning=("id",))]
    chosen = sorted(ids, reverse=True)
    bulk.insert_each(CaseEvent, "case", chosen, kind="escalated", note="why", at=now)
    bulk.insert_each(CaseEvent, "case", [], kind="escalated", at=now)  # nothing to write is fine

    events = list(CaseEvent.objects.order_by("pk").values_list("case_id", "kind", "note", "at", "actor_user"))
    assert events == [(pk, "escalated", "why", now, None) for pk in chosen]


def test_many_ids_are_one_parameter(order):
    now = timezone.now()
    fields, rows = _cases_of(order, order.provider, now, [f"s{i}" for i in range(1500)])
    ids = [pk for (pk,) in bulk.insert(RiskCase, fields, rows, returning=("id",))]
    chosen = ids[::2]
    assert RiskCase.objects.filter(pk__in=bulk.among(chosen)).count() == len(chosen)
    assert len(bulk.among(chosen).params) == 1


def test_appended_rows_land_whole_or_not_at_all(order):
    from django.db import IntegrityError, transaction

    from orders.models import OrderEvent
    from orders.workflow import _EVENT_COLUMNS

    now = timezone.now()
    payload = {"changes": {"state": "outbound", "quoted": 'a "b" \\ c\tλ'}, "params": {"tracking_no": "SF1"}}

    columns = [name for name in _EVENT_COLUMNS if name != "recorded_at"]  # set when written

    def event(seq):
        return (order.pk, seq, "carrier_pickup", "carrier", None, None, "waybill_printed", "outbound", payload, now)

    with pytest.raises(ValueError, match="to_state"):
        bulk.append(OrderEvent, [name for name in columns if name != "to_state"], [event(90)[:7] + event(90)[8:]])
    bulk.append(OrderEvent, columns, (event(seq) for seq in (90, 91)))
    stored = list(OrderEvent.objects.filter(seq__gte=90).order_by("seq"))
    assert [e.seq for e in stored] == [90, 91]
    assert stored[0].payload == payload and stored[0].occurred_at == now and stored[0].recorded_at >= now
    assert stored[0].actor_user_id is None and stored[0].to_state == "outbound"
    # A row the unique (order, seq) refuses fails the whole statement.
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.append(OrderEvent, columns, [event(92), event(91)])
    assert not OrderEvent.objects.filter(seq=92).exists()
