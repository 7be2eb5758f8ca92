"""The login lockout counts per user name and address, and per address across
user names at a higher limit."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6


def attempt(client, username, password="wrong", address="10.0.0.1"):
    client.logout()
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client):
    return SESSION_KEY in client.session


def test_many_user_names_from_one_address_lock_that_address(client, merchant):
    for n in range(6):
        attempt(client, f"guess{n}")

    attempt(client, merchant.username, PASSWORD)
    assert not logged_in(client)
    attempt(client, merchant.username, PASSWORD, address="10.0.0.2")
    assert logged_in(client)


def test_a_few_mistakes_spread_over_colleagues_do_not_lock_the_address(client, merchant):
    for n in range(5):
        attempt(client, f"colleague{n}")

    attempt(client, merchant.username, PASSWORD)
    assert logged_in(client)


def test_one_user_name_is_still_locked_at_the_lower_limit(client, merchant, merchant2):
    for _n in range(3):
        attempt(client, merchant.username)

    attempt(client, merchant.username, PASSWORD)
    assert not logged_in(client)
    attempt(client, merchant2.username, PASSWORD)
    assert logged_in(client)


def test_a_good_login_does_not_clear_the_count_of_the_address(client, merchant2):
    for n in range(5):
        attempt(client, f"guess{n}")
    attempt(client, merchant2.username, PASSWORD)
    assert logged_in(client)

    attempt(client, "guess-last")
    attempt(client, merchant2.username, PASSWORD)
    assert not logged_in(client)
