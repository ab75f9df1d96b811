"""A ranking's quality row (``chart_ranking_quality``), write side: what its soft checks compare with
(``read_context``) and the row itself (``save_quality``), both inside the sync's transaction.

Cheap on purpose (``benchmarks/ingest.py`` measures it against ``store_ranking``): on PostgreSQL one
statement each, plain SQL on the driver's cursor as ``store.rankings`` writes. The row is written only
when a measure or a flag differs from the stored one, so a re-sync of an unchanged period changes no row
(``checked_at`` included); a repaired ranking, or one whose previous period got stored since, is
measured again and its row updated.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import Connection, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chartsync import settings
from chartsync.core.quality import QualityContext, RankingQuality
from chartsync.store.rankings import driver_cursor
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_ranking_quality, track

# The chart, the newest stored period before this one with its entries (song -> position), and the recent
# new_share history, in one row.
_CONTEXT_SQL = """
SELECT c.platform, c.max_results, c.frequency, p.period, p.songs, p.positions,
       ARRAY(SELECT q.new_share FROM chart_ranking_quality q
             WHERE q.chart_id = c.id AND q.period < %(period)s ORDER BY q.period DESC LIMIT %(history)s)
FROM chart c
LEFT JOIN LATERAL (
    SELECT r.period, array_agg(t.song_uuid) FILTER (WHERE t.id IS NOT NULL) AS songs,
           array_agg(e.position) FILTER (WHERE t.id IS NOT NULL) AS positions
    FROM (SELECT id, period FROM chart_ranking WHERE chart_id = c.id AND period < %(period)s
          ORDER BY period DESC LIMIT 1) r
    LEFT JOIN chart_ranking_entry e ON e.ranking_id = r.id
    LEFT JOIN track t ON t.id = e.track_id
    GROUP BY r.period
) p ON true
WHERE c.id = %(chart_id)s
"""

_MEASURES = ("entry_count", "expected_count", "missing_positions", "no_streams_share", "new_share",
             "usual_new_share", "previous_checked", "previous_mismatches", "flags", "flagged")


def _compared(table: str) -> str:
    return ", ".join(f"{table}.{m}::jsonb" if m == "flags" else f"{table}.{m}" for m in _MEASURES)  # json has no =


# The ranking's id by its (chart, period); an unchanged row is left alone.
_SAVE_SQL = f"""
INSERT INTO chart_ranking_quality AS q (ranking_id, chart_id, period, {", ".join(_MEASURES)}, checked_at)
SELECT r.id, r.chart_id, r.period, {", ".join(f"%({m})s" for m in _MEASURES)}, %(checked_at)s
FROM chart_ranking r WHERE r.chart_id = %(chart_id)s AND r.period = %(period)s
ON CONFLICT (ranking_id) DO UPDATE SET {", ".join(f"{m} = EXCLUDED.{m}" for m in _MEASURES)},
    checked_at = EXCLUDED.checked_at
WHERE ({_compared("q")}) IS DISTINCT FROM ({_compared("EXCLUDED")})
"""


def read_context(conn: Connection, chart_id: int, period: date) -> QualityContext:
    """What the soft checks of the chart's ranking of ``period`` compare with: the chart's platform, size
    and frequency, the newest stored period before it and its entries, and the new_share of the chart's
    last ``QUALITY_CHURN_HISTORY`` checked rankings before it (newest first)."""
    params = {"chart_id": chart_id, "period": period, "history": settings.QUALITY_CHURN_HISTORY}
    if conn.dialect.name == "postgresql":
        with driver_cursor(conn, "SELECT quality context") as cursor:
            cursor.execute(_CONTEXT_SQL, params)
            row = cursor.fetchone()
        if row is None:
            return QualityContext()
        platform, size, frequency, previous, songs, positions, shares = row
        return QualityContext(platform, size, frequency, previous, dict(zip(songs or (), positions or ())),
                              tuple(shares))
    return _read_context(conn, params)


def _read_context(conn: Connection, params: dict) -> QualityContext:
    c, r, e, q = chart.c, chart_ranking.c, chart_ranking_entry.c, chart_ranking_quality.c
    head = conn.execute(select(c.platform, c.max_results, c.frequency).where(c.id == params["chart_id"])).first()
    if head is None:
        return QualityContext()
    before = (r.chart_id == params["chart_id"]) & (r.period < params["period"])
    previous = conn.execute(select(r.id, r.period).where(before).order_by(r.period.desc()).limit(1)).first()
    positions = {}
    if previous is not None:
        positions = dict(conn.execute(select(track.c.song_uuid, e.position).join(track, track.c.id == e.track_id)
                                      .where(e.ranking_id == previous.id)).all())
    shares = conn.execute(select(q.new_share).where(q.chart_id == params["chart_id"], q.period < params["period"])
                          .order_by(q.period.desc()).limit(params["history"])).scalars().all()
    return QualityContext(head.platform, head.max_results, head.frequency, previous and previous.period,
                          positions, tuple(shares))


def save_quality(conn: Connection, chart_id: int, period: date, quality: RankingQuality, now: datetime) -> bool:
    """Upsert the quality row of the chart's stored ranking of ``period``; False when it held these values
    already (and was left as it was)."""
    values = {**{m: getattr(quality, m) for m in _MEASURES}, "flags": json.dumps(list(quality.flags))}
    if conn.dialect.name == "postgresql":
        with driver_cursor(conn, "INSERT chart_ranking_quality") as cursor:
            cursor.execute(_SAVE_SQL, {**values, "chart_id": chart_id, "period": period, "checked_at": now})
            return cursor.rowcount > 0
    r, q = chart_ranking.c, chart_ranking_quality.c
    ranking = conn.execute(select(r.id).where(r.chart_id == chart_id, r.period == period)).scalar_one()
    values["flags"] = list(quality.flags)  # the JSON type serializes it
    insert = sqlite_insert(chart_ranking_quality).values(ranking_id=ranking, chart_id=chart_id, period=period,
                                                         checked_at=now, **values)
    changed = or_(*(q[m].is_distinct_from(insert.excluded[m]) for m in _MEASURES))
    return conn.execute(insert.on_conflict_do_update(
        index_elements=["ranking_id"], set_={m: insert.excluded[m] for m in (*_MEASURES, "checked_at")},
        where=changed)).rowcount > 0
