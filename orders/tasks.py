import logging

from celery import shared_task

from orders import carrier, durations, expiry

logger = logging.getLogger(__name__)


@shared_task(name="orders.tasks.apply_deadlines")
def apply_deadlines():
    """Beat's periodic run of the confirmation deadline (SPEC §2.1)."""
    totals = expiry.apply_deadlines()
    logger.info("confirmation deadlines applied: %(completed)d completed, %(auto_refunded)d auto-refunded", totals)
    return totals


@shared_task(name="orders.tasks.retry_pending_scans")
def retry_pending_scans():
    """Beat's periodic pass over carrier scans still waiting for their order."""
    applied = carrier.retry_pending()
    if applied:
        logger.info("%d waiting carrier scans applied", applied)
    return applied


@shared_task(name="orders.tasks.refresh_stage_durations")
def refresh_stage_durations():
    """Beat's periodic refresh of every provider's stage durations (``orders.durations``)."""
    rows = durations.refresh()
    logger.info("stage durations refreshed: %d provider stages", rows)
    return rows
