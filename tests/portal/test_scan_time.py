"""A carrier scan dated more than a day ahead is refused;
the webhook answers such a batch with 400 naming ``occurred_at``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import carrier, errors
from orders.choices import ScanStatus
from orders.models import CarrierScan


def record(occurred_at):
    return carrier.record_scan(
        carrier="SF", tracking_no="SF7000000001", status=ScanStatus.PICKED_UP, occurred_at=occurred_at
    )


@pytest.mark.parametrize("ahead", [timedelta(days=1, minutes=5), timedelta(days=365 * 70)])
def test_a_scan_dated_more_than_a_day_ahead_is_refused_on_its_field(db, ahead):
    with pytest.raises(errors.InvalidInput) as refused:
        record(timezone.now() + ahead)

    assert refused.value.http_status == 400
    assert list(refused.value.fields) == ["occurred_at"]
    assert not CarrierScan.objects.exists()


def test_a_carrier_clock_a_little_ahead_is_accepted(db):
    scan, created = record(timezone.now() + timedelta(hours=23))

    assert created and CarrierScan.objects.filter(pk=scan.pk).exists()
