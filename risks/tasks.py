import logging

from celery import shared_task

from risks import sweep

logger = logging.getLogger(__name__)


@shared_task(name="risks.tasks.run_sweep")
def run_sweep():
    """Beat's periodic risk sweep (SPEC §3). Safe to run on several workers at once."""
    summary = sweep.run_sweep()
    return {"opened": summary.opened, "resolved": summary.resolved, "escalated": summary.escalated}
