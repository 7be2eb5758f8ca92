import re

from django.conf import settings
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.middleware.common import CommonMiddleware
from django.utils import translation
from django.utils.translation import gettext as _


class UserLanguageMiddleware:
    """Speak the language saved on the signed-in user's profile.

    Runs after authentication and after ``LocaleMiddleware``, which serves
    visitors who are not signed in (the login page) from their browser.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class RefuseNulMiddleware:
    """Answer 400 to a request whose address, query or cookies hold a NUL
    character. PostgreSQL cannot store or compare text containing one, so
    such a value would otherwise fail deep in a lookup as a server error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        values = [request.path_info, *request.GET.keys(), *request.COOKIES.keys(), *request.COOKIES.values()]
        values += [value for _key, value in request.GET.lists() for value in value]
        if any("\x00" in value for value in values):
            detail = _("The address, query or cookies contain a NUL character.")
            if request.path_info.startswith("/api/"):
                return JsonResponse({"code": "malformed_request", "detail": detail}, status=400)
            return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class ApiIfMatchMiddleware:
    """Answer 400 to an API request whose ``If-Match`` is not an order version.

    A version is a whole number of at most 18 ASCII digits (so it fits the
    database's integer); anything else (other digits such as ``²``, thousands
    of digits) would fail converting it, as a server error.
    """

    _VERSION = re.compile(r"[0-9]{1,18}")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request.META.get("HTTP_IF_MATCH")
        if value is not None and request.path_info.startswith("/api/"):
            value = value.strip('"')
            if value and not self._VERSION.fullmatch(value):
                detail = _("If-Match must be the order version, a whole number.")
                return JsonResponse({"code": "malformed_request", "detail": detail}, status=400)
        return self.get_response(request)


class MissingSlashMiddleware:
    """An explicit answer for an address that lacks only its trailing slash.

    Django's ``CommonMiddleware`` redirects it with a 301, which clients follow
    with a GET and without the body, and under ``DEBUG`` refuses a POST with a
    server error. Here, before it: under ``/api/`` every method gets a JSON 404
    naming the address with the slash; elsewhere a GET or HEAD is still
    redirected (a link typed by hand), and any other method gets the 404 page.
    See docs/decisions.md, "A missing trailing slash".
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._common = CommonMiddleware(get_response)

    def __call__(self, request):
        if settings.APPEND_SLASH and not request.path_info.endswith("/"):
            is_api = request.path_info.startswith("/api/")
            if (is_api or request.method not in ("GET", "HEAD")) and self._common.should_redirect_with_slash(request):
                if is_api:
                    detail = _("Not found. The address ends with a slash: %(path)s") % {"path": f"{request.path}/"}
                    return JsonResponse({"code": "not_found", "detail": detail}, status=404)
                raise Http404(_("Not found."))
        return self.get_response(request)
