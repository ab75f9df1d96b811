"""The failures the Soundcharts client names (the hook and client raise them; services catch them)."""

from __future__ import annotations


class SoundchartsError(RuntimeError):
    """Any failure talking to Soundcharts."""


class SoundchartsAuthError(SoundchartsError):
    """401 (bad credentials) or 403 (endpoint not in the plan)."""


class SoundchartsNotFound(SoundchartsError):
    """404: unknown chart or song, or a ranking that is not published (yet)."""


class SoundchartsRateLimited(SoundchartsError):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SoundchartsQuotaExhausted(SoundchartsRateLimited):
    """429 because the API quota is consumed (``x-quota-remaining: 0`` or an error naming the quota):
    raised at once, without a retry; waiting does not bring quota back. ``remaining``: the header's value."""

    def __init__(self, message: str, remaining: int | None) -> None:
        super().__init__(message, None)
        self.remaining = remaining


class SoundchartsServerError(SoundchartsError):
    """5xx after the client's own retries."""


class SoundchartsMalformedResponse(SoundchartsError):
    """A body that is not the JSON shape the API documents."""
