from django.utils import translation


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
