"""Sync statistics (``/ui/stats``): figures and SVG plots over a window of days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chartsync.store import pages
from chartsync.store import stats
from chartsync.core import periods, plots
from chartsync.services import budget, history, quality
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.forms import query_int
from chart_sync_admin.ui.history import period_plots
from chart_sync_admin.ui.rendering import UI, render

router = APIRouter(prefix=UI, include_in_schema=False)
STATS_WINDOWS = (7, 30, 90, 365)
QUALITY_COLOURS = ("#00ad46", "#f6a609", "#9ca3af")  # clean, flagged, not checked


def quality_plot(by_period: quality.PeriodBuckets, *, scope: str = "") -> str:
    """The rankings of each bucket of periods, stacked: clean, flagged by a soft check, stored before the checks."""
    size = by_period.size
    return plots.column_chart(
        f"Ranking quality by {size} of period{scope}",
        [(periods.bucket_label(d, size), v) for d, v in by_period.buckets], ["clean", "flagged", "not checked"],
        colours=QUALITY_COLOURS, y_label="rankings",
        x_label=f"Period ({'by ' + size if size != periods.DAY else 'day'})", empty_text="no ranking stored yet")


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, viewer: ViewerDep):
    days = query_int(request, "days", 30, 1, 3660)
    days = days if days in STATS_WINDOWS else 30
    now = datetime.now(UTC)
    overall = stats.overall_stats(chart_engine(), since=now - timedelta(days=days), now=now)
    daily = pages.daily_stats(chart_engine(), days, now=now)
    stalest = pages.stalest_schedules(chart_engine(), now=now)
    distribution = pages.freshness_distribution(chart_engine(), now=now)
    slowest = pages.slowest_charts(chart_engine(), days, now=now)

    first = next((i for i, d in enumerate(daily) if d.executions), len(daily))

    def series(name, value):  # from the first day with an execution, so every plot spans the same days
        return plots.Series(name, [(d.day, value(d) if i >= first else None) for i, d in enumerate(daily)])

    fresh = [f for f in stalest if f.value is not None]
    scale, unit = periods.age_unit(max((f.value for f in fresh), default=0))
    plots_svg = {
        "success_rate": plots.line_chart(
            "Success rate per day", [series("success rate", lambda d: None if d.success_rate is None
                                            else d.success_rate * 100)], unit="%", y_max=100, y_label="success rate"),
        "duration": plots.line_chart("Average duration per day",
                                     [series("average", lambda d: d.average_duration_seconds)], unit=" s",
                                     y_label="seconds"),
        "syncs": plots.line_chart("Syncs per day", [series("successful", lambda d: d.successful),
                                                    series("failed", lambda d: d.failed),
                                                    series("skipped", lambda d: d.skipped)], y_label="executions"),
        "freshness": plots.bar_chart(f"Stalest active schedules ({unit} since the last successful sync)",
                                     [(f.name, f.value / scale) for f in fresh], unit=f" {unit}"),
        "distribution": plots.bar_chart("Active schedules by freshness", [(k, float(v)) for k, v in distribution]),
        "slowest": plots.bar_chart(f"Slowest charts (mean duration, last {days} days)",
                                   [(f.name, f.value or 0.0) for f in slowest], unit=" s"),
    }
    by_period = history.fleet_period_stats(chart_engine(), days, now=now)
    ranking_quality = quality.quality_by_period(chart_engine(), days, now=now)
    plots_svg["quality"] = quality_plot(ranking_quality)
    return render(request, viewer, "stats.html", title="Sync statistics", nav="stats", days=days,
                  windows=STATS_WINDOWS, overall=overall, daily=daily, stalest=stalest, distribution=distribution,
                  slowest=slowest, plots=plots_svg, period_plots=period_plots(by_period), by_period=by_period,
                  ranking_quality=ranking_quality, quota=budget.report(chart_engine(), now))

