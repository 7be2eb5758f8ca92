"""A real Celery worker process for integration tests, on a queue of its own."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url():
    """The test database, for a process outside the test run."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def queue_worker(name, queues, redis_url, **env):
    """A real worker (prefork, one child) named ``name@%h`` on ``queues``, as the
    Procfile runs it; yields ``(process, lines)`` once it is ready, ``lines``
    filling with its log."""
    environment = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url, **env}
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--hostname", f"{name}@%h"]
    command += ["--queues", queues, "--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        # A message routed to a queue nobody has declared yet would have nowhere to go.
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and not any("ready." in line for line in lines):
            if process.poll() is not None:
                break
            time.sleep(0.1)
        assert any("ready." in line for line in lines), "".join(lines)
        yield process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=10)


@contextlib.contextmanager
def celery_worker(redis_url, **env):
    """A worker on a fresh queue of its own; yields ``(process, queue, lines)``."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with queue_worker(queue, queue, redis_url, **env) as (process, lines):
        yield process, queue, lines
