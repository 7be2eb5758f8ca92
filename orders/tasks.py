import logging

from celery import shared_task

from orders import workflow

logger = logging.getLogger(__name__)


@shared_task(name="orders.tasks.apply_deadlines")
def apply_deadlines():
    """Beat's periodic run of the confirmation deadline (SPEC §2.1)."""
    totals = workflow.apply_deadlines()
    logger.info("confirmation deadlines applied: %(completed)d completed, %(auto_refunded)d auto-refunded", totals)
    return totals
