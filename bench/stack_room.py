"""Paired benchmark of ``portal.stack.RoomyStackMiddleware`` on the
worklists: the same requests with and without it, alternating, in one
process, so the machine's drift falls on both alike.

    python bench/stack_room.py [--runs 50] [--worklist SLUG ...]

The database and the person are ``bench/worklists.py``'s (``bench/surfaces.py``'s
history of 1,000,000 orders; the provider with the most open orders). Two
test ``Client``s signed in as that person: one whose handler was built with
the settings' ``MIDDLEWARE``, one whose handler was built without the
middleware (Django builds a client's middleware chain on its first request,
made here under ``override_settings``). For each tab (all seven unless
``--worklist`` names some), the page (``GET /worklists/<slug>/?per_page=50``)
and its 30 s refresh (htmx), ``--runs`` times each, the two clients taking
turns request by request; the first five of each are left out as warm-up.
Each side is the other's reference: the ratio is the p50 without over the
p50 with.
"""

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import PAGE, Series, busiest, load_average, person, signed_in_client, start  # noqa: E402

ROOM = "portal.stack.RoomyStackMiddleware"
WARM = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="requests of each kind, each side")
    parser.add_argument("--worklist", action="append", help="a tab's slug (repeatable; default: every tab)")
    args = parser.parse_args()

    start()
    import time

    from django.conf import settings
    from django.test import override_settings

    from orders import worklists

    provider, _open = busiest("provider")
    user = person(provider)
    with_room, without = signed_in_client(user), signed_in_client(user)
    with override_settings(MIDDLEWARE=[name for name in settings.MIDDLEWARE if name != ROOM]):
        without.get("/")  # its middleware chain, built without the room
    with_room.get("/")
    slugs = args.worklist or [w.slug for w in worklists.WORKLISTS]

    header = f"{'request':<36} {'runs':>4} {'with p50':>9} {'p95':>6} {'without p50':>12} {'p95':>6} {'ratio':>6}"
    print(f"\n{header}   load average")
    for slug in slugs:
        url = f"/worklists/{slug}/?per_page={PAGE}"
        for kind, headers in (("page", {}), ("30 s refresh", {"HX-Request": "true", "HX-Target": "results"})):
            sides = {"with": Series("with"), "without": Series("without")}
            for _ in range(args.runs + WARM):
                for name, client in (("with", with_room), ("without", without)):
                    started = time.perf_counter()
                    response = client.get(url, headers=headers)
                    sides[name].timings.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{url} answered {response.status_code}")
            for series in sides.values():
                del series.timings[:WARM]
            a, b = sides["with"], sides["without"]
            print(
                f"{slug + ': ' + kind:<36} {args.runs:>4} {a.p50:>9.1f} {a.p95:>6.1f} {b.p50:>12.1f} {b.p95:>6.1f}"
                f" {b.p50 / a.p50:>6.2f}   {load_average()}"
            )
    print("\ntimes in-process (no network, no WSGI server), ms; ratio: p50 without over p50 with.")


if __name__ == "__main__":
    main()
