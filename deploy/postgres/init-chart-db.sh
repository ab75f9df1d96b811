#!/usr/bin/env bash
# The postgres image runs this once, when its volume is first initialised: beside Airflow's
# metadata DB (POSTGRES_DB, owned by POSTGRES_USER) it creates the chart DB and its owner, the
# names deploy/docker-compose.yaml's chart_db connection uses. The schema is chartsync's own
# (`chartsync db upgrade`, run by the airflow-init service).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v chart_password="${CHART_DB_PASSWORD:?CHART_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE chartsync LOGIN PASSWORD :'chart_password';
CREATE DATABASE chartsync OWNER chartsync;
SQL
