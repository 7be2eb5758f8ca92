"""Redis is a helper, not a gate (docs/reliability.md, "Redis stopped or frozen").

The drill points the portal's cache and broker at a Redis of its own, then
stops it and freezes it while the API and the carrier webhook serve: no
answer is a 5xx, each comes within a second, and every accepted scan is
applied from PostgreSQL. Rate limits count atomically, fall back to a
per-process count when the cache fails, and come back to Redis after it.
"""

import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from orders.api.views import CarrierThrottle
from orders.choices import Action, OrderState, ScanOutcome
from orders.models import CarrierScan, OrderEvent
from portal import notify
from portal.api_auth import WindowRateThrottle
from portal.models import CarrierIntegration
from tests.conftest import unavailable
from tests.factories import advance, new_order

S = OrderState
SECRET = "carrier-secret-for-the-drill"
# Seconds, for every call while Redis is down or frozen (a time-out costs 0.5 s;
# the rest is head-room for a busy two-core machine running the suite at once).
ANSWER_WITHIN = 3.0
# The schema takes a few tenths of a second to build with or without Redis:
# for it the bound is on what the outage adds to its time with Redis up.
ADDED_AT_MOST = 2.5
BREAKER = 0.3  # the drill shortens the pause after a Redis failure, to stay quick

logger = logging.getLogger(__name__)


class Drill:
    """Sends the traffic of the drill and keeps its figures."""

    def __init__(self, api, key, orders):
        self.api = api.as_key(key)
        self.key = key
        self.orders = list(orders)
        self.sent = 0
        self.answers = []  # (phase, what, status, seconds)

    def _timed(self, phase, what, call):
        started = time.monotonic()
        response = call()
        self.answers.append((phase, what, response.status_code, time.monotonic() - started))
        return response

    def api_calls(self, phase):
        self.api.credentials(HTTP_AUTHORIZATION=f"Token {self.key}")
        self._timed(phase, "order list", lambda: self.api.get("/api/v1/orders/?page_size=5"))
        self._timed(phase, "schema", lambda: self.api.get("/api/schema/"))

    def scan_next(self, phase):
        order = self.orders[self.sent]
        self.sent += 1
        events = [
            {
                "carrier": "SF",
                "tracking_no": order.inbound_tracking_no,
                "status": "delivered",
                "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
            }
        ]
        raw = json.dumps({"events": events}).encode()
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        self.api.credentials()
        response = self._timed(
            phase,
            "carrier webhook",
            lambda: self.api.generic(
                "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
            ),
        )
        assert response.status_code == 200, response.content

    def kick(self, phase):
        started = time.monotonic()
        notify.kick()
        self.answers.append((phase, "enqueue", 0, time.monotonic() - started))

    def serve(self, phase, rounds=2):
        for _ in range(rounds):
            self.api_calls(phase)
            self.scan_next(phase)
            self.kick(phase)

    def slowest(self, phase, what=None):
        return max(s for p, w, _, s in self.answers if p == phase and (what is None or w == what))

    def too_slow(self, phase):
        """The calls of ``phase`` over their bound."""
        schema_up = self.slowest("up", "schema")
        return [
            (w, round(s, 3))
            for p, w, _, s in self.answers
            if p == phase and s >= (schema_up + ADDED_AT_MOST if w == "schema" else ANSWER_WITHIN)
        ]


