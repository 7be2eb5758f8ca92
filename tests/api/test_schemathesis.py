"""Hostile input over the whole API: schemathesis generates requests from the
published schema; no answer may be a 5xx, or break the documented schema."""

import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from orders.choices import OrderState
from portal.wsgi import application
from tests.factories import advance, new_order

# Every check schemathesis has, but these two: they measure how closely the
# schema describes the accepted input, and ours refuses more than OpenAPI can
# say (a time window, the characters of an Idempotency-Key, a text without
# control characters), which is the safe side. Server errors, undocumented
# codes, content types, response shapes and authentication are all checked.
LOOSE_SCHEMA_CHECKS = [positive_data_acceptance, negative_data_rejection]


@pytest.fixture
def wsgi_in_test_transaction(db):
    """Calls straight into the WSGI application would close the test's database
    connection at the end of each request; Django's test client avoids that the
    same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_in_test_transaction):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def real_order(merchant_org, provider_org):
    """An order mid-flow, so that generated actions reach the workflow, not only a 404."""
    return advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_gets_a_server_error_or_an_undocumented_answer(case, keys, real_order):
    # Picked before the order number is set: an operation with no other
    # input would otherwise send every example as the same kind.
    headers = {"Authorization": f"Token {keys[persona_of(case)]}"}
    if "order_no" in (case.path_parameters or {}):
        case.path_parameters["order_no"] = real_order.order_no
    response = case.call(headers=headers)
    # It is told the credentials, so its authentication checks know they were real.
    case.validate_response(response, headers=headers, excluded_checks=LOOSE_SCHEMA_CHECKS)


PERSONAS = ("platform", "provider", "merchant")


def persona_of(case):
    """The kind of organisation a generated request is sent as: taken from
    the request itself, so each operation's examples are spread over all
    three kinds, and an example replayed while shrinking goes as the same."""
    said = repr((case.method, case.path_parameters, case.query, case.headers, case.body))
    return PERSONAS[zlib.crc32(said.encode()) % len(PERSONAS)]
