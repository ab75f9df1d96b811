# The image: the official apache/airflow 3.3.2 with the chart-sync package and its DAGs and plugin.
# deploy/docker-compose.yaml and deploy/helm/values.yaml run it. The install steps are
# deploy/install-runtime.sh, which CI also runs in a clean venv (make image-deps).
FROM apache/airflow:3.3.2-python3.11

# the locked runtime set first (requirements.lock, hashes checked): its layer survives changes to the code
COPY --chown=airflow:root requirements.lock /opt/chart-sync/
COPY --chown=airflow:root deploy/install-runtime.sh /opt/chart-sync/deploy/
RUN bash /opt/chart-sync/deploy/install-runtime.sh requirements /opt/chart-sync

COPY --chown=airflow:root pyproject.toml /opt/chart-sync/
COPY --chown=airflow:root include /opt/chart-sync/include
RUN bash /opt/chart-sync/deploy/install-runtime.sh package /opt/chart-sync

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root airflow_settings.yaml /opt/airflow/airflow_settings.yaml
