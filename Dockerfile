# Astro-compatible image: Airflow 3.3.2 with the chart-sync package and its DAGs/plugins.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt pyproject.toml /opt/chart-sync/
COPY --chown=airflow:root include /opt/chart-sync/include
RUN pip install --no-cache-dir -r /opt/chart-sync/requirements.txt \
    && pip install --no-cache-dir /opt/chart-sync

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root airflow_settings.yaml /opt/airflow/airflow_settings.yaml
