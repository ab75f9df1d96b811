"""A ranking's quality row (``chart_ranking_quality``), write side, inside the sync's transaction:
``save_quality``, or ``row_statement`` for ``store.rankings.store_claimed`` to send with the ranking's
entries. What the checks compare with is read by the ranking's claim (``store.rankings.claim_period``).

Cheap on purpose (``benchmarks/ingest.py`` measures the checks against ``store_ranking``): on PostgreSQL
one statement in plain SQL on the driver's cursor, sent in the round trip of the entries' COPY when there
is one. The row is written only when a measure or a flag differs from the stored one, so a re-sync of an
unchanged period changes no row (``checked_at`` included); a repaired ranking, or one whose previous
period got stored since, is measured again and its row updated.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import Connection, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chartsync.core.quality import RankingQuality
from chartsync.store.driver import driver_cursor
from chartsync.store.tables import chart_ranking, chart_ranking_quality

_MEASURES = ("entry_count", "expected_count", "missing_positions", "no_streams_share", "new_share",
             "usual_new_share", "previous_checked", "previous_mismatches", "flags", "flagged")


def _compared(table: str) -> str:
    return ", ".join(f"{table}.{m}::jsonb" if m == "flags" else f"{table}.{m}" for m in _MEASURES)  # json has no =


# A ranking this transaction just claimed has no row yet.
_INSERT_SQL = f"""
INSERT INTO chart_ranking_quality AS q (ranking_id, chart_id, period, {", ".join(_MEASURES)}, checked_at)
VALUES (%(ranking_id)s, %(chart_id)s, %(period)s, {", ".join(f"%({m})s" for m in _MEASURES)}, %(checked_at)s)
"""
# A stored ranking's row: its id by (chart, period); an unchanged row is left alone.
_UPSERT_SQL = _INSERT_SQL.replace("%(ranking_id)s", "(SELECT id FROM chart_ranking WHERE chart_id = %(chart_id)s AND "
                                                    "period = %(period)s)") + f"""
ON CONFLICT (ranking_id) DO UPDATE SET {", ".join(f"{m} = EXCLUDED.{m}" for m in _MEASURES)},
    checked_at = EXCLUDED.checked_at
WHERE ({_compared("q")}) IS DISTINCT FROM ({_compared("EXCLUDED")})
"""


def save_quality(conn: Connection, chart_id: int, period: date, quality: RankingQuality, now: datetime, *,
                 claimed_id: int | None = None) -> bool:
    """Write the quality row of the chart's stored ranking of ``period``; False when the row held these values
    already (and was left as it was). ``claimed_id``: the ranking this transaction just inserted, which has
    no row yet (a plain insert, a tenth of a millisecond cheaper than the upsert)."""
    if conn.dialect.name == "postgresql":
        with driver_cursor(conn, "INSERT chart_ranking_quality") as cursor:
            cursor.execute(row_statement(cursor, chart_id, period, quality, now, claimed_id=claimed_id))
            return cursor.rowcount > 0
    values = {m: getattr(quality, m) for m in _MEASURES}
    ranking_id = claimed_id
    if ranking_id is None:
        r = chart_ranking.c
        ranking_id = conn.execute(select(r.id).where(r.chart_id == chart_id, r.period == period)).scalar_one()
    values["flags"] = list(quality.flags)  # the JSON type serializes it
    insert = sqlite_insert(chart_ranking_quality).values(ranking_id=ranking_id, chart_id=chart_id, period=period,
                                                         checked_at=now, **values)
    q = chart_ranking_quality.c
    changed = or_(*(q[m].is_distinct_from(insert.excluded[m]) for m in _MEASURES))
    return conn.execute(insert.on_conflict_do_update(
        index_elements=["ranking_id"], set_={m: insert.excluded[m] for m in (*_MEASURES, "checked_at")},
        where=changed)).rowcount > 0


def row_statement(cursor, chart_id: int, period: date, quality: RankingQuality, now: datetime, *,
                  claimed_id: int | None = None) -> str:
    """``save_quality``'s statement on PostgreSQL, its values bound by the driver's ``cursor`` (psycopg2 binds
    on the client): one that can go in a query string with another statement (``store.rankings`` sends it
    with the entries' COPY)."""
    values = {m: getattr(quality, m) for m in _MEASURES}
    values.update(flags=json.dumps(list(quality.flags)), ranking_id=claimed_id, chart_id=chart_id, period=period,
                  checked_at=now)
    return cursor.mogrify(_UPSERT_SQL if claimed_id is None else _INSERT_SQL, values).decode()
