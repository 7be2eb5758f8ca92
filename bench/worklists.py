"""Benchmark of the provider's worklists, HTML and JSON, on the realistic
history (SPEC §8: 50 rows over 1,000,000 orders, ≤ 8 SQL queries whatever
the page size, server p95 ≤ 60 ms for the page, ≤ 15 ms for the JSON).

    python bench/worklists.py [--runs 100] [--worklist SLUG ...] [--only html|json] [--verbose]

The database is ``bench/surfaces.py``'s (``bench/durations.py``'s history of
1,000,000 orders, built on first use). The person is the benchmark's person
of the provider with the most open orders. For each worklist tab (all seven
unless ``--worklist`` names some), three requests, each timed ``--runs`` times
in-process through Django's test ``Client`` with every middleware and
production settings (``DEBUG=0``, the cache in Redis, HTTPS behind the proxy):

- **page**: ``GET /worklists/<slug>/?per_page=50``, what the browser asks
  when the person opens the tab with 50 rows a page: the whole page, the
  tabs with their live counts, the filter form, the table;
- **refresh**: the same URL asked again by htmx every
  ``LIST_REFRESH_SECONDS`` (30 s) while the tab is open (``HX-Request``,
  ``HX-Target: results``): the results block and the tabs' counts, without
  the page around them;
- **JSON**: ``GET /api/v1/worklists/<slug>/`` with the provider's API key
  (``Authorization: Token``), the first page of 50.

Beside each, its floor, measured right after it in the same run: for the
HTML, a view behind the same middleware and session that fetches the same
50 rows (the list's condition, in the person's scope, by deadline) as plain
values in one query and renders them with a plain template
(``surfaces.plain_rows``); for the JSON, a DRF view with the same
authentication, permission and throttle that answers the same 50 rows (by
id, as the API pages) as plain values. The queries of one request of each
are counted with ``CaptureQueriesContext`` (``--verbose`` prints them).
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import (  # noqa: E402
    PAGE,
    api_key,
    busiest,
    key_client,
    person,
    print_table,
    queries_of,
    signed_in_client,
    start,
    timed,
)

HTML_TARGET_MS = 60
JSON_TARGET_MS = 15
QUERY_BUDGET = 8
ROW = re.compile(r"<tr\b")


def print_requests(pairs):
    """The table of page, refresh and JSON figures beside their floors, and
    what the floors are (this script's and ``bench/lists.py``'s)."""

    def target(got):
        if "JSON" in got.label:
            return f"p95 ≤ {JSON_TARGET_MS} ms"
        return f"p95 ≤ {HTML_TARGET_MS}, ≤ {QUERY_BUDGET} q"

    print_table(pairs, target)
    print(
        "\nfloor of a page or refresh: the same 50 rows in one query rendered by a plain template, behind the same "
        "middleware and session; floor of the JSON: a DRF view with the same authentication answering the same "
        "50 rows as plain values."
    )
    print("times in-process (no network, no WSGI server); queries of one request (CaptureQueriesContext).")


def html_rows(response) -> int:
    """The table's rows in an HTML answer (200 and a table, or raises)."""
    text = response.content.decode()
    if response.status_code != 200 or "<tbody" not in text:
        raise SystemExit(f"the worklist answered {response.status_code}:\n{text[:600]}")
    body = text[text.index("<tbody") : text.index("</tbody>")]
    return len(ROW.findall(body))


def plain_rows(response) -> int:
    if response.status_code != 200:
        raise SystemExit(f"the floor answered {response.status_code}: {response.content[:300]}")
    return len(ROW.findall(response.content.decode()))


def json_rows(response) -> int:
    if response.status_code != 200:
        raise SystemExit(f"the API answered {response.status_code}: {response.content[:300]}")
    data = json.loads(response.content)
    return len(data["results"] if isinstance(data, dict) else data)


REFRESH = {"HX-Request": "true", "HX-Trigger": "results", "HX-Target": "results"}


def requests_of(slug, web, api):
    """The (label, call, check, floor call, floor check) of each request of tab ``slug``."""
    from django.urls import reverse

    page = f"{reverse('orders:worklist', args=[slug])}?per_page={PAGE}"
    plain = reverse("bench-plain", args=[slug])
    listed = reverse("api:worklist", args=[slug])
    bare = reverse("bench-api-list", args=[slug])
    refresh = {**REFRESH, "HX-Current-URL": f"https://127.0.0.1{page}"}
    return {
        "html": [
            (f"{slug}: page", lambda: web.get(page), html_rows, lambda: web.get(plain), plain_rows),
            (
                f"{slug}: 30 s refresh (htmx)",
                lambda: web.get(page, headers=refresh),
                html_rows,
                lambda: web.get(plain),
                plain_rows,
            ),
        ],
        "json": [(f"{slug}: JSON", lambda: api.get(listed), json_rows, lambda: api.get(bare), json_rows)],
    }


def measure(requests, runs, verbose):
    """Each request and its floor: queries of one, a few to warm up, then ``runs`` timed."""
    pairs = []
    for label, call, check, floor_call, floor_check in requests:
        queries, response = queries_of(call, verbose, label)
        check(response)
        floor_queries, response = queries_of(floor_call)
        floor_check(response)
        for _ in range(5):
            call()
            floor_call()
        got = timed(label, [call] * runs, check)
        got.queries = queries
        base = timed("floor", [floor_call] * runs, floor_check)
        base.queries = floor_queries
        pairs.append((got, base))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--worklist", action="append", help="a worklist's slug (repeatable; default: every tab)")
    parser.add_argument("--only", choices=("html", "json"), help="only the pages, or only the JSON")
    parser.add_argument("--verbose", action="store_true", help="print the queries of one request of each")
    args = parser.parse_args()

    start()
    from orders import worklists
    from orders.models import Order

    provider, open_orders = busiest("provider")
    user = person(provider)
    web = signed_in_client(user)
    api = key_client(api_key(provider))
    slugs = args.worklist or [w.slug for w in worklists.WORKLISTS]
    unknown = set(slugs) - set(worklists.BY_SLUG)
    if unknown:
        raise SystemExit(f"no such worklist: {', '.join(sorted(unknown))}")
    scope = Order.objects.visible_to(user)
    visible = {slug: scope.filter(worklists.BY_SLUG[slug].condition).count() for slug in slugs}
    print(
        f"as {user.username} of {provider.code} ({provider.name}): {open_orders:,} open orders; "
        + ", ".join(f"{slug} {visible[slug]:,}" for slug in slugs)
    )

    kinds = [args.only] if args.only else ["html", "json"]
    pairs = []
    for slug in slugs:
        requests = requests_of(slug, web, api)
        for kind in kinds:
            pairs += measure(requests[kind], args.runs, args.verbose)

    print_requests(pairs)
    over = [got.label for got, _base in pairs if "JSON" not in got.label and got.queries > QUERY_BUDGET]
    if over:
        print(f"more than {QUERY_BUDGET} queries: {', '.join(over)}")
    web.logout()


if __name__ == "__main__":
    main()
