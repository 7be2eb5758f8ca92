"""Who may still act: a deactivated person, or a person of a deactivated
organisation, loses access at once.

Three lines, each enough on its own:

1. ``PortalBackend`` refuses them at login and when a session is read, so a
   deactivated person is anonymous on the very next request;
2. ``DeactivatedAccessMiddleware`` ends a session that still names such a
   person (web pages, exports, actions and the session API alike);
3. the scoping querysets see nothing for an inactive organisation
   (``portal.scoping``).

API keys of an inactive organisation are refused by ``portal.apikeys``.
"""

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Sum
from django.utils.translation import gettext_lazy as _


def may_act(user) -> bool:
    """Whether ``user`` (a person) is active and, when they belong to one, so is their organisation."""
    if not getattr(user, "is_active", False):
        return False
    if getattr(user, "organisation_id", None) is None:
        return True
    return bool(user.organisation.is_active)


class PortalBackend(ModelBackend):
    """Django's model backend, which also refuses the people of an inactive organisation.

    ``ModelBackend`` already refuses an inactive person; the same check runs
    when a session's user is loaded, so deactivating an organisation signs its
    people out on their next request.
    """

    def user_can_authenticate(self, user):
        return may_act(user)


class DeactivatedAccessMiddleware:
    """End the session of a person who may no longer act, before any view runs.

    Sits right after ``AuthenticationMiddleware``. The backend above already
    makes such a person anonymous; this also flushes the session itself, so
    nothing kept in it (a language, a half-finished form) outlives the account.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            # No session to end (an API key, a carrier, a first visit): leave
            # the user and the session unread.
            return self.get_response(request)
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        if user is not None and user.is_authenticated and not may_act(user):
            logout(request)
        elif user is not None and not user.is_authenticated and session is not None and SESSION_KEY in session:
            # The session names a person the backend refused (deactivated since they signed in).
            session.flush()
        return self.get_response(request)


class LoginForm(auth_forms.AuthenticationForm):
    """The login form, saying plainly when the account itself is deactivated.

    The backend refuses a deactivated person like a wrong password; when the
    password was right, the person is told why instead of trying again.
    """

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "deactivated": _("This account is deactivated."),
    }

    @property
    def is_deactivated(self) -> bool:
        """Whether the login was refused because the account is deactivated (the page says so)."""
        return self.is_bound and self.has_error(NON_FIELD_ERRORS, "deactivated")

    def clean(self):
        try:
            return super().clean()
        except ValidationError as exc:
            if getattr(exc, "code", None) != "invalid_login":
                raise
            person = self._deactivated_person()
            if person is None:
                raise
            raise ValidationError(self.error_messages["deactivated"], code="deactivated") from None

    def _deactivated_person(self):
        from portal.models import User

        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return None
        person = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if person is None or may_act(person) or not person.check_password(password):
            return None
        return person


class AddressAwareLockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler with two limits instead of one.

    ``AXES_LOCKOUT_PARAMETERS`` lists the pair (user name, address) first and
    the address alone second. Axes compares the larger count of the two with
    one ``AXES_FAILURE_LIMIT``; an office behind one address would then be
    locked out by a handful of typing mistakes spread over its staff. Here the
    address count is scaled so that it reaches ``AXES_FAILURE_LIMIT`` only at
    ``LOGIN_ADDRESS_FAILURE_LIMIT`` failures: a guesser trying many user names
    from one address is stopped, colleagues mistyping now and then are not.
    """

    def get_failures(self, request, credentials=None) -> int:
        counts = [
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        ]
        pair = counts[0] if counts else 0
        address = max(counts[1:], default=0)
        # Floor division: the scaled count reaches the pair limit exactly when
        # the address count reaches its own limit, never before.
        scaled = address * settings.AXES_FAILURE_LIMIT // settings.LOGIN_ADDRESS_FAILURE_LIMIT
        return max(pair, scaled)

    def reset_user_attempts(self, request, credentials=None) -> int:
        """On a good login forget that person's failures from this address only.

        Axes would also delete every failure of the address, which would let a
        guesser clear the address count by signing in to an account of their own.
        """
        attempts = self.filter_user_attempts(request, credentials)
        if not attempts:
            return 0
        count, _deleted = attempts[0].delete()
        return count


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's reset form, sending nothing to a person who may no longer act.

    The answer page is the same either way, so it tells nobody whether an
    address belongs to a (deactivated) account.
    """

    def get_users(self, email):
        return (user for user in super().get_users(email) if may_act(user))
