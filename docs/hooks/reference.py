"""mkdocs hook: the REST API and CLI reference pages, written from the code at every build.

``gen_reference.py`` (beside this file) imports the plugin's FastAPI app and the CLI's argparse parser and
writes the pages. It runs in a child process: the plugin imports Airflow, whose logging set-up would take
over mkdocs' own in this process (and with it the warning count ``--strict`` fails on). The pages join the
site as generated files, ``reference/rest-api.md`` and ``reference/cli.md``: nothing generated is committed
or left in docs/.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

GENERATOR = Path(__file__).with_name("gen_reference.py")
PAGES = ("rest-api.md", "cli.md")

log = logging.getLogger("mkdocs.hooks.reference")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    with tempfile.TemporaryDirectory(prefix="chartsync-docs-reference-") as out:
        done = subprocess.run([sys.executable, str(GENERATOR), out], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PluginError(f"{GENERATOR.name} failed (exit {done.returncode}); its last output:\n"
                              f"{(done.stdout + done.stderr)[-4000:]}")
        for name in PAGES:
            content = (Path(out) / name).read_text(encoding="utf-8")
            files.append(File.generated(config, f"reference/{name}", content=content))
            log.info("Generated reference/%s", name)
    return files
