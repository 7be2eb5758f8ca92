"""A worker SIGKILLed in the middle of an import: another worker takes the
job over where the last committed batch left it, and every row is imported
exactly once."""

import time
import uuid

import pytest
from django.db.models import Count

from orders import imports
from orders.choices import ImportStatus
from orders.models import ImportJob, Order, OrderEvent
from tests.fault.test_worker_killed import kill_outright
from tests.integration.worker import queue_worker
from tests.orders.test_imports import as_csv, rows

pytestmark = pytest.mark.django_db(transaction=True)
ROWS = 12_000
WORKER_ENV = {"IMPORT_BATCH_ROWS": "200", "IMPORT_STALL_SECONDS": "2"}


def wait_for(condition, seconds, what):
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_import_is_taken_over_without_losing_or_repeating_a_row(
    postgres, redis_url, platform, merchant_org, provider_org
):
    job = imports.start(as_csv(rows(ROWS)), "orders.csv", organisation=platform, language="en")
    queue = f"test-import-{uuid.uuid4().hex[:8]}"

    def progress():
        return ImportJob.objects.values_list("done", "status").get(pk=job.pk)

    with queue_worker("first", queue, redis_url, **WORKER_ENV) as (first, lines):
        imports.run_import.apply_async((job.pk,), queue=queue)
        wait_for(lambda: progress()[0] >= 2_000, 120, "the first worker to be well into the import")
        kill_outright(first)
    done_at_kill, status = progress()
    assert status == ImportStatus.RUNNING and 0 < done_at_kill < ROWS, "".join(lines)
    assert done_at_kill % 200 == 0  # only whole batches were kept
    assert Order.objects.count() == done_at_kill  # and exactly their orders

    time.sleep(2.5)  # the killed worker's heartbeat goes stale
    with queue_worker("second", queue, redis_url, **WORKER_ENV) as (_second, lines):
        # What beat's resume_stalled sends for a job whose heartbeat stopped.
        assert list(ImportJob.objects.filter(pk=job.pk).values_list("status", flat=True)) == [ImportStatus.RUNNING]
        imports.run_import.apply_async((job.pk,), queue=queue)
        wait_for(lambda: progress()[1] == ImportStatus.DONE, 180, "the second worker to finish the import")

    job.refresh_from_db()
    assert (job.done, job.created, job.unchanged, job.refused, job.resumed) == (ROWS, ROWS, 0, 0, 1), "".join(lines)
    assert Order.objects.count() == ROWS
    assert OrderEvent.objects.count() == ROWS
    assert not OrderEvent.objects.values("order").annotate(n=Count("pk")).filter(n__gt=1).exists()
