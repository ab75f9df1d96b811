"""The warehouse-wide quality checks DAG: daily, one common.sql ``SQLTableCheckOperator`` task per
check against the ``chart_db`` connection, each task named after its check.

How the provider runs a check (``providers/common/sql/operators/sql.py``, common-sql 2.4.0):
``SELECT CASE WHEN <check_statement> THEN 1 ELSE 0 END FROM <table> WHERE <partition_clause>``,
then ``MIN`` of that. The table is not aliased, so a correlated subquery in the clause names it by
its table name. A row-wise statement (``EXISTS (...)`` per entry) would fail on an empty table: the
``MIN`` of no rows is NULL, which the operator cannot read as a boolean. So every check here is
"``COUNT(*) = 0`` of the rows that break the rule", the rule's negation in ``partition_clause``: an
aggregate always answers one row, and an empty warehouse passes. The SQL is plain enough for
PostgreSQL and SQLite alike (the SQLite connection needs the sqlite provider's hook).

``SQLColumnCheckOperator`` only offers null, distinct, unique, min and max of one column: it cannot
say "references a row of another table", "unique per (chart, period)", "matches a count of other
rows" or "empty after trimming", so no check here uses it.

A failed check fails its task at once (``retry_on_failure=False``: the provider raises
``AirflowFailException``, as re-reading the same rows cannot help); a database error is retried as
usual. The failure callback of every chart-sync task (``builders.callbacks.on_task_failure``) then
raises the failure alert to the alert channels and records it in ``chart_sync_alert`` (the alerts
feed): its summary starts with the task id, the check's name. The provider's own message leads with
its generated SQL, which a stakeholder cannot act on, so ``WarehouseCheckOperator`` fails with the
rule, how many rows break it and the query that lists them instead (the provider's message stays in
the task log).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from chartsync import settings
from chartsync.builders.defaults import housekeeping_dag_kwargs
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, track

# plain str: SQLAlchemy's quoted_name would reach the operators' template fields, which Airflow cannot serialize
CHART, RANKING, ENTRY, TRACK = (str(t.name) for t in (chart, chart_ranking, chart_ranking_entry, track))


@dataclass(frozen=True)
class WarehouseCheck:
    """One rule over the stored warehouse: ``broken`` selects the rows of ``table`` that break it."""

    name: str  # the task id, and the check's name in the provider's message
    table: str
    broken: str  # a WHERE condition on ``table``; a correlated subquery names it by its table name
    rule: str  # what holds when the check passes, for the task's documentation

    @property
    def finder(self) -> str:
        """The query that lists the rows breaking the rule."""
        return f"SELECT * FROM {self.table} WHERE {self.broken}"

    def operator(self) -> WarehouseCheckOperator:
        return WarehouseCheckOperator(
            task_id=self.name,
            conn_id=settings.CHART_DB_CONN_ID,
            table=self.table,
            checks={self.name: {"check_statement": "COUNT(*) = 0", "partition_clause": self.broken}},
            retry_on_failure=False,
            rule=self.rule,
            finder=self.finder,
            doc_md=f"{self.rule}\n\nFails when this finds rows:\n\n```sql\n{self.finder}\n```",
        )


class WarehouseCheckOperator(SQLTableCheckOperator):
    """The provider's table check, failing with a message a stakeholder can act on: the check's rule, how
    many rows of the table break it, and the query that lists them (SQL last: an alert's summary is cut at
    500 characters)."""

    def __init__(self, *, rule: str, finder: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rule = rule
        self.finder = finder

    def execute(self, context) -> None:
        try:
            super().execute(context)
        except AirflowFailException as exc:
            self.log.info("The provider's message:\n%s", exc)
            count = self._broken_rows()
            rows = "rows" if count is None else "1 row" if count == 1 else f"{count} rows"
            # no check name in front: the task is the check, and the alert leads with the task id
            raise AirflowFailException(f"{rows} of {self.table} {'breaks' if count == 1 else 'break'} the rule "
                                       f'"{self.rule}" (listed by: {self.finder})') from None

    def _broken_rows(self) -> int | None:
        """How many rows break the rule; None when they cannot be counted."""
        try:
            return self.get_db_hook().get_first(f"SELECT COUNT(*) FROM ({self.finder}) broken")[0]
        except Exception as exc:  # the count only adds detail: the check has failed either way
            self.log.warning("Could not count the rows that break %s: %s", self.task_id, exc)
            return None


CHECKS = (
    WarehouseCheck("entries_reference_rankings", ENTRY,
                   f"NOT EXISTS (SELECT 1 FROM {RANKING} WHERE {RANKING}.id = {ENTRY}.ranking_id)",
                   "Every ranking entry belongs to a stored ranking."),
    WarehouseCheck("entries_reference_tracks", ENTRY,
                   f"NOT EXISTS (SELECT 1 FROM {TRACK} WHERE {TRACK}.id = {ENTRY}.track_id)",
                   "Every ranking entry lists a stored track."),
    WarehouseCheck("rankings_reference_charts", RANKING,
                   f"NOT EXISTS (SELECT 1 FROM {CHART} WHERE {CHART}.id = {RANKING}.chart_id)",
                   "Every ranking belongs to a stored chart."),
    WarehouseCheck("one_ranking_per_chart_period", RANKING,
                   f"EXISTS (SELECT 1 FROM {RANKING} other WHERE other.chart_id = {RANKING}.chart_id "
                   f"AND other.period = {RANKING}.period AND other.id <> {RANKING}.id)",
                   "A chart has at most one ranking per period."),
    WarehouseCheck("entry_count_matches_entries", RANKING,
                   f"{RANKING}.entry_count <> (SELECT COUNT(*) FROM {ENTRY} WHERE {ENTRY}.ranking_id = {RANKING}.id)",
                   "A ranking's entry_count is the number of its entry rows."),
    WarehouseCheck("tracks_have_names", TRACK, f"{TRACK}.name IS NULL OR TRIM({TRACK}.name) = ''",
                   "Every track has a name (not NULL, not empty)."),
)


def build_quality_check_dag() -> DAG:
    listing = "\n".join(f"- `{c.name}`: {c.rule}" for c in CHECKS)
    with DAG(
        dag_id=settings.QUALITY_CHECK_DAG_ID,
        description="Daily warehouse-wide data quality checks of the chart DB (references, uniqueness, counts, names)",
        **housekeeping_dag_kwargs("0 5 * * *", "quality"),  # after the gap audit, before the digest
        doc_md=(
            "# Warehouse quality checks\n\nDaily at 05:00 UTC (and on demand), common.sql's "
            f"`SQLTableCheckOperator` on the `{settings.CHART_DB_CONN_ID}` connection, one task per check:\n\n"
            f"{listing}\n\nA failed check fails its task without retries and raises a failure alert naming "
            "the check (the channels of the Variable `chartsync_alert_channels`, and the alerts feed); the "
            "daily digest lists it. Each task's documentation holds the SQL that finds the offending rows."
        ),
    ) as dag:
        for check in CHECKS:
            check.operator()
    return dag
