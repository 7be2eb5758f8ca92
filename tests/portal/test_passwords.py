"""A person changes their password, or resets it through a link by email."""

import re

from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.urls import reverse

from portal.models import Organisation

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "plum orchard winter 93"


def log_in(client, username, password):
    client.logout()
    client.post(reverse("login"), {"username": username, "password": password})
    return SESSION_KEY in client.session


def test_a_person_changes_their_password(client, merchant):
    client.force_login(merchant)
    assert client.get(reverse("password_change")).status_code == 200

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert not log_in(client, merchant.username, PASSWORD)
    assert log_in(client, merchant.username, NEW_PASSWORD)


def test_a_wrong_current_password_changes_nothing(client, merchant):
    client.force_login(merchant)

    response = client.post(
        reverse("password_change"),
        {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert log_in(client, merchant.username, PASSWORD)


def test_the_header_and_the_login_page_link_to_the_password_pages(client, merchant):
    assert reverse("password_reset") in client.get(reverse("login")).content.decode()
    client.force_login(merchant)
    assert reverse("password_change") in client.get(reverse("orders:list")).content.decode()


def reset_link(client, email):
    mail.outbox.clear()
    response = client.post(reverse("password_reset"), {"email": email})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    if not mail.outbox:
        return None
    (message,) = mail.outbox
    assert message.to == [email]
    return re.search(r"https?://\S+(/password/reset/\S+/\S+/)", message.body).group(1)


def test_a_reset_by_email_sets_a_new_password(client, merchant):
    link = reset_link(client, merchant.email)

    form = client.get(link, follow=True)
    assert form.status_code == 200
    set_url = form.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    assert log_in(client, merchant.username, NEW_PASSWORD)
    # The link works once.
    client.logout()
    again = client.get(link, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "This link no longer works" in again.content.decode()


def test_no_reset_email_goes_to_a_person_of_a_deactivated_organisation(client, merchant):
    Organisation.objects.filter(pk=merchant.organisation_id).update(is_active=False)

    assert reset_link(client, merchant.email) is None


def test_an_unknown_address_gets_the_same_answer_and_no_email(client, merchant):
    assert reset_link(client, "nobody@example.test") is None
