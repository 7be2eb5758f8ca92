"""``/health/`` for load balancers and monitors, built on django-health-check.

The page answers 200 when every check passes and 503 when one fails (the
library answers 500; 503 says "take me out of rotation" without looking like
a crash). Checks: the database, the cache, a connection to the Celery broker
(not a worker ping, which waits a whole time-out for replies), and the age of
beat's heartbeat, which a worker records on the ``deadlines`` queue.
"""

import dataclasses
import datetime

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView, MediaType

from portal.models import Heartbeat

BEAT = "beat"


def record_heartbeat(name: str = BEAT, now=None) -> None:
    """Store ``now`` as the latest heartbeat of ``name`` (one row, overwritten)."""
    Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": now or timezone.now()})


async def heartbeat_age(name: str = BEAT, now=None) -> datetime.timedelta | None:
    """How long ago ``name`` last beat; None when it never did."""
    # The async ORM runs in the request's own thread and connection, not in a pool thread.
    beat_at = await Heartbeat.objects.filter(name=name).values_list("beat_at", flat=True).afirst()
    return None if beat_at is None else (now or timezone.now()) - beat_at


@dataclasses.dataclass
class BeatHeartbeat(HealthCheck):
    """Red when beat's heartbeat is older than BEAT_HEARTBEAT_STALE_AFTER periods, or missing."""

    async def run(self):
        limit = datetime.timedelta(seconds=settings.BEAT_HEARTBEAT_SECONDS * settings.BEAT_HEARTBEAT_STALE_AFTER)
        age = await heartbeat_age()
        if age is None:
            raise ServiceUnavailable("no beat heartbeat recorded yet")
        if age > limit:
            raise ServiceUnavailable(
                f"beat heartbeat is {int(age.total_seconds())} s old (limit {int(limit.total_seconds())} s)"
            )


@dataclasses.dataclass
class Broker(HealthCheck):
    """Red when a connection to the Celery broker cannot be made at once."""

    timeout = datetime.timedelta(seconds=2)

    def run(self):
        from portal.celery import app

        try:
            with app.connection_for_write() as connection:
                # One try, no retry loop: the transport's own short time-outs apply.
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=1)
        except Exception as exc:  # kombu and redis raise many kinds; any of them means "not reachable"
            raise ServiceUnavailable(f"broker not reachable ({type(exc).__name__})") from exc


class HealthView(HealthCheckView):
    """The checks above; 503 instead of the library's 500 when one fails."""

    checks = (
        "health_check.checks.Database",
        "health_check.checks.Cache",
        Broker,
        BeatHeartbeat,
    )

    async def get(self, request, *args, **kwargs):
        try:
            list(MediaType.parse_header(request.headers.get("accept", "*/*")))
        except ValueError:
            # The library would raise on a malformed Accept header; answer plainly instead.
            return HttpResponse("Not Acceptable: malformed Accept header", status=406, content_type="text/plain")
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
        return response
