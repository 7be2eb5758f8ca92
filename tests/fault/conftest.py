"""A Redis of the drill's own, on a free port, that a test can stop, start,
freeze (SIGSTOP) and thaw (SIGCONT) while the portal serves.

Never the shared Redis on 6379: stopping or freezing that one would break
everyone else's run.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from celery import current_app
from django.conf import settings as django_settings
from kombu import pools

from tests.conftest import unavailable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OwnRedis:
    """One redis-server process the drill controls."""

    def __init__(self, binary: str):
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.frozen = False

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not come up")

    def stop(self):
        if self.process is not None:
            if self.frozen:
                self.thaw()
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None

    def freeze(self):
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


@pytest.fixture
def own_redis():
    """A fresh redis-server on a free port, stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server (the Redis drill starts its own)")
    server = OwnRedis(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def portal_on(own_redis, settings):
    """The portal's cache and Celery broker pointed at ``own_redis``, with the
    production time-outs from settings."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": own_redis.url,
            "OPTIONS": {
                "socket_connect_timeout": django_settings.REDIS_CONNECT_TIMEOUT,
                "socket_timeout": django_settings.REDIS_SOCKET_TIMEOUT,
            },
        }
    }
    app = current_app._get_current_object()
    # The app reads Django's settings under the CELERY_ prefix, and that name
    # is looked up first, so that is the one to change.
    names = ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_TRANSPORT_OPTIONS")
    saved = {name: app.conf.get(name) for name in names}
    app.conf.update(
        CELERY_BROKER_URL=own_redis.url,
        CELERY_BROKER_WRITE_URL=own_redis.url,
        CELERY_BROKER_TRANSPORT_OPTIONS={
            "socket_connect_timeout": django_settings.REDIS_CONNECT_TIMEOUT,
            "socket_timeout": django_settings.REDIS_SOCKET_TIMEOUT,
            "max_retries": 0,
        },
    )
    _drop_broker_connections(app)
    yield own_redis
    _drop_broker_connections(app)
    app.conf.update(saved)


def _drop_broker_connections(app):
    # Pools made for one broker URL must not serve the next. The app's pool
    # is kombu's shared one for its URL: closing it alone would leave that
    # closed pool registered, and the next test sending through the suite's
    # own broker would be handed it ("Acquire on closed pool"). Empty the
    # registry too, so each URL gets a fresh pool.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
