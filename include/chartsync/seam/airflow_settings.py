"""Load an Astro-CLI ``airflow_settings.yaml`` (connections, pools, variables) into Airflow.

Goes through Airflow's own CLI import commands, so it is idempotent (existing entries are
overwritten) and works with any metadata DB. ``${VAR}`` in values is expanded from the
environment (e.g. ``${AIRFLOW_HOME}`` for the SQLite chart DB path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def parse(path: Path) -> dict[str, dict]:
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.get("airflow") or {}
    connections = {}
    for c in section.get("connections") or []:
        extra = c.get("conn_extra")
        connections[c["conn_id"]] = {
            "conn_type": c.get("conn_type"),
            "host": _expand(c.get("conn_host")),
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


def _expand(value):
    return os.path.expandvars(value) if isinstance(value, str) else value


def load(path: Path, overrides: dict[str, dict] | None = None) -> dict[str, int]:
    """Import everything in ``path``; ``overrides`` replaces whole connections by id."""
    settings = parse(path)
    settings["connections"].update(overrides or {})
    airflow = str(Path(sys.executable).with_name("airflow"))
    commands = {
        "connections": ["connections", "import", "--overwrite"],
        "pools": ["pools", "import"],
        "variables": ["variables", "import", "-a", "overwrite"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind, args in commands.items():
            if not settings[kind]:
                continue
            file = Path(tmp) / f"{kind}.json"
            file.write_text(json.dumps(settings[kind]))
            done = subprocess.run([airflow, *args, str(file)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"airflow {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return {kind: len(items) for kind, items in settings.items()}
