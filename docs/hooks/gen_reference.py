"""Write the docs site's reference pages from the code, so they cannot drift from it.

- ``rest-api.md``: the plugin's OpenAPI document (``chart_sync_admin.app.create_app().openapi()``, the
  document the api-server serves at ``/chart-sync/openapi.json``) and its one error table
  (``chart_sync_admin.errors.ERRORS``);
- ``cli.md``: the ``chartsync`` command's argparse parser (``chartsync.cli.main.build_parser()``).

Nothing here needs a server or a database: building the FastAPI app only imports Airflow, which gets a
throw-away ``AIRFLOW_HOME`` and none of the caller's Airflow settings. The mkdocs hook
``docs/hooks/reference.py`` runs this file in a child process at every build; by hand:

    .venv/bin/python docs/hooks/gen_reference.py OUTDIR
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
USAGE_COLUMNS = "100"  # argparse wraps usage lines at $COLUMNS: fixed, so every build writes the same page


# ---- Markdown helpers ---------------------------------------------------------------------------------

def text(value: Any) -> str:
    """Prose from the code, safe in a table cell: one line, HTML escaped, no cell separator."""
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "&#124;")


def literal(value: Any) -> str:
    """A value shown as code in a table cell: no Markdown inside it, no control character, no pipe."""
    shown = str(value).encode("unicode_escape").decode("ascii") if not str(value).isprintable() else str(value)
    escaped = html.escape(shown, quote=False)
    for char in "|*_`[]\\":
        escaped = escaped.replace(char, f"&#{ord(char)};")
    return f"<code>{escaped}</code>"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [" | ".join(header), " | ".join("---" for _ in header), *(" | ".join(row) for row in rows), ""]


def anchor(*words: str) -> str:
    """A heading id from words: lower case letters and digits, one dash between runs of them."""
    return "-".join("".join(c if c.isalnum() else " " for c in " ".join(words).lower()).split())


# ---- REST API -----------------------------------------------------------------------------------------

def schema_anchor(name: str) -> str:
    return anchor("schema", name)


def type_of(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    """A JSON schema as a reader says it: ``integer``, ``ScheduleOut`` (linked), ``array of string``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{schemas[name].get('title', name)}](#{schema_anchor(name)})"
    if "anyOf" in schema:
        kinds = [type_of(s, schemas) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = len(kinds) < len(schema["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "enum" in schema:
        return "one of " + ", ".join(literal(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return "array of " + type_of(schema.get("items", {}), schemas)
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return "object of " + type_of(schema["additionalProperties"], schemas)
    return f"{kind} ({schema['format']})" if "format" in schema else kind


LIMITS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"), ("exclusiveMaximum", "< {}"),
          ("minLength", "at least {} characters"), ("maxLength", "at most {} characters"),
          ("minItems", "at least {} items"), ("maxItems", "at most {} items"))


def limits_of(schema: dict[str, Any]) -> list[str]:
    """The constraints of a schema and of the alternatives it allows (the door's rule for text, in words)."""
    from chart_sync_admin.door import NO_CONTROL_PATTERN  # deferred: Airflow is imported once main() isolated it

    found = []
    for part in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
        for key, words in LIMITS:
            if key in part:
                value = part[key]
                found.append(words.format(int(value) if float(value).is_integer() else value))
        if "pattern" in part:
            found.append("matches " + literal(part["pattern"]) if part["pattern"] != NO_CONTROL_PATTERN
                         else "no control character")
    return found


def describe(schema: dict[str, Any], description: str | None = None) -> str:
    """Description, limits, default and example of a field or parameter, in one cell."""
    parts = [text(description or schema.get("description", "") or next(
        (s["description"] for s in schema.get("anyOf", []) if "description" in s), ""))]
    parts += [limit if limit.startswith("matches") else text(limit) for limit in limits_of(schema)]
    if "default" in schema and schema["default"] is not None:
        parts.append("default " + literal(json.dumps(schema["default"])))
    examples = schema.get("examples") or [e for s in schema.get("anyOf", []) for e in s.get("examples", [])]
    if examples:
        parts.append("e.g. " + literal(examples[0]))
    return "; ".join(p for p in parts if p)


def operation_lines(method: str, path: str, op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}` {{#{anchor(method, path)}}}", "", text(op.get("summary", "")), ""]
    if op.get("description"):
        lines += [op["description"], ""]
    params = op.get("parameters", [])
    if params:
        lines += ["**Parameters**", ""]
        lines += table(["name", "in", "type", "required", "description"], [
            [literal(p["name"]), p["in"], type_of(p.get("schema", {}), schemas), "yes" if p.get("required") else "",
             describe(p.get("schema", {}), p.get("description"))] for p in params])
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        required = " (required)" if op["requestBody"].get("required") else ""
        lines += [f"**Request body**{required}: `{media}`, {type_of(content.get('schema', {}), schemas)}", ""]
    lines += ["**Responses**", ""]
    rows = []
    for code, response in sorted(op.get("responses", {}).items()):
        shapes = [type_of(c["schema"], schemas) for c in response.get("content", {}).values() if "schema" in c]
        rows.append([code, text(response.get("description", "")), ", ".join(shapes)])
    lines += table(["status", "meaning", "body"], rows)
    return lines


def schema_lines(name: str, schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    lines = [f"### {schema.get('title', name)} {{#{schema_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [text(schema["description"]), ""]
    if "enum" in schema:
        return [*lines, "One of " + ", ".join(literal(v) for v in schema["enum"]) + ".", ""]
    properties = schema.get("properties", {})
    if not properties:
        return [*lines, f"Type: {type_of(schema, schemas)}.", ""]
    required = set(schema.get("required", []))
    if schema.get("additionalProperties") is False:
        lines += ["No other field is accepted.", ""]
    return lines + table(["field", "type", "required", "description"], [
        [literal(field), type_of(prop, schemas), "yes" if field in required else "", describe(prop)]
        for field, prop in properties.items()])


def error_table_lines() -> list[str]:
    from chart_sync_admin.errors import ERRORS  # deferred: Airflow is imported once main() isolated it

    rows = []
    for exc_type, answer in sorted(ERRORS.items(), key=lambda item: (item[1].status, item[0].__name__)):
        doc = (exc_type.__doc__ or "").strip().split("\n\n")[0]
        rows.append([str(answer.status), text(answer.title), literal(f"{exc_type.__module__}.{exc_type.__qualname__}"),
                     text(doc)])
    return table(["status", "title (on the pages)", "exception", "what it means"], rows)


def rest_api_page(url_prefix: str) -> str:
    from chart_sync_admin.app import create_app  # deferred: Airflow is imported once main() isolated it

    document = create_app().openapi()
    schemas = document.get("components", {}).get("schemas", {})
    info = document["info"]
    operations = [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    lines = [
        "# REST API reference", "",
        "!!! note \"Generated\"",
        "    This page is written from the plugin's OpenAPI document when the site is built "
        "(`docs/hooks/gen_reference.py`); edit the routes and schemas in `plugins/chart_sync_admin/api/`, "
        "not this page.", "",
        f"**{text(info['title'])}**, version {text(info['version'])}, OpenAPI {document['openapi']}. "
        f"{info.get('description', '')}", "",
        f"Every path below is under `{url_prefix}` on the Airflow api-server: the running server serves this "
        f"document at `{url_prefix}/openapi.json` and Swagger UI at `{url_prefix}/docs`. How to authenticate, "
        "who may do what and what each status means: [the REST API guide](../rest-api.md).", "",
        "## Endpoints", "",
        *table(["method", "path", "summary"], [
            [method.upper(), f"[`{path}`](#{anchor(method, path)})", text(op.get("summary", ""))]
            for method, path, op in operations]),
    ]
    for method, path, op in operations:
        lines += operation_lines(method, path, op, schemas)
    lines += ["## Errors", "",
              "Besides the statuses each endpoint lists, a domain error is answered from one table "
              "(`plugins/chart_sync_admin/errors.py`), the same for the REST API (JSON, `{\"detail\": message}`) "
              "and the pages (the HTML error page, headed by the title):", "",
              *error_table_lines(),
              "## Schemas", ""]
    for name, schema in sorted(schemas.items(), key=lambda item: item[1].get("title", item[0]).lower()):
        lines += schema_lines(name, schema, schemas)
    return "\n".join(lines)


# ---- CLI ----------------------------------------------------------------------------------------------

def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """The parser's subcommands in declaration order: (name, help, parser). All of them, whatever the
    metavar of the subparsers action shows."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def argument_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
            name = ", ".join(f"{flag}{metavar}" for flag in action.option_strings)
        else:
            name = formatter._format_args(action, action.dest)
        notes = [text(formatter._expand_help(action)) if action.help else ""]
        if action.choices and not isinstance(action.metavar, str):
            notes.append("one of " + ", ".join(literal(c) for c in action.choices))
        if action.required and action.option_strings:
            notes.append("required")
        if action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS):
            notes.append("default " + literal(action.default))
        if not action.option_strings and action.nargs == "?":
            notes.append("optional" + (f", default {literal(action.default)}" if action.default is not None else ""))
        rows.append([literal(name), "; ".join(n for n in notes if n)])
    return rows


def command_lines(words: list[str], summary: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    command = " ".join(words)
    lines = [f"{'#' * level} `{command}` {{#{anchor(*words)}}}", ""]
    for paragraph in dict.fromkeys(p for p in (summary, parser.description) if p):  # the help, then more
        lines += [text(paragraph), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = argument_rows(parser)
    if rows:
        lines += table(["argument", "meaning"], rows)
    if parser.epilog:
        lines += [text(parser.epilog), ""]
    return lines


def walk(words: list[str], parser: argparse.ArgumentParser) -> list[tuple[list[str], str, argparse.ArgumentParser]]:
    """Every command that runs something (a leaf of the subcommand tree), depth first."""
    found = []
    for name, summary, sub in subcommands(parser):
        children = walk([*words, name], sub)
        found += children or [([*words, name], summary, sub)]
    return found


def cli_page() -> str:
    from chartsync.cli.main import build_parser  # deferred: importable once main() put include/ on the path

    parser = build_parser()
    prog = parser.prog
    groups = subcommands(parser)
    leaves = walk([prog], parser)
    lines = [
        "# CLI reference", "",
        "!!! note \"Generated\"",
        "    This page is written from the `chartsync` command's argparse parser "
        "(`chartsync.cli.main.build_parser`) when the site is built (`docs/hooks/gen_reference.py`); "
        "edit the parser, not this page. `chartsync ... --help` prints the same.", "",
        text(parser.description or ""), "",
        "```text", parser.format_usage().strip(), "```", "",
        text(parser.epilog or ""), "",
        "How the commands behave (exit codes, the environment they need, what they share with the REST API "
        "and the pages): [the command-line guide](../cli.md).", "",
        "## Commands", "",
        *table(["command", "what it does"], [
            [f"[`{' '.join(words)}`](#{anchor(*words)})", text(summary)] for words, summary, _ in leaves]),
    ]
    for name, summary, sub in groups:
        children = walk([prog, name], sub)
        if not children:
            lines += command_lines([prog, name], summary, sub, 2)
            continue
        lines += [f"## `{prog} {name}` {{#{anchor(prog, name)}}}", "", text(summary), ""]
        for words, leaf_summary, leaf in children:
            lines += command_lines(words, leaf_summary, leaf, 3)
    return "\n".join(lines)


# ---- entry point --------------------------------------------------------------------------------------

def isolate_airflow(home: str) -> None:
    """Importing the plugin's app imports Airflow: give it a throw-away home and none of the caller's
    Airflow or chart-sync settings (no database, connection or secrets backend is reached at import)."""
    for name in list(os.environ):
        if name.startswith(("AIRFLOW", "CHARTSYNC_")):
            del os.environ[name]
    os.environ.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False", COLUMNS=USAGE_COLUMNS)
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chartsync-docs-") as home:
        isolate_airflow(home)
        from chart_sync_admin import URL_PREFIX  # deferred: Airflow must see the isolated home when it loads

        (out / "rest-api.md").write_text(rest_api_page(URL_PREFIX) + "\n", encoding="utf-8")
        (out / "cli.md").write_text(cli_page() + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
