"""The core: pure domain values and rules (calendar and timing tables, the schedule and its one
validator, status and overdue rules, sync outcomes, alert texts, trends, plots, paging).

Imports nothing of Airflow or the database; everything above may import it.
"""
