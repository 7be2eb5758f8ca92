"""Who is calling the API: organisation API keys and the web session, the
permission every endpoint starts from, and the throttle per key. Kept apart
from ``portal.api`` because DRF imports these while it is starting."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from portal import apikeys


class KeyPrincipal:
    """``request.user`` for a request made with an API key: the organisation acts, no person."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, key):
        self.key = key
        self.organisation = key.organisation
        self.organisation_id = key.organisation_id
        self.kind = key.organisation.kind
        self.username = f"key:{key.prefix}"

    def __str__(self):
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send “Authorization: Token <key>”."))
        key = apikeys.check(parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed(_("The API key is not valid or was revoked."))
        return KeyPrincipal(key), key

    def authenticate_header(self, request):
        return self.keyword


class HasOrganisation(BasePermission):
    """Authenticated, and acting for an organisation (the scope every endpoint needs)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "organisation_id", None))


class KeyRateThrottle(SimpleRateThrottle):
    """One budget per API key (or per person for session use)."""

    scope = "api"

    def get_cache_key(self, request, view):
        if isinstance(request.user, KeyPrincipal):
            ident = f"key:{request.user.key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the schema describes key authentication."""

    target_class = "portal.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`: an API key of your organisation, shown once when it is made.",
        }
