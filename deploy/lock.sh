#!/usr/bin/env bash
# The locked install, in one place. From the files a person edits, requirements-dev.txt (the suite's tools,
# with -r requirements.txt: the runtime set), it writes
#   requirements-dev.lock  the whole environment of make setup and CI
#   requirements.lock      the runtime subset at the same versions: what the Docker image installs
# for Python 3.11 on every platform (uv --universal), each package pinned with its hashes.
#
#   deploy/lock.sh write|check [PROJECT_DIR] [UV_ARGS...]
#
#   write  regenerate both locks (make lock). A lock that exists already is uv's preference: what its
#          inputs still allow stays at its version, so a new pin moves only what it has to. UV_ARGS go to
#          uv pip compile: --upgrade-package NAME moves one package that no input pins (make lock
#          LOCK_ARGS="--upgrade-package urllib3"), --upgrade moves them all.
#   check  regenerate both in a scratch copy and compare (make lint): exit 1, naming what differs, when a
#          lock no longer matches its inputs. Resolving needs the package index (or uv's cache).
#
# UV (default: uv on PATH) is the uv to run; its version is pinned in the Makefile, because the lock's
# format is uv's.
set -euo pipefail
mode=${1:?usage: lock.sh write|check [PROJECT_DIR]}
project=$(cd "${2:-.}" && pwd)
shift $(($# < 2 ? $# : 2))
extra=("$@")
uv=${UV:-uv}

compile() {  # input output [uv args]: run in the directory that holds the files
  local input=$1 output=$2
  shift 2
  "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "make lock" "$input" -o "$output" "$@" ${extra[@]+"${extra[@]}"}
}

lock_in() {  # dir: the dev lock first (its pins win), then the runtime lock constrained to its versions
  (cd "$1" && compile requirements-dev.txt requirements-dev.lock && \
    compile requirements.txt requirements.lock -c requirements-dev.lock)
}

case $mode in
  write)
    lock_in "$project"
    echo "lock.sh: wrote requirements-dev.lock ($(grep -c '^[A-Za-z0-9].*==' "$project/requirements-dev.lock") packages)" \
      "and requirements.lock ($(grep -c '^[A-Za-z0-9].*==' "$project/requirements.lock") packages)"
    ;;
  check)
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    for file in requirements.txt requirements-dev.txt requirements.lock requirements-dev.lock; do
      [ -f "$project/$file" ] || { echo "lock.sh: $file is missing: run make lock" >&2; exit 1; }
      cp "$project/$file" "$scratch/"
    done
    lock_in "$scratch"
    stale=0
    for file in requirements-dev.lock requirements.lock; do
      if ! diff -u "$project/$file" "$scratch/$file" >"$scratch/$file.diff"; then
        echo "lock.sh: $file does not match requirements-dev.txt and requirements.txt any more;" \
          "run make lock and commit it. What changes:" >&2
        grep -E '^[-+][A-Za-z0-9]' "$scratch/$file.diff" | head -20 >&2
        stale=1
      fi
    done
    [ "$stale" -eq 0 ] && echo "lock.sh: requirements.lock and requirements-dev.lock match their inputs"
    exit "$stale"
    ;;
  *) echo "lock.sh: unknown mode '$mode' (write or check)" >&2; exit 2 ;;
esac
