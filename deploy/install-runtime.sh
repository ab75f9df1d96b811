#!/usr/bin/env bash
# chart-sync's runtime install, in one place: the Dockerfile runs it in the image, and
# `make image-deps` (CI) runs it in a fresh venv and then `pip check`s the result, so a pin
# that breaks the image breaks CI first.
#
#   deploy/install-runtime.sh requirements|package PROJECT_DIR
#
#   requirements  the locked runtime set: PROJECT_DIR/requirements.lock (every package pinned with hashes,
#                 written from requirements.txt by make lock; pip checks each hash)
#   package       the chart-sync package itself (PROJECT_DIR holds pyproject.toml and include/), without
#                 dependencies: the lock holds them
#
# PYTHON (default: python) is the interpreter to install into. CHARTSYNC_INSTALLER: pip (default;
# the image) or uv (the CI check: cached, seconds instead of a minute). Both install the same locked
# versions, and `pip check` judges the result in CI.
set -euo pipefail
step=${1:?usage: install-runtime.sh requirements|package PROJECT_DIR}
project=${2:?usage: install-runtime.sh requirements|package PROJECT_DIR}
python=${PYTHON:-python}

case ${CHARTSYNC_INSTALLER:-pip} in
  pip) install=("$python" -m pip install --no-cache-dir) ;;
  uv) install=(uv pip install --python "$python") ;;
  *) echo "install-runtime.sh: CHARTSYNC_INSTALLER must be pip or uv" >&2; exit 2 ;;
esac

case $step in
  requirements) "${install[@]}" --require-hashes -r "$project/requirements.lock" ;;
  package) "${install[@]}" --no-deps "$project" ;;
  *) echo "install-runtime.sh: unknown step '$step' (requirements or package)" >&2; exit 2 ;;
esac
