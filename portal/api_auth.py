"""Who is calling the API: organisation API keys and the web session, the
permission every endpoint starts from, and the throttle per key. Kept apart
from ``portal.api`` because DRF imports these while it is starting."""

import logging
import threading
import time

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from portal import apikeys

logger = logging.getLogger(__name__)


class KeyPrincipal:
    """``request.user`` for a request made with an API key: the organisation acts, no person."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, key):
        self.key = key
        self.organisation = key.organisation
        self.organisation_id = key.organisation_id
        self.kind = key.organisation.kind
        self.username = f"key:{key.prefix}"

    def __str__(self):
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send “Authorization: Token <key>”."))
        key = apikeys.check(parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed(_("The API key is not valid or was revoked."))
        return KeyPrincipal(key), key

    def authenticate_header(self, request):
        return self.keyword


class HasOrganisation(BasePermission):
    """Authenticated, and acting for an organisation (the scope every endpoint needs)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "organisation_id", None))


def client_address(request) -> str:
    """The caller's address as the trusted proxies report it.

    ``X-Forwarded-For`` is read only when ``TRUSTED_PROXIES`` (DRF's
    ``NUM_PROXIES``) says how many proxies in front of the portal add to it,
    and then only the entry the nearest of them wrote: the rest is the
    client's to invent.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(proxies, len(hops))][:64]


class _LocalWindows:
    """Per-process counters used while the shared cache cannot be reached,
    so limits still hold (per process) instead of vanishing."""

    PRUNE_ABOVE = 10_000

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def incr(self, key: str, ends_at: float) -> int:
        """Count one request under ``key`` (which names its window); returns the count."""
        with self._lock:
            if len(self._counts) > self.PRUNE_ABOVE:
                # Finished windows are of no use; dropping them keeps a long
                # outage from growing the dict without end.
                now = time.time()
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            count = self._counts.get(key, (ends_at, 0))[1] + 1
            self._counts[key] = (ends_at, count)
            return count


def _counted(key: str, timeout: int) -> int:
    """Count one request under ``key`` in the cache; returns the count.

    On Redis, one round trip: the key made (at 0, expiring after
    ``timeout``) unless it is there, then incremented, as one transaction.
    Django's ``add`` and ``incr`` would be three (``incr`` asks first
    whether the key exists), each with a client of its own. Stored as the
    cache stores an integer, under the cache's own key."""
    redis_cache = getattr(cache, "_cache", None)
    if isinstance(redis_cache, RedisCacheClient):
        full_key = cache.make_and_validate_key(key)
        pipe = redis_cache.get_client(full_key, write=True).pipeline(transaction=True)
        pipe.set(full_key, 0, ex=timeout, nx=True)
        pipe.incr(full_key)
        return pipe.execute()[1]
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # the window's key expired between the two calls
        return 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)


class WindowRateThrottle(SimpleRateThrottle):
    """A fixed-window rate limit counted atomically in the cache.

    DRF's own throttles read a list of request times, append and write it
    back, so concurrent requests overwrite each other's count, and a cache
    error is a 500. Here each request is one atomic count on
    ``<scope>:<ident>:<window>`` (``_counted``). When the cache fails (Redis down or
    frozen: its calls time out within a fraction of a second) the limit is
    counted in this process instead, a warning is logged, and the cache is
    left alone for ``CACHE_PAUSE`` seconds so a frozen Redis is not waited
    for on every request.
    """

    CACHE_PAUSE = 5.0
    WARN_EVERY = 30.0
    _local = _LocalWindows()
    _cache_down_until = 0.0
    _warned_at = 0.0

    def get_ident(self, request):
        return client_address(request)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        key = f"{ident}:{window}"
        count = None
        if time.monotonic() >= WindowRateThrottle._cache_down_until:
            count = self._count_in_cache(key)
        self.window_ends = (window + 1) * self.duration
        if count is None:
            count = WindowRateThrottle._local.incr(key, self.window_ends)
        return count <= self.num_requests

    def _count_in_cache(self, key: str) -> int | None:
        try:
            return _counted(key, self.duration + 1)
        except Exception:  # any cache failure: count locally rather than refuse or fail
            now = time.monotonic()
            WindowRateThrottle._cache_down_until = now + self.CACHE_PAUSE
            if now - WindowRateThrottle._warned_at >= self.WARN_EVERY:
                WindowRateThrottle._warned_at = now
                logger.warning("rate limit cache unavailable; counting in this process for now", exc_info=True)
            return None

    def wait(self):
        return max(0.0, self.window_ends - self.now)


class KeyRateThrottle(WindowRateThrottle):
    """One budget per API key (or per person for session use)."""

    scope = "api"

    def get_cache_key(self, request, view):
        if isinstance(request.user, KeyPrincipal):
            ident = f"key:{request.user.key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the schema describes key authentication."""

    target_class = "portal.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`: an API key of your organisation, shown once when it is made.",
        }
