"""A schedule's history by period and its plots by period: the parts of the schedule page
(``/ui/schedules/{id}``) that read the execution log by period, and the stats page's period plots."""

from __future__ import annotations

from chartsync.core import periods, plots
from chartsync.core.outcomes import EXECUTION_STATUSES, FAILED
from chartsync.core.paging import PageRequest
from chartsync.services import coverage, history
from chartsync.store.engine import chart_engine
from fastapi import Request

from chart_sync_admin.ui.forms import iso_date, query_choice, query_int, query_text

HISTORY_PAGE_SIZE = 25
OUTCOME_COLOURS = ("#00ad46", "#e43921", "#9ca3af")  # stored, failed, skipped: as the badges
EXPECTED = {coverage.SYNCED: True, coverage.MISSING: False, FAILED: False}  # else not expected (skipped, not due)


def history_filters(request: Request) -> dict:
    """The history's GET filters: the latest status and a period range (``from``, ``to``)."""
    return {"status": query_choice(request, "status", EXECUTION_STATUSES),
            "from": iso_date(query_text(request, "from", 10)), "to": iso_date(query_text(request, "to", 10))}


def schedule_history(request: Request, schedule_id: int, config, strip: list) -> dict:
    """The schedule page's context for its history by period, catchup progress and period plots."""
    engine = chart_engine()
    filters = history_filters(request)
    page = history.period_history(engine, schedule_id, status=filters["status"], first=filters["from"],
                                  last=filters["to"],
                                  paging=PageRequest.number(query_int(request, "page", 1), HISTORY_PAGE_SIZE))
    context = {"history": page, "history_filters": filters, "catchup": None, "period_plots": None}
    if config is None:
        return context
    summary = history.schedule_periods(engine, [schedule_id]).get(schedule_id)
    context["catchup"] = summary.catchup if summary else None
    cells = [(cell.period, EXPECTED.get(cell.status)) for cell in strip]
    context["period_plots"] = period_plots(history.schedule_period_stats(engine, config, cells,
                                                                         first=strip[0].period if strip else None))
    return context


def period_plots(stats: history.PeriodStats, *, scope: str = "") -> dict[str, str]:
    """Coverage, outcomes and freshness over the periods (never over the day a sync ran)."""
    size = stats.size
    axis = f"Period ({'by ' + size if size != periods.DAY else 'day'})"
    lags = [v for series in stats.freshness.values() for _, v in series]
    scale, unit = periods.age_unit(max(lags, default=0))
    return {
        "coverage": plots.column_chart(
            f"Coverage by {size} of period{scope}",
            [(periods.bucket_label(d, size), [v]) for d, v in stats.coverage], ["stored"], unit="%",
            y_max=100, y_label="periods stored", x_label=axis, empty_text="no period due yet"),
        "outcomes": plots.column_chart(
            f"Sync outcome by {size} of period{scope}",
            [(periods.bucket_label(d, size), v) for d, v in stats.outcomes],
            ["stored", "failed", "skipped"], colours=OUTCOME_COLOURS, y_label="periods",
            x_label=axis, empty_text="no period synced yet"),
        "freshness": plots.line_chart(
            f"Freshness by period{scope}",
            [plots.Series(name, [(d, v / scale) for d, v in series]) for name, series in stats.freshness.items()],
            unit=f" {unit}", y_label=f"{unit} after publication", x_label="Period",
            empty_text="no period stored yet"),
    }


def schedule_table_periods(result) -> dict:
    """The schedule table's figures by period: failed periods and catchup progress per schedule id."""
    summary = history.schedule_periods(chart_engine(), [item["id"] for item in result.items])
    return {"failed_periods": {i: p.failed for i, p in summary.items()},
            "catchup": {i: p.catchup for i, p in summary.items() if p.catchup is not None}}
