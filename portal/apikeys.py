"""Issuing, checking and revoking organisation API keys."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from portal.kept import Kept
from portal.models import ApiKey, Organisation

KEY_PREFIX = "apk"
# A key's last use is written at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(organisation, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Make a key for ``organisation``; returns the stored key and the secret
    text, which is never available again."""
    prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
    while ApiKey.objects.filter(prefix=prefix).exists():  # pragma: no cover - 1 in 4 billion
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
    raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        organisation=organisation, name=name, prefix=prefix, key_hash=_digest(raw), created_by=created_by
    )
    return key, raw


def _prefix_of(raw: str) -> str | None:
    """The public prefix of a key in the ``apk_<prefix>_<secret>`` form, or ``None``."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != ApiKey.PREFIX_LENGTH:
        return None
    return parts[1]


def install(organisation, name: str, raw: str) -> ApiKey:
    """Store ``raw``, a key made outside this module, as an active key of
    ``organisation``, restoring it if it was revoked.

    The demo derives its keys from a known secret so that they stay the same
    from one run to the next; a real integration's key comes from ``issue``.
    """
    prefix = _prefix_of(raw)
    if prefix is None or not raw.split("_", 2)[2]:
        raise ValueError(f"an API key looks like {KEY_PREFIX}_<prefix>_<secret>")
    key, _created = ApiKey.objects.update_or_create(
        prefix=prefix,
        defaults={"organisation": organisation, "name": name, "key_hash": _digest(raw), "revoked_at": None},
    )
    return key


def check(raw: str) -> ApiKey | None:
    """The active key ``raw`` is, or ``None``."""
    prefix = _prefix_of(raw)
    if prefix is None:
        return None
    key = _active_key(prefix)
    if key is None or not hmac.compare_digest(key.key_hash, _digest(raw)):
        return None
    if not key.organisation.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


_KEY_FIELDS = [f.attname for f in ApiKey._meta.concrete_fields]
_ORGANISATION_FIELDS = [f.attname for f in Organisation._meta.concrete_fields]


def _key_with_organisation(prefix):
    organisation = [f"organisation__{name}" for name in _ORGANISATION_FIELDS]
    return ApiKey.objects.active().filter(prefix=prefix).values(*_KEY_FIELDS, *organisation)[:1]


# Asked on every API request: written by the ORM once per process.
_KEY_WITH_ORGANISATION = Kept(_key_with_organisation, (("kept-p-a",), ("kept-p-b",)))


def _active_key(prefix) -> ApiKey | None:
    """The active key with ``prefix`` and its organisation, in one statement."""
    found = _KEY_WITH_ORGANISATION.rows((prefix,))
    if not found:
        return None
    row = found[0]
    key = ApiKey.from_db("default", _KEY_FIELDS, [row[name] for name in _KEY_FIELDS])
    key.organisation = Organisation.from_db(
        "default", _ORGANISATION_FIELDS, [row[f"organisation__{name}"] for name in _ORGANISATION_FIELDS]
    )
    return key


def revoke(key: ApiKey) -> None:
    """Stop ``key`` working from now on."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