@pytest.fixture
def pg(transactional_db):
    # Committed transactions, as in production: the enqueue runs on commit.
    if connection.vendor != "postgresql":
        unavailable("PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def quick_breakers(monkeypatch, settings):
    settings.NOTIFY_ENQUEUE = True
    monkeypatch.setattr(WindowRateThrottle, "CACHE_PAUSE", BREAKER)
    monkeypatch.setattr(WindowRateThrottle, "_cache_down_until", 0.0)
    monkeypatch.setattr(notify, "KICK_PAUSE_SECONDS", BREAKER)
    monkeypatch.setattr(notify, "_kick_paused_until", 0.0)


def _queued_messages(server) -> int:
    """Messages waiting in any Celery queue of ``server`` (whatever the routing)."""
    client = server.client()
    return sum(client.llen(key) for key in client.scan_iter() if client.type(key) == b"list")


def _throttle_counts(server) -> int:
    client = server.client()
    return sum(int(client.get(key) or 0) for key in client.scan_iter("*throttle_*"))


def test_the_api_and_the_webhook_serve_while_redis_is_stopped_or_frozen(
    pg, portal_on, quick_breakers, api, keys, merchant_org, provider_org
):
    server = portal_on
    CarrierIntegration.objects.create(name="drill", secret=SECRET, carrier_codes="SF")
    orders = [advance(new_order(merchant_org, provider_org), S.INBOUND) for _ in range(8)]
    drill = Drill(api, keys["merchant"], orders)

    # Up: the limits are counted in this Redis, and nudges reach its queue.
    drill.serve("up", rounds=1)
    assert _throttle_counts(server) >= 3
    assert _queued_messages(server) >= 1

    # Stopped: connections are refused.
    server.stop()
    drill.serve("stopped")

    # Frozen: connections hang, which only the time-outs end.
    server.start()
    time.sleep(BREAKER)
    server.freeze()
    frozen_at = time.monotonic()
    drill.serve("frozen")
    frozen_for = time.monotonic() - frozen_at

    # Back: limits are counted in Redis again as soon as the pause ends.
    server.thaw()
    thawed_at = time.monotonic()
    before = _throttle_counts(server)
    while _throttle_counts(server) == before and time.monotonic() - thawed_at < 5:
        drill.api_calls("back")
        time.sleep(0.05)
    recovered_in = time.monotonic() - thawed_at
    drill.scan_next("back")

    statuses = [status for _, what, status, _ in drill.answers if what != "enqueue"]
    assert all(status < 500 for status in statuses), drill.answers
    assert all(status == 200 for status in statuses), drill.answers
    for phase in ("stopped", "frozen", "back"):
        assert not drill.too_slow(phase), (phase, drill.answers)
    assert recovered_in < 4, recovered_in

    # Every accepted scan was applied at once, from PostgreSQL, exactly once.
    scans = CarrierScan.objects.filter(tracking_no__in=[o.inbound_tracking_no for o in orders[: drill.sent]])
    assert scans.count() == drill.sent
    assert set(scans.values_list("outcome", flat=True)) == {ScanOutcome.APPLIED}
    for order in orders[: drill.sent]:
        order.refresh_from_db()
        assert order.state == S.ARRIVED
        assert OrderEvent.objects.filter(order=order, action=Action.CARRIER_DELIVERY).count() == 1

    figures = {
        phase: f"{sum(1 for a in drill.answers if a[0] == phase)} calls, slowest {drill.slowest(phase):.3f} s"
        for phase in ("up", "stopped", "frozen", "back")
    }
    logger.warning(
        "redis drill: %s; frozen for %.2f s; limits back in Redis %.2f s after the thaw; scans %d sent, %d applied",
        figures,
        frozen_for,
        recovered_in,
        drill.sent,
        scans.count(),
    )


def test_seven_hundred_concurrent_requests_count_seven_hundred_in_redis(pg, portal_on, monkeypatch):
    monkeypatch.setattr(CarrierThrottle, "THROTTLE_RATES", {"carrier": "650/day"})
    request = SimpleNamespace(META={"REMOTE_ADDR": "192.0.2.10"})

    def one(_):
        return CarrierThrottle().allow_request(request, None)

    with ThreadPoolExecutor(max_workers=32) as pool:
        allowed = list(pool.map(one, range(700)))

    assert sum(allowed) == 650
    assert _throttle_counts(portal_on) == 700


def test_a_failing_cache_counts_in_the_process_and_warns_once(monkeypatch, caplog):
    """No service needed: a cache that raises stands in for a dead Redis."""

    class Broken:
        def add(self, *args, **kwargs):
            raise ConnectionError("redis is down")

        incr = add

    monkeypatch.setattr("portal.api_auth.cache", Broken())
    monkeypatch.setattr(WindowRateThrottle, "_cache_down_until", 0.0)
    monkeypatch.setattr(WindowRateThrottle, "_warned_at", -1e9)
    monkeypatch.setattr(CarrierThrottle, "THROTTLE_RATES", {"carrier": "3/day"})
    request = SimpleNamespace(META={"REMOTE_ADDR": "192.0.2.11"})

    with caplog.at_level(logging.WARNING, logger="portal.api_auth"):
        allowed = [CarrierThrottle().allow_request(request, None) for _ in range(5)]

    assert allowed == [True, True, True, False, False]
    assert len([r for r in caplog.records if "rate limit cache unavailable" in r.message]) == 1


def test_concurrent_requests_count_exactly_in_the_local_cache(monkeypatch):
    monkeypatch.setattr(CarrierThrottle, "THROTTLE_RATES", {"carrier": "150/day"})
    request = SimpleNamespace(META={"REMOTE_ADDR": "192.0.2.12"})
    cache.clear()
    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = list(pool.map(lambda _: CarrierThrottle().allow_request(request, None), range(200)))
    assert sum(allowed) == 150


def test_a_window_is_counted_in_redis_and_expires(redis_url):
    from django.core.cache.backends.redis import RedisCacheClient

    from portal.api_auth import _counted

    if not isinstance(getattr(cache, "_cache", None), RedisCacheClient):
        unavailable("the cache in Redis (set REDIS_URL)")
    key = f"throttle_test:{time.monotonic_ns()}"
    assert [_counted(key, 61) for _ in range(3)] == [1, 2, 3]
    # Read back through the cache as any integer it stores, under its own key.
    assert cache.get(key) == 3
    assert 0 < cache._cache.get_client().ttl(cache.make_key(key)) <= 61
    assert _counted(key, 61) == 4
