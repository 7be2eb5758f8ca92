"""Times read from PostgreSQL by psycopg's compiled loader (``portal.pgtimes``)
are the times Django's own loader reads."""

import datetime

import pytest
from django.db import connection, connections
from django.test import override_settings

from orders.models import Order
from portal import pgtimes
from tests.factories import new_order

pytestmark = pytest.mark.usefixtures("postgres")

TIMES = [
    "2026-11-30 18:00:00+00",
    "2026-01-01 12:00:00.123456+08",
    "2026-03-29 01:59:59.999999+00",
    "1969-12-31 23:59:59.5-03:30",
    "1900-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2000-02-29 12:00:00+05:45",
]


def _read(cursor):
    cursor.execute(
        "SELECT t::timestamptz FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n", [[*TIMES, None]]
    )
    return [row[0] for row in cursor.fetchall()]


def test_a_connection_in_utc_reads_times_as_djangos_loader_does():
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    with connection.cursor() as cursor:
        compiled = _read(cursor)
        assert cursor.cursor.adapters.get_loader(1184, 0) is pgtimes.UtcTimes
        register_tzloader(connection.timezone, cursor.cursor)
        djangos = _read(cursor)
    assert compiled == djangos
    assert compiled[-1] is None
    assert compiled[1] == datetime.datetime(2026, 1, 1, 4, 0, 0, 123456, tzinfo=datetime.UTC)
    for value in compiled[:-1]:
        assert value.tzinfo is datetime.UTC
    assert [v.isoformat() for v in compiled[:-1]] == [v.isoformat() for v in djangos[:-1]]


def test_an_order_keeps_its_times_to_the_microsecond(provider_org, merchant_org):
    paid = datetime.datetime(2026, 5, 17, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    order = new_order(merchant_org, provider_org, paid_at=paid)
    read = Order.objects.get(pk=order.pk)
    assert read.paid_at == paid
    assert read.paid_at.tzinfo is datetime.UTC
    assert read.auto_confirm_at == order.auto_confirm_at


@override_settings(USE_TZ=False)
def test_without_time_zone_support_djangos_loader_stays():
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            assert cursor.cursor.adapters.get_loader(1184, 0) is not pgtimes.UtcTimes
            cursor.execute("SELECT '2026-01-01 12:00:00+00'::timestamptz")
            assert cursor.fetchone()[0].tzinfo is None
    finally:
        other.close()
