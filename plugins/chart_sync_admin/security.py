"""Who is asking, and what they may do: Airflow's auth manager, for the REST API and the pages alike.

Reads need DAG read access. Writes change which chart DAGs exist and how they run, the configuration
the DAG file reads at parse time: they need DAG edit access and Variables edit access, which Airflow's
roles give to Op and Admin (both auth managers: SimpleAuthManager's ``op`` and ``admin``, FAB's ``Op``
and ``Admin``) and not to User, whose DAG edit access is for pausing and clearing. Triggers and heals
need DAG-run creation too. The REST API declares these as route dependencies (``can_read``,
``can_edit``, ``can_run``); a page asks once for its ``Viewer`` (``reader``) and shows or refuses what
the viewer may not do. A page caller without a valid session raises ``LoginRequired`` (answered with
Airflow's login page); a page's form POST also needs edit access, this server's origin and the
caller's CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, bearer_scheme, get_user, requires_access_dag
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from starlette.datastructures import FormData

from chart_sync_admin import csrf
from chart_sync_admin.errors import PageError


def dag_access(method: str, access_entity: DagAccessEntity | None = None):
    """Airflow's ``requires_access_dag`` over the DAGs as a whole.

    It narrows the check to one DAG when the request carries a ``dag_id`` path or query
    parameter; this API has none, so one slipped in (which could let a per-DAG permission pass
    for every schedule under the FAB auth manager) is refused.
    """
    check = requires_access_dag(method, access_entity)

    def inner(request: Request, user: GetUserDep) -> None:
        if "dag_id" in request.query_params:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "dag_id is not a parameter of the chart-sync API")
        check(request, user)

    return inner


def variables_edit(request: Request, user: GetUserDep) -> None:
    """Edit access to Airflow's Variables (all of them: no key): the Op role's, not the User role's."""
    if not get_auth_manager().is_authorized_variable(method="PUT", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


can_read = [Depends(dag_access("GET"))]
can_edit = [Depends(dag_access("PUT")), Depends(variables_edit)]
can_run = [*can_edit, Depends(dag_access("POST", DagAccessEntity.RUN))]


def actor(user: BaseUser) -> str:
    """The name a user's changes are recorded under in the audit log."""
    return user.get_name()


# -- the pages: who is looking, and what they may do --------------------------------------------------
class LoginRequired(Exception):
    """No valid Airflow session: go to the login page and come back."""


@dataclass(frozen=True)
class Viewer:
    user: BaseUser
    can_edit: bool
    can_run: bool
    csrf_token: str

    @property
    def name(self) -> str:
        return actor(self.user)

    @property
    def role(self) -> str:
        """SimpleAuthManager's user has one ``role``; FAB's has ``roles`` (loaded with the user)."""
        roles = getattr(self.user, "roles", None)
        if roles:
            return ", ".join(str(getattr(r, "name", r)) for r in roles)
        return str(getattr(self.user, "role", "") or "")


def _allowed(check, request: Request, user: BaseUser) -> bool:
    try:
        check(request, user)
    except HTTPException:
        return False
    return True


async def current_user(request: Request,
                       bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None
                       ) -> BaseUser:
    """Airflow's ``get_user`` (bearer header or the UI's ``_token`` cookie); no valid one -> login."""
    try:
        return await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException as exc:
        if exc.status_code in (401, 403):  # missing, expired or invalid token
            raise LoginRequired from exc
        raise


def reader(request: Request, user: Annotated[BaseUser, Depends(current_user)]) -> Viewer:
    if not _allowed(dag_access("GET"), request, user):
        raise PageError(403, "Not allowed", "Your Airflow role may not read DAGs, so it may not see chart-sync.")
    can_edit = _allowed(dag_access("PUT"), request, user) and _allowed(variables_edit, request, user)
    can_run = can_edit and _allowed(dag_access("POST", DagAccessEntity.RUN), request, user)
    return Viewer(user, can_edit, can_run, csrf.token_for(csrf.credential(request)))


async def posted_form(request: Request, viewer: Annotated[Viewer, Depends(reader)]) -> FormData:
    """The form of a write: DAG edit access, same origin and the caller's CSRF token."""
    if not viewer.can_edit:
        raise PageError(403, "Not allowed", "Your Airflow role may read chart-sync but not change it.")
    form = await request.form()
    try:
        csrf.check(request, form.get(csrf.FIELD))
    except csrf.CsrfRefused as exc:
        raise PageError(403, "Form refused", str(exc)) from exc
    return form


ViewerDep = Annotated[Viewer, Depends(reader)]
FormDep = Annotated[FormData, Depends(posted_form)]


def require_run(viewer: Viewer) -> None:
    if not viewer.can_run:
        raise PageError(403, "Not allowed", "Your Airflow role may not create DAG runs.")
