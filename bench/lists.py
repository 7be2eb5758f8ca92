"""Benchmark of the default order lists on the realistic history: the web's
``/orders/`` for a provider's person and a merchant's, and the API's
``/api/v1/orders/`` for their keys (SPEC §8: a list is a worklist: 50 rows
over 1,000,000 orders, ≤ 8 SQL queries, server p95 ≤ 60 ms for the page,
≤ 15 ms for the JSON).

    python bench/lists.py [--runs 100] [--verbose]

The database is ``bench/surfaces.py``'s (``bench/durations.py``'s history of
1,000,000 orders, built on first use). The people are the benchmark's
persons of the provider and of the merchant with the most open orders. For
each, timed ``--runs`` times in-process through Django's test ``Client``
with every middleware and production settings (``DEBUG=0``, the cache in
Redis, HTTPS behind the proxy):

- **page**: ``GET /orders/?per_page=50``, the list as the person first sees
  it (open orders, nearest deadline first) at 50 rows a page;
- **refresh**: the same URL asked by htmx every 30 s (``HX-Request``), the
  results block alone;
- **JSON**: ``GET /api/v1/orders/`` with the organisation's API key, the
  first page of 50 (every order in scope, by id).

The floors, measured right after each in the same run, are
``bench/worklists.py``'s: the same 50 rows in one query rendered by a plain
template behind the same middleware and session, and a DRF view with the
same authentication answering the same 50 rows as plain values. The queries
of one request of each are counted with ``CaptureQueriesContext``.
"""

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import (  # noqa: E402
    PAGE,
    api_key,
    busiest,
    key_client,
    person,
    signed_in_client,
    start,
)
from worklists import (  # noqa: E402
    REFRESH,
    html_rows,
    json_rows,
    measure,
    plain_rows,
    print_requests,
)


def requests_of(who, web, api):
    from django.urls import reverse

    page = f"{reverse('orders:list')}?per_page={PAGE}"
    plain = reverse("bench-plain", args=["open"])
    listed = reverse("api:order-list")
    bare = reverse("bench-api-list", args=["all"])
    refresh = {**REFRESH, "HX-Current-URL": f"https://127.0.0.1{page}"}
    return [
        (f"{who}: /orders/ page", lambda: web.get(page), html_rows, lambda: web.get(plain), plain_rows),
        (
            f"{who}: /orders/ 30 s refresh",
            lambda: web.get(page, headers=refresh),
            html_rows,
            lambda: web.get(plain),
            plain_rows,
        ),
        (f"{who}: /api/v1/orders/ JSON", lambda: api.get(listed), json_rows, lambda: api.get(bare), json_rows),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="print the queries of one request of each")
    args = parser.parse_args()

    start()
    from orders.models import Order

    pairs = []
    for kind in ("provider", "merchant"):
        org, open_orders = busiest(kind)
        user = person(org)
        in_scope = Order.objects.visible_to(user).count()
        print(f"as {user.username} of {org.code} ({org.name}): {in_scope:,} orders, {open_orders:,} open")
        web = signed_in_client(user)
        api = key_client(api_key(org))
        pairs += measure(requests_of(kind, web, api), args.runs, args.verbose)
        web.logout()

    print_requests(pairs)


if __name__ == "__main__":
    main()
