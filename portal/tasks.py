import logging

from celery import shared_task

from portal import dashboard, delivery, digest, health

logger = logging.getLogger(__name__)


@shared_task(name="portal.tasks.deliver_due")
def deliver_due():
    """Send the notifications that are due (new, retries, rows a dead worker left)."""
    return delivery.deliver_due()


@shared_task(name="portal.tasks.send_daily_digest")
def send_daily_digest():
    """The 09:00 (Asia/Shanghai) digest of open and overdue cases and money at risk."""
    return digest.send_daily_digest()


@shared_task(name="portal.tasks.record_beat_heartbeat")
def record_beat_heartbeat():
    """Beat's heartbeat, read by ``/health/``: proof that beat, the broker and a worker run."""
    health.record_heartbeat()


@shared_task(name="portal.tasks.refresh_dashboard_tallies")
def refresh_dashboard_tallies():
    """Beat's periodic count of the open orders and duplicate fees the dashboard reads (``orders.tallies``)."""
    rows = dashboard.refresh_tallies()
    logger.info("dashboard tallies refreshed: %(open)d open-order rows, %(fees)d duplicate-fee rows", rows)
    return rows
