"""A real Celery worker process for integration tests, on a queue of its own."""

import contextlib
import os
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
def celery_worker(redis_url, **env):
    """Start a worker (prefork, one child) on a fresh queue and wait until it
    listens; yields ``(process, queue, lines)``, ``lines`` filling with its log."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    environment = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url, **env}
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "--concurrency", "1"]
    process = subprocess.Popen(
        [*command, "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        # A message routed to a queue nobody has declared yet would have nowhere to go.
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and not any("ready." in line for line in lines):
            time.sleep(0.2)
        yield process, queue, lines
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)
