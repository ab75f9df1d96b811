"""Cross-site request forgery protection for the admin pages' forms, and their signed flash messages.

The pages authenticate with the Airflow UI's ``_token`` cookie, which a browser attaches to a
form another site submits to us (the cookie is SameSite=Lax, and another port of the same host is
the same site). So every POST must carry, in a hidden field, ``token_for(credential)``: an HMAC of
the caller's own JWT under the API server's ``[api] secret_key`` (shared by all its workers). A
page of another origin can neither read the cookie nor compute the HMAC. Independently, a POST
whose ``Origin`` (else ``Referer``) is not this server's origin is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from airflow.api_fastapi.auth.tokens import get_signing_key
from chartsync.seam.config import ui_base_url
from fastapi import Request
from fastapi.security.utils import get_authorization_scheme_param
from itsdangerous import BadSignature, URLSafeTimedSerializer

FIELD = "csrf_token"
COOKIE_NAME_JWT_TOKEN = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager
FLASH_COOKIE = "chartsync_flash"
FLASH_MAX_AGE = 120  # seconds: a message is shown on the page the redirect leads to, or never


class CsrfRefused(Exception):
    """A POST without a valid token or from another origin."""


def _secret() -> bytes:
    return get_signing_key("api", "secret_key").encode()


def credential(request: Request) -> str | None:
    """The JWT this request authenticates with: a bearer header wins over the cookie (as in ``get_user``)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    if scheme.lower() == "bearer" and token:
        return token
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def token_for(value: str | None) -> str:
    if not value:
        return ""
    return hmac.new(_secret(), b"chart-sync-csrf\x00" + value.encode(), hashlib.sha256).hexdigest()


def _origin(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def _trusted_origins(request: Request) -> set[tuple[str, str]]:
    trusted = {_origin(str(request.base_url))}
    base_url = ui_base_url()
    if base_url:
        trusted.add(_origin(base_url))
    return {o for o in trusted if o is not None}


def check(request: Request, submitted: str | None) -> None:
    """Raise CsrfRefused unless the request comes from this origin and carries the caller's token."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is not None and _origin(source) not in _trusted_origins(request):
        raise CsrfRefused(f"refused a form sent from another site ({source.split('?')[0][:100]})")
    expected = token_for(credential(request))
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRefused("the form's security token is missing or out of date: reload the page and try again")


# -- flash messages: what a POST did, shown once on the page it redirects to ----------------------------
def _flash_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(), salt="chart-sync-flash")


def dump_flash(messages: list[dict]) -> str:
    return _flash_serializer().dumps(messages)


def load_flash(value: str | None) -> list[dict]:
    if not value:
        return []
    try:
        messages = _flash_serializer().loads(value, max_age=FLASH_MAX_AGE)
    except BadSignature:
        return []
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
