"""``manage.py announce``: once the web server, the workers and beat are up,
print where the portal is and how to log in.

``make run`` starts it next to the processes of the ``Procfile``, so the logins come last
instead of scrolling away under their start-up output. It never fails: if
something is not up in time, or the credentials cannot be read, it says so
and stops.
"""

import http.client
import json
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.celery import app

# The node names the Procfile gives its workers (--hostname NAME@%h): one for
# the deadlines and the sweep, one for mail.
WORKERS = ("work", "mail")


class Command(BaseCommand):
    help = "Wait until the web server, the workers and beat are up, then print the URL and the demo logins."

    def add_arguments(self, parser):
        parser.add_argument("--credentials", type=Path, help="the JSON file seed_demo wrote")
        parser.add_argument("--bind", default=os.environ.get("PORTAL_BIND", "127.0.0.1:8000"), help="host:port")
        parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the processes")
        parser.add_argument(
            "--workers",
            default=",".join(WORKERS),
            help="comma-separated node name prefixes of the workers to wait for (the Procfile's --hostname)",
        )

    def handle(self, *args, credentials, bind, timeout, workers, **options):
        try:
            waiting = self._wait(bind, timeout, [name for name in workers.split(",") if name])
            self._print(credentials, waiting)
        except KeyboardInterrupt:
            pass  # stopped while waiting: there is nothing to announce
        except Exception as exc:  # a banner is not worth stopping the portal for
            self.stderr.write(f"Could not print the logins ({exc}); see the output of seed_demo above.")

    def _wait(self, bind, timeout, workers) -> list[str]:
        """Wait for all of them; returns the names of those still not up at the deadline."""
        started = time.time()
        checks = {
            "web": lambda: web_answers(bind),
            **{f"worker {name}": _worker_check(name) for name in workers},
            "beat": lambda: beat_started(Path(settings.CELERY_BEAT_SCHEDULE_FILENAME), since=started - 5),
        }
        pending = dict(checks)
        while pending and time.time() - started < timeout:
            for name, check in list(pending.items()):
                if check():
                    del pending[name]
            if pending:
                time.sleep(0.5)
        return list(pending)

    def _print(self, credentials, waiting):
        url = settings.SITE_URL + "/"
        lines = ["", "=" * 72, f"  Appraisal Portal: {url}"]
        if waiting:
            lines.append(f"  (still starting after the wait: {', '.join(waiting)})")
        data = json.loads(credentials.read_text(encoding="utf-8")) if credentials else {}
        users = data.get("users", [])
        if users:
            lines.append("  Logins (username / password, organisation):")
            lines += [f"    {u['username']:<14} {u['password']:<26} {u['organisation']}" for u in users]
        for code, key in data.get("api_keys", {}).items():
            lines.append(f"    API key {code:<10} {key}")
        if credentials:
            lines.append(f"  All of it is in {credentials}")
        lines += ["  Ctrl-C stops the web server, the workers and beat.", "=" * 72, ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def web_answers(bind: str) -> bool:
    """Whether an HTTP server answers at ``host:port``, whatever the status."""
    host, _, port = bind.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        connection.request("HEAD", "/")
        connection.getresponse()
        connection.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return True


def worker_answers(name: str | None = None) -> bool:
    """Whether a Celery worker answers a ping: any worker, or one whose node name starts with ``name@``."""
    try:
        replies = app.control.ping(timeout=1)
    except Exception:  # the broker is not there yet
        return False
    nodes = [node for reply in replies or [] for node in reply]
    return any(node.startswith(f"{name}@") for node in nodes) if name else bool(nodes)


def _worker_check(name):
    return lambda: worker_answers(name)


def beat_started(schedule: Path, since: float) -> bool:
    """Whether beat has written its schedule file (it does on start-up) since ``since``."""
    # The shelve module may add a suffix (".db") to the name it is given.
    candidates = [schedule, *schedule.parent.glob(schedule.name + ".*")]
    return any(path.exists() and path.stat().st_mtime >= since for path in candidates)
