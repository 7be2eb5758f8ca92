"""A worker SIGKILLed in the middle of the risk sweep: after a fresh worker
runs the next sweep (as beat sends one every RISK_SWEEP_SECONDS), every case
exists exactly once — nothing lost, nothing doubled."""

import logging
import os
import signal
import subprocess
import time
from datetime import timedelta

import psycopg
import pytest
from django.db.models import Count
from django.utils import timezone

from orders.models import Order
from risks.choices import Rule
from risks.models import RiskCase
from risks.tasks import run_sweep
from tests.factories import new_order
from tests.integration.worker import database_url, queue_worker

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.django_db(transaction=True)
ORDERS = 150


def kill_outright(process):
    """SIGKILL a worker and its pool children at once: no warm shutdown, no requeue."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True).stdout
    for pid in [process.pid, *(int(p) for p in out.split())]:
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def sweep_waits(watcher) -> bool:
    """Whether another session of this database waits for a lock (the sweep, on the cases table)."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    return watcher.execute(query).fetchone()[0] > 0


def test_a_worker_killed_mid_sweep_loses_and_doubles_nothing(postgres, portal_on, merchant_org, provider_org):
    orders = [new_order(merchant_org, provider_org, deadline_in=timedelta(days=20)) for _ in range(ORDERS)]
    # Each has waited for the merchant's shipment far past its 48 h SLA: one `stalled` case each.
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(state_changed_at=timezone.now() - timedelta(hours=100))

    # Another session holds the cases table: the sweep evaluates its rules,
    # then waits to write, and is killed right there, inside its transaction.
    blocker = psycopg.connect(database_url())
    # Activity is read outside the blocker's transaction, which would see one frozen snapshot of it.
    watcher = psycopg.connect(database_url(), autocommit=True)
    try:
        blocker.execute(f"LOCK TABLE {RiskCase._meta.db_table} IN EXCLUSIVE MODE")
        with queue_worker("work", "deadlines,sweep,portal", portal_on.url) as (first, lines):
            run_sweep.apply_async()
            give_up = time.monotonic() + 15
            while time.monotonic() < give_up and not sweep_waits(watcher):
                time.sleep(0.05)
            waited = sweep_waits(watcher)
            kill_outright(first)
            killed_at = time.monotonic()
            finished_before_kill = any("run_sweep" in line and "succeeded" in line for line in lines)
    finally:
        blocker.rollback()
        blocker.close()
        watcher.close()
    opened_before_restart = RiskCase.objects.filter(rule=Rule.STALLED).count()

    with queue_worker("work", "deadlines,sweep,portal", portal_on.url) as (_second, lines):
        run_sweep.apply_async()  # the next beat sweep
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up and not any("run_sweep" in line and "succeeded" in line for line in lines):
            time.sleep(0.1)
        recovered_in = time.monotonic() - killed_at

    per_order = RiskCase.objects.filter(rule=Rule.STALLED).values("order").annotate(n=Count("pk"))
    logger.warning(
        "worker drill: killed mid-sweep (finished before the kill: %s), %d of %d cases open before the restart, "
        "%d after; recovered in %.1f s",
        finished_before_kill,
        opened_before_restart,
        ORDERS,
        len(per_order),
        recovered_in,
    )
    assert any("run_sweep" in line and "succeeded" in line for line in lines), "".join(lines)
    assert len(per_order) == ORDERS  # nothing lost
    assert {row["n"] for row in per_order} == {1}  # nothing doubled
    assert waited and not finished_before_kill, "the kill must come in the middle of the sweep"
