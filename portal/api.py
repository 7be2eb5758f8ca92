"""What every API endpoint shares: the actor behind a request, the error
shape and the errors documented for every endpoint, bodies that refuse unknown
fields, paging by id, and replaying retries that carry an Idempotency-Key."""

import functools
import hashlib
import json
import re
from datetime import timedelta

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import exception_handler as drf_exception_handler

from portal.actors import Actor
from portal.api_auth import KeyPrincipal
from portal.choices import EventSource
from portal.errors import WorkflowError
from portal.models import IdempotencyRecord
from portal.parsers import max_body_bytes

IDEMPOTENCY_TTL = timedelta(hours=24)
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def actor_for(request):
    """Who acts through this API request: the key's organisation, or the signed-in person."""
    if isinstance(request.user, KeyPrincipal):
        return Actor.of_organisation(request.user.organisation, EventSource.API)
    return Actor.of_user(request.user, EventSource.API)


# --- bodies and pages ---------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know and bodies that are not a JSON object."""

    default_error_messages = {"unknown": gettext_lazy("Unknown field(s): %(names)s.")}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": [gettext_lazy("The body must be a JSON object.")]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: [gettext_lazy("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


class ById(CursorPagination):
    """Every list of the API: pages in the order rows were made, 50 at a time unless asked."""

    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Retry safely: the first answer to this key is replayed for 24 hours.",
)


# --- errors -------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(required=False)


def error_responses(conflict: str = "a refusal: the step is not possible now; `code` says why") -> dict:
    """The refusals every endpoint documents, all in the error shape. ``conflict``
    describes the 409s: their codes are the refusing app's, which may list them."""
    return {
        400: OpenApiResponse(ErrorSerializer, description="invalid input (code `invalid`, `malformed_request`)"),
        401: OpenApiResponse(ErrorSerializer, description="no or bad credentials"),
        403: OpenApiResponse(ErrorSerializer, description="`not_allowed`: your organisation may not do this"),
        404: OpenApiResponse(ErrorSerializer, description="`not_found`: not there, or outside your scope"),
        409: OpenApiResponse(ErrorSerializer, description=conflict),
        422: OpenApiResponse(ErrorSerializer, description="`idempotency_key_reused`"),
        429: OpenApiResponse(ErrorSerializer, description="`throttled`"),
    }


ERRORS = error_responses()


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "not_allowed",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


def error_body(code, detail, fields=None) -> dict:
    body = {"code": code, "detail": str(detail)}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail):
    """DRF's nested error detail as {field: [messages]} with plain strings."""
    if isinstance(detail, dict):
        return {str(k): _messages(v) for k, v in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _messages(value):
    if isinstance(value, dict):
        return {str(k): _messages(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [str(v) for v in value]
        return [_messages(v) for v in value]
    return [str(value)]


def exception_handler(exc, context):
    """Every refusal as ``{"code", "detail", "fields"}`` with a stable code."""
    if isinstance(exc, WorkflowError):
        fields = getattr(exc, "fields", None) or None
        return Response(error_body(exc.code, exc.message, fields), status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError(_("The body is larger than %(max)s bytes.") % {"max": max_body_bytes()})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        detail = _("The request is not valid; see the fields.")
        response.data = error_body(getattr(exc, "code", None) or code, detail, fields)
    else:
        response.data = error_body(code, exc.detail)
    return response


# --- idempotency ------------------------------------------------------------------


def _owner(request) -> str:
    if isinstance(request.user, KeyPrincipal):
        return f"org:{request.user.organisation_id}"
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return ""


def idempotent(handler):
    """Make a POST handler answer a retry carrying the same ``Idempotency-Key``
    with its first answer, without acting again.

    The first request holds the key's row for as long as it acts, so a
    concurrent retry waits and then replays; the same key with another body
    is refused with 422.
    """

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        owner = _owner(request)
        if key is None or not owner:
            return handler(self, request, *args, **kwargs)
        if not _KEY_RE.match(key):
            return Response(
                error_body("invalid_idempotency_key", _("An Idempotency-Key is 1 to 255 visible ASCII characters.")),
                status=status.HTTP_400_BAD_REQUEST,
            )
        fingerprint = _fingerprint(request)
        with transaction.atomic():
            IdempotencyRecord.objects.filter(
                owner=owner, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_TTL
            ).delete()
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        owner=owner, key=key, fingerprint=fingerprint, status_code=0
                    )
            except IntegrityError:
                record = None
            if record is None:
                earlier = IdempotencyRecord.objects.get(owner=owner, key=key)
                return _replay(earlier, fingerprint)
            response = handler(self, request, *args, **kwargs)
            if response.status_code >= 500:
                transaction.set_rollback(True)
                return response
            record.status_code = response.status_code
            record.body = _json_safe(response.data)
            record.save(update_fields=["status_code", "body"])
            return response

    return wrapper


def _fingerprint(request) -> str:
    """What makes two requests the same: method, path and the parsed body.

    The parsed body, not the raw bytes: a form post has had its body read
    by the CSRF check already, and the same JSON spaced differently is the
    same request.
    """
    data = request.data
    if hasattr(data, "lists"):  # a form's QueryDict keeps every value of a key
        data = dict(data.lists())
    body = json.dumps(data, cls=_Canonical, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256("\n".join([request.method, request.path, body]).encode()).hexdigest()


class _Canonical(JSONEncoder):
    def default(self, obj):
        try:
            return super().default(obj)
        except TypeError:  # e.g. an uploaded file: named, not read
            return repr(obj)


def _replay(record, fingerprint):
    if record.fingerprint != fingerprint:
        return Response(
            error_body(
                "idempotency_key_reused",
                _("This Idempotency-Key was used with a different request; use a new key for a new request."),
            ),
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    response = Response(record.body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _json_safe(data):
    return json.loads(json.dumps(data, cls=JSONEncoder))
