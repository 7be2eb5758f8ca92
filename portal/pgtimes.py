"""Times read from PostgreSQL by psycopg's compiled parser.

Django's PostgreSQL backend reads every ``timestamptz`` through a loader of
its own: psycopg's pure-Python parser (a regular expression per value) with
the result's zone replaced by the connection's. A page of fifty orders holds
about five hundred times, and that parser was an eighth of the API list's
time. psycopg's compiled loader gives the same datetimes when the session's
zone is UTC (it answers with ``datetime.timezone.utc`` then, as Django's
does), at a twentieth of the cost. So each new connection whose zone is UTC
reads its times with it; any other zone keeps Django's loader.
"""

import datetime

import psycopg
from django.db.backends.signals import connection_created
from psycopg.postgres import types as pg_types
from psycopg.pq import Format


def _compiled_loader():
    loader = psycopg.adapters.get_loader(pg_types["timestamptz"].oid, Format.TEXT)
    # The pure-Python class is what Django's loader already extends: no gain.
    return None if loader.__module__.startswith("psycopg.") else loader


_COMPILED = _compiled_loader()


class UtcTimes:
    """Makes psycopg's compiled ``timestamptz`` loader (which cannot be
    subclassed) and carries the ``timezone`` Django's backend reads from the
    registered loader before each cursor (it registers its own when that
    differs from the connection's)."""

    format = Format.TEXT
    timezone = datetime.UTC

    def __new__(cls, oid, context=None):
        return _COMPILED(oid, context)


def use_compiled_times(sender, connection, **kwargs):
    """On a new PostgreSQL connection in UTC, read times with ``UtcTimes``."""
    if _COMPILED is None or connection.vendor != "postgresql" or connection.timezone != UtcTimes.timezone:
        return
    raw = connection.connection
    if raw.info.parameter_status("TimeZone") != "UTC":  # pragma: no cover - Django has just set it
        return
    raw.adapters.register_loader("timestamptz", UtcTimes)


def connect():
    connection_created.connect(use_compiled_times, dispatch_uid="portal.pgtimes")
