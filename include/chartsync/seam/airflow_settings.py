"""Load ``airflow_settings.yaml`` (connections, pools, variables) into Airflow.

Goes through Airflow's own CLI import commands, so it is idempotent (existing entries are
overwritten) and works with any metadata DB. ``${VAR}`` in values is expanded from the
environment; the file itself uses none, so a tool that does not expand them reads it as written. A
SQLite connection's relative path (the chart DB's ``chart.db``) is a file in ``AIRFLOW_HOME``.

A connection that an ``AIRFLOW_CONN_<ID>`` variable sets is written as the variable says, not as the
file says: Airflow's components use the variable over the metadata DB, and the Connections page shows
the metadata DB's copy, which must not tell another story (``make run`` writes its own the same way at
each start). The files handed to Airflow hold passwords: they live in a private temporary folder for
the command's length, and nothing here prints them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

IMPORT_COMMANDS = {  # Airflow's CLI, given a JSON file of each kind
    "connections": ["connections", "import", "--overwrite"],
    "pools": ["pools", "import"],
    "variables": ["variables", "import", "-a", "overwrite"],
}


def parse(path: Path) -> dict[str, dict]:
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.get("airflow") or {}
    connections = {}
    for c in section.get("connections") or []:
        extra = c.get("conn_extra")
        connections[c["conn_id"]] = {
            "conn_type": c.get("conn_type"),
            "host": _sqlite_path(_expand(c.get("conn_host"))) if c.get("conn_type") == "sqlite"
            else _expand(c.get("conn_host")),
            "login": _expand(c.get("conn_login")),
            "password": _expand(c.get("conn_password")),
            "schema": _expand(c.get("conn_schema")),
            "port": c.get("conn_port"),
            "extra": json.dumps(extra) if isinstance(extra, dict) else extra,
        }
    pools = {
        p["pool_name"]: {"slots": int(p["pool_slot"]), "description": p.get("pool_description") or "",
                         "include_deferred": False}
        for p in section.get("pools") or []
    }
    variables = {v["variable_name"]: _expand(str(v["variable_value"])) for v in section.get("variables") or []}
    return {"connections": connections, "pools": pools, "variables": variables}


def _sqlite_path(path: str | None) -> str | None:
    """A relative SQLite path as a file in AIRFLOW_HOME (Airflow's default home when it is not set)."""
    if not path or os.path.isabs(path):
        return path
    return os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), path)


def _expand(value):
    return os.path.expandvars(value) if isinstance(value, str) else value


def from_environment(env: dict[str, str], conn_ids: Iterable[str]) -> dict[str, dict | str]:
    """The connections among ``conn_ids`` that ``env`` sets, as Airflow's import file takes them: the
    ``AIRFLOW_CONN_<ID>`` value's JSON object, or its URI."""
    found: dict[str, dict | str] = {}
    for conn_id in conn_ids:
        value = env.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
        if value:
            found[conn_id] = json.loads(value) if value.startswith("{") else value
    return found


def import_file(folder: Path, kind: str, items: dict) -> Path:
    """``items`` as the JSON file ``airflow <IMPORT_COMMANDS[kind]> FILE`` reads; ``folder`` should be private
    (a ``tempfile.TemporaryDirectory``): connections carry passwords."""
    file = folder / f"{kind}.json"
    file.write_text(json.dumps(items))
    return file


def load(path: Path, overrides: dict[str, dict] | None = None) -> dict[str, int]:
    """Import everything in ``path``; ``overrides`` replaces whole connections by id, and so does an
    ``AIRFLOW_CONN_<ID>`` variable of this process (last: it is what Airflow's components use)."""
    settings = parse(path)
    settings["connections"].update(overrides or {})
    settings["connections"].update(from_environment(dict(os.environ), list(settings["connections"])))
    airflow = str(Path(sys.executable).with_name("airflow"))
    with tempfile.TemporaryDirectory() as tmp:
        for kind, args in IMPORT_COMMANDS.items():
            if not settings[kind]:
                continue
            file = import_file(Path(tmp), kind, settings[kind])
            done = subprocess.run([airflow, *args, str(file)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"airflow {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return {kind: len(items) for kind, items in settings.items()}
