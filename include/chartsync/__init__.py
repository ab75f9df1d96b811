"""chart-sync: keep a warehouse of Soundcharts chart rankings complete and fresh, on Airflow 3."""

__version__ = "0.1.0"
