from django.http import HttpResponseBadRequest, JsonResponse
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
