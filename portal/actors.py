"""Who acts: a person, an organisation through its API key, or the system,
and through which channel. The workflow, the risk cases and the escalations
take an ``Actor`` for every step and judge it by its ``role``."""

from dataclasses import dataclass

from portal.choices import EventSource

# The role of a step no person or organisation took: a carrier scan, the deadline, the sweep.
SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who acts, for which organisation, and through which channel."""

    source: str
    user: object = None
    organisation: object = None

    @classmethod
    def of_user(cls, user, source=EventSource.WEB):
        return cls(source=source, user=user, organisation=user.organisation if user.organisation_id else None)

    @classmethod
    def of_organisation(cls, organisation, source=EventSource.API):
        return cls(source=source, organisation=organisation)

    @classmethod
    def system(cls, source):
        return cls(source=source)

    @property
    def role(self) -> str | None:
        if self.organisation is not None:
            return self.organisation.kind
        return SYSTEM if self.user is None else None
