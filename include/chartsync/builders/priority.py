"""Fresh data first in the ``soundcharts_api`` pool: the chart DAGs' priority weight strategy.

When the newest period of one chart and the catchup periods of others queue for the pool's slots, the
scheduler hands slots out by priority weight. ``NewestPeriodFirst`` weighs a task instance by how recent its
run is: Airflow 3.3.2 asks the strategy once, when it creates the task instance (``TaskInstance.insert_mapping``
and ``refresh_from_task``, again when a task is cleared), with a bare task instance that knows its ``run_id``
and ``task`` but not its run. A scheduled or backfill run's id carries its run-after date
(``scheduled__2026-02-09T00:00:00+00:00`` syncs 2026-02-08): the newest period's run is created as its
run-after date passes, a catchup run long after, so the younger the run-after date at creation, the higher
the weight. Backfills are history: no bonus. A run id without a date (a custom one) counts as fresh.

Registered by the plugin (``priority_weight_strategies``): Airflow serializes a DAG that names a strategy only
where a plugin registers it, so ``chart_weight_rule`` names it only then; elsewhere (the plugin not loaded) the
DAGs keep Airflow's default rule and a warning says so, rather than failing to serialize.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache

from airflow.task.priority_strategy import PriorityWeightStrategy

log = logging.getLogger(__name__)

HORIZON_HOURS = 400 * 24  # runs older than this (at creation) get no bonus: about a year of history and more


def run_after_of(run_id: str | None) -> datetime | None:
    """The run-after date a run id carries (``<type>__<iso>``, maybe ``_<random>`` after it), or None."""
    if not run_id or "__" not in run_id:
        return None
    suffix = run_id.split("__", 1)[1]
    for text in (suffix, suffix.rsplit("_", 1)[0]):
        try:
            found = datetime.fromisoformat(text)
        except ValueError:
            continue
        return found if found.tzinfo else found.replace(tzinfo=UTC)
    return None


def freshness_bonus(run_id: str | None, now: datetime) -> int:
    """HORIZON_HOURS for a run created as its run-after date passed (the newest period, a manual run), one
    less per hour the run-after date was already past; none for a backfill or past the horizon."""
    if run_id and run_id.startswith("backfill__"):
        return 0
    run_after = run_after_of(run_id)
    if run_after is None:
        return HORIZON_HOURS
    age_hours = int((now - run_after).total_seconds() // 3600)
    return min(HORIZON_HOURS, max(0, HORIZON_HOURS - age_hours))


class NewestPeriodFirst(PriorityWeightStrategy):
    """The task's own ``priority_weight`` plus ``freshness_bonus`` of its run (see the module doc)."""

    def get_weight(self, ti) -> int:
        task = getattr(ti, "task", None)
        base = int(getattr(task, "priority_weight", 1) or 1)
        return base + freshness_bonus(getattr(ti, "run_id", None), datetime.now(UTC))


@cache
def chart_weight_rule() -> PriorityWeightStrategy | None:
    """``NewestPeriodFirst()`` where the plugin registers it, else None: Airflow's default rule (``[core]
    default_task_weight_rule``). Decided once per process."""
    from airflow import plugins_manager  # deferred: loaded where the DAGs are built, after Airflow's settings

    name = f"{NewestPeriodFirst.__module__}.{NewestPeriodFirst.__qualname__}"
    try:
        registered = name in plugins_manager.get_priority_weight_strategy_plugins()
    except Exception:  # no plugins folder, a plugin that fails to load
        log.warning("chart-sync: Airflow's plugins could not be read", exc_info=True)
        registered = False
    if registered:
        return NewestPeriodFirst()
    log.warning("chart-sync: the chart_sync_admin plugin is not loaded: the chart DAGs keep Airflow's default "
                "priority weight (the newest periods do not go before history in the API pool)")
    return None
