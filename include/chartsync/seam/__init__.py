"""The Airflow seam: what chart-sync asks of Airflow outside the DAGs it hands over.

Connections and Variables from any process, ``airflow.cfg`` values, triggering runs, pausing
DAGs, creating backfills and reading DAG states, the alert notifiers (provider classes) and
loading ``airflow_settings.yaml``. Services call these functions; they never import ``airflow``.
"""
