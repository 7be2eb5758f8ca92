"""Personas and service gates shared by every test.

The personas follow one story: two merchants, two providers, the platform's
operator, and an outsider whose organisation has nothing to do with any of
them.
"""

import os

import pytest
from django.db import connection

from portal.choices import OrganisationKind
from tests.factories import OrganisationFactory, UserFactory

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") == "1"


def unavailable(what):
    """Skip for a missing service or tool; under REQUIRE_SERVICES=1 (CI) fail instead."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available: a service this test needs (REQUIRE_SERVICES=1 fails instead)")


@pytest.fixture
def postgres(db):
    """Skip (or fail, under REQUIRE_SERVICES=1) unless the test database is PostgreSQL."""
    if connection.vendor != "postgresql":
        unavailable("PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def redis_url():
    """The Redis URL, or skip (fail under REQUIRE_SERVICES=1) when there is none reachable."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        unavailable("Redis (set REDIS_URL)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url} ({exc})")
    return url


@pytest.fixture
def platform(db):
    return OrganisationFactory(code="PLATFORM", name="Platform", kind=OrganisationKind.PLATFORM)


@pytest.fixture
def merchant_org(db):
    return OrganisationFactory(code="M-1", name="Merchant One", kind=OrganisationKind.MERCHANT)


@pytest.fixture
def merchant2_org(db):
    return OrganisationFactory(code="M-2", name="Merchant Two", kind=OrganisationKind.MERCHANT)


@pytest.fixture
def provider_org(db):
    return OrganisationFactory(code="P-1", name="Provider One", kind=OrganisationKind.PROVIDER)


@pytest.fixture
def provider2_org(db):
    return OrganisationFactory(
        code="P-2", name="Provider Two", kind=OrganisationKind.PROVIDER, appraisal_fee="45.00", logistics_fee="15.00"
    )


@pytest.fixture
def outsider_org(db):
    return OrganisationFactory(code="P-OUT", name="Unrelated Provider", kind=OrganisationKind.PROVIDER)


@pytest.fixture
def merchant(merchant_org):
    return UserFactory(username="alice", organisation=merchant_org)


@pytest.fixture
def merchant2(merchant2_org):
    return UserFactory(username="bob", organisation=merchant2_org)


@pytest.fixture
def provider(provider_org):
    return UserFactory(username="carol", organisation=provider_org)


@pytest.fixture
def provider2(provider2_org):
    return UserFactory(username="dave", organisation=provider2_org)


@pytest.fixture
def operator(platform):
    return UserFactory(username="olivia", organisation=platform)


@pytest.fixture
def outsider(outsider_org):
    return UserFactory(username="oscar", organisation=outsider_org)


@pytest.fixture
def personas(merchant, merchant2, provider, provider2, operator, outsider):
    return {
        "merchant": merchant,
        "merchant2": merchant2,
        "provider": provider,
        "provider2": provider2,
        "operator": operator,
        "outsider": outsider,
    }


@pytest.fixture
def order(merchant_org, provider_org, platform):
    """A fresh order of the first merchant, assigned to the first provider."""
    from tests.factories import new_order

    return new_order(merchant_org, provider_org)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle budgets and other cached state do not leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def english():
    """Tests read messages in English unless they switch language themselves."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def keys(platform, merchant_org, merchant2_org, provider_org, provider2_org, outsider_org):
    """An API key for every persona's organisation, by persona name."""
    from portal import apikeys

    orgs = {
        "platform": platform,
        "merchant": merchant_org,
        "merchant2": merchant2_org,
        "provider": provider_org,
        "provider2": provider2_org,
        "outsider": outsider_org,
    }
    return {name: apikeys.issue(org, f"{name} key")[1] for name, org in orgs.items()}


@pytest.fixture
def api():
    """A JSON client; ``api.as_key(key)`` authenticates it with an API key."""
    from rest_framework.test import APIClient

    class Client(APIClient):
        def as_key(self, key):
            self.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            return self

    return Client()


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    """Hashing a password the production way takes half a second by design;
    tests make dozens of people and only need the hash to check."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_broker_in_unit_tests(settings):
    """Unit tests send notifications by calling delivery directly; only the
    integration tests that run a worker put messages on the broker."""
    settings.NOTIFY_ENQUEUE = False
    settings.IMPORT_ENQUEUE = False


@pytest.fixture(scope="session", autouse=True)
def cache_of_its_own(worker_id):
    """Parallel test processes share one Redis, and each clears the cache
    around every test (``fresh_cache``): each process gets a Redis database
    of its own, so one's clearing never wipes another's keys mid-test."""
    import re

    from django.conf import settings as django_settings
    from django.test import override_settings

    default = django_settings.CACHES["default"]
    found = re.search(r"/(\d+)$", str(default.get("LOCATION", "")))
    if "redis" not in default["BACKEND"].lower() or worker_id == "master" or not found:
        yield
        return
    index = int(worker_id.removeprefix("gw"))
    # Below the database the URL names (which the broker keeps), one per process.
    database = (int(found.group(1)) - 1 - index) % 16
    location = default["LOCATION"][: found.start()] + f"/{database}"
    with override_settings(CACHES={**django_settings.CACHES, "default": {**default, "LOCATION": location}}):
        yield


@pytest.fixture(autouse=True)
def sweeps_skipped_only_when_nothing_is_due(monkeypatch):
    """Every sweep of every test that the one-statement probe skips is checked
    against what the full sweep would have found: no rule has a hit, no case
    is live, no escalation waits, no split group is left to close. Yields the
    probe itself, for a test that counts a skipped sweep's queries."""
    from risks import escalations, rules, sweep
    from risks.choices import LIVE_STATUSES
    from risks.models import RiskCase

    probe = sweep.anything_due

    def checked(ctx):
        due = probe(ctx)
        if not due:
            found = {code: spec.evaluate(ctx) for code, spec in rules.RULES.items()}
            assert not any(found.values()), f"the probe missed {found}"
            closable = [g for g in rules.group_rows(ctx) if not g.open_orders]
            assert not closable, f"the probe missed a split group to close: {closable}"
            assert not RiskCase.objects.filter(status__in=list(LIVE_STATUSES)).exists()
            assert not escalations.waiting_for_reminder(ctx.now).exists()
            ctx.groups = None
        return due

    monkeypatch.setattr(sweep, "anything_due", checked)
    return probe
