import logging

from celery import shared_task

from portal import delivery, digest

logger = logging.getLogger(__name__)


@shared_task(name="portal.tasks.deliver_due")
def deliver_due():
    """Send the notifications that are due (new, retries, rows a dead worker left)."""
    return delivery.deliver_due()


@shared_task(name="portal.tasks.send_daily_digest")
def send_daily_digest():
    """The 09:00 (Asia/Shanghai) digest of open and overdue cases and money at risk."""
    return digest.send_daily_digest()
