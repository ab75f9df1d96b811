"""The "Chart sync" tabs of the Airflow UI's own pages (external views with destination ``dag`` and
``dag_run``; the UI puts the DAG id and run id into ``/ui/dags/{DAG_ID}`` and
``/ui/dags/{DAG_ID}/runs/{RUN_ID}``).

A chart DAG's tab shows its coverage strip, live gaps with the heal action, its data quality and the
history by period, the same partials as the schedule page; a run's tab names the period the run synced,
the data quality of the ranking it stored (as the ranking page shows it) and lists its tries.
Every DAG gets the tab (Airflow has no per-DAG filter), so another DAG's tab says it is not a chart DAG.
"""

from __future__ import annotations

from chartsync.services import quality, schedules
from chartsync.services.charts import ChartNotFound
from chartsync.settings import DAG_ID_PREFIX
from chartsync.store import pages
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.rendering import UI, render
from chart_sync_admin.ui.schedules import quality_context, schedule_context

router = APIRouter(prefix=UI, include_in_schema=False)


def _schedule_of_dag(dag_id: str):
    """The schedule whose DAG this is, or None (not a chart DAG, or its schedule was removed)."""
    if not dag_id.startswith(DAG_ID_PREFIX):
        return None
    try:
        return schedules.schedule_of_slug(chart_engine(), dag_id[len(DAG_ID_PREFIX):])
    except (ChartNotFound, schedules.ScheduleNotFound):
        return None


@router.get("/dags/{dag_id}", response_class=HTMLResponse)
def dag_tab(request: Request, viewer: ViewerDep, dag_id: str):
    row = _schedule_of_dag(dag_id)
    if row is None:
        return render(request, viewer, "dag_tab.html", title=dag_id, nav=None, tab=True, dag_id=dag_id, s=None)
    context = schedule_context(request, row.id)
    context["title"] = f"{row.name}: chart sync"
    return render(request, viewer, "dag_tab.html", nav=None, tab=True, dag_id=dag_id,
                  history_path=f"/dags/{dag_id}", quality_path=f"/dags/{dag_id}", **context,
                  **quality_context(request, row.id))


@router.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
def run_tab(request: Request, viewer: ViewerDep, dag_id: str, run_id: str):
    row = _schedule_of_dag(dag_id)
    tries = pages.run_executions(chart_engine(), dag_id, run_id) if row is not None else []
    synced = sorted({t["period"] for t in tries if t["period"] is not None})
    stored = sorted({t["period"] for t in tries if t["period"] is not None and t["status"] == "success"})
    qualities = [quality.ranking_quality(chart_engine(), row.chart_id, period) for period in stored]
    return render(request, viewer, "run_tab.html", title=f"{dag_id} {run_id}", nav=None, tab=True, dag_id=dag_id,
                  run_id=run_id, row=row, tries=tries, periods=synced, latest=tries[-1] if tries else None,
                  qualities=qualities, flag_labels=quality.FLAG_LABELS)
