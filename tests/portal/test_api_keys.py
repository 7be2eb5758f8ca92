"""API keys in the web UI and the admin: shown once, stored hashed, revocable, scoped."""

from django.urls import reverse

from portal import apikeys
from portal.models import ApiKey


def test_a_person_makes_a_key_sees_it_once_and_it_works(client, api, merchant):
    client.force_login(merchant)
    page = client.post(reverse("api-keys"), {"name": "ERP production"}).content.decode()
    key = ApiKey.objects.get(name="ERP production")
    raw = page.split('<code class="user-select-all fs-6">')[1].split("</code>")[0]
    assert raw.startswith(f"apk_{key.prefix}_")
    assert key.organisation == merchant.organisation and key.created_by == merchant
    assert raw not in client.get(reverse("api-keys")).content.decode()
    assert api.as_key(raw).get("/api/v1/orders/").status_code == 200


def test_revoking_a_key_stops_it(client, api, merchant):
    key, raw = apikeys.issue(merchant.organisation, "old")
    client.force_login(merchant)
    client.post(reverse("api-key-revoke", args=[key.prefix]))
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api.as_key(raw).get("/api/v1/orders/").status_code == 401


def test_another_organisations_key_cannot_be_seen_or_revoked(client, merchant, merchant2):
    key, _ = apikeys.issue(merchant2.organisation, "theirs")
    client.force_login(merchant)
    assert "theirs" not in client.get(reverse("api-keys")).content.decode()
    assert client.post(reverse("api-key-revoke", args=[key.prefix])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_an_administrator_makes_a_key_for_any_organisation_and_sees_it_once(
    admin_client, admin_user, merchant_org, api
):
    admin_user.language = "en"
    admin_user.save()
    response = admin_client.post(
        reverse("admin:portal_apikey_add"), {"organisation": merchant_org.pk, "name": "made by admin"}, follow=True
    )
    text = response.content.decode()
    key = ApiKey.objects.get(name="made by admin")
    raw = text.split("shown again: ")[1].split("<")[0].strip()
    assert raw.startswith(f"apk_{key.prefix}_") and key.key_hash not in text
    assert api.as_key(raw).get("/api/v1/orders/").status_code == 200
