"""``make run``: the local product. Starts the Soundcharts emulator (unless real credentials are
set), imports the charts, seeds three demo schedules, then runs ``airflow standalone``
(api-server, scheduler, dag-processor, triggerer) on http://localhost:8080.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from chartsync import settings

DEMO_SCHEDULES = (  # one daily, one weekly, one monthly chart, each with a year of history
    ("spotify-top-200-global-daily", "daily"),
    ("spotify-top-200-global-weekly", "weekly"),
    ("apple-music-top-200-us-monthly", "monthly"),
)
PLATFORMS = ("spotify", "apple-music", "shazam", "deezer")


def _run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def _login() -> dict[str, str]:
    file = settings.airflow_home() / "simple_auth_manager_passwords.json.generated"
    if file.exists():
        return json.loads(file.read_text())
    passwords = {"admin": secrets.token_urlsafe(9), "viewer": secrets.token_urlsafe(9)}
    file.write_text(json.dumps(passwords) + "\n")
    return passwords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartsync.demo", description=__doc__)
    parser.add_argument("--emulator-port", type=int, default=8899)
    parser.add_argument("--no-seed", action="store_true", help="do not import charts or add demo schedules")
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    chartsync, airflow = str(bin_dir / "chartsync"), str(bin_dir / "airflow")
    # `airflow standalone` starts its components as `airflow ...` from PATH
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"

    emulator = None
    if settings.soundcharts_credentials() is None:
        emulator = subprocess.Popen([sys.executable, "-m", "soundcharts_emulator", "--host", "127.0.0.1",
                                     "--port", str(args.emulator_port)], stdout=subprocess.PIPE, text=True)
        print(emulator.stdout.readline().strip(), flush=True)
        os.environ["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"] = json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{args.emulator_port}",
             "login": "soundcharts", "password": "soundcharts"})
    try:
        if not args.no_seed:
            _run(chartsync, "charts", "import", *[a for p in PLATFORMS for a in ("--platform", p)])
            existing = subprocess.run([chartsync, "schedules", "list"], capture_output=True, text=True).stdout
            for slug, frequency in DEMO_SCHEDULES:
                if f" {slug} " not in existing:
                    _run(chartsync, "schedules", "add", slug, "--frequency", frequency)
        login = _login()
        print("\nchart-sync is starting: http://localhost:8080  login admin / "
              f"{login.get('admin')}  (read-only: viewer / {login.get('viewer')})\n", flush=True)
        return subprocess.call([airflow, "standalone"])
    except KeyboardInterrupt:
        return 0
    finally:
        if emulator is not None:
            emulator.terminate()


if __name__ == "__main__":
    sys.exit(main())
