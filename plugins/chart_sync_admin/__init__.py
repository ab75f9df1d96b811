"""Airflow plugin ``chart_sync_admin``: the chart-sync REST API and admin pages inside the Airflow API server.

Mounted at ``/chart-sync`` (the spec at ``/chart-sync/openapi.json``; the HTML pages under
``/chart-sync/ui/``, listed in the Airflow UI's navigation as external views). Every Airflow process
imports plugins, task runs included, but only the API server serves this app, so the FastAPI
app (and Airflow's API security module) is imported and built on its first request. The plugin's
listeners (``listeners.py``) show chart-sync every failed try of a chart DAG.
``.airflowignore`` keeps Airflow from importing the package's other modules as plugins.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from chartsync.builders.priority import NewestPeriodFirst

from chart_sync_admin import listeners
from chart_sync_admin.paths import URL_PREFIX


class DeferredApp:
    """An ASGI app that builds ``chart_sync_admin.app.create_app()`` when the first request arrives."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            # deferred: every Airflow process imports plugins; only the API server builds and serves the app
            from chart_sync_admin.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ChartSyncAdminPlugin(AirflowPlugin):
    name = "chart_sync_admin"
    # Every failed try of a chart DAG reaches chart-sync (task process, scheduler, api-server): listeners.py
    listeners: ClassVar[list] = [listeners]
    # The chart DAGs' weight rule (fresh data first in the API pool): Airflow serializes a DAG that names a
    # custom strategy only when a plugin registers it (builders.priority)
    priority_weight_strategies: ClassVar[list] = [NewestPeriodFirst]
    fastapi_apps: ClassVar[list[dict]] = [{"app": DeferredApp(), "url_prefix": URL_PREFIX, "name": "chart-sync REST API"}]
    # The admin pages (ui/), in the Airflow UI's navigation: each renders inside the UI at /plugin/<url_route>.
    # Then a "Chart sync" tab on every DAG's page and every DAG run's page (the UI fills in {DAG_ID} and
    # {RUN_ID}, URL-encoded; the tabs live at /dags/<id>/plugin/<url_route> and .../runs/<id>/plugin/<url_route>).
    external_views: ClassVar[list[dict]] = [
        *({"name": name, "href": f"{URL_PREFIX}/ui/{page}", "url_route": f"chart-sync-{page}", "category": "Chart sync",
           "destination": "nav", "icon": f"{URL_PREFIX}/ui/static/icon.svg"}
          for name, page in (("Charts", "charts"), ("Sync schedules", "schedules"), ("Sync stats", "stats"),
                             ("Sync alerts", "alerts"), ("Sync audit log", "audit"))),
        {"name": "Chart sync", "href": URL_PREFIX + "/ui/dags/{DAG_ID}", "url_route": "chart-sync-dag",
         "destination": "dag", "icon": f"{URL_PREFIX}/ui/static/icon.svg"},
        {"name": "Chart sync", "href": URL_PREFIX + "/ui/dags/{DAG_ID}/runs/{RUN_ID}", "url_route": "chart-sync-run",
         "destination": "dag_run", "icon": f"{URL_PREFIX}/ui/static/icon.svg"},
    ]
