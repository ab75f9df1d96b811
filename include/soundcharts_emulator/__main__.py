"""Command line: ``python -m soundcharts_emulator [--port 8899] [--fault SPEC ...] [--seed N] [--quota N]``."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import date

from soundcharts_emulator.catalog import CHARTS
from soundcharts_emulator.faults import FaultRule, parse_fault_spec
from soundcharts_emulator.server import QUOTA_START, start_server

_EPILOG = """\
endpoints (headers x-app-id / x-api-key required):
  GET /api/v2/chart/song/platforms
  GET /api/v2/chart/song/by-platform/{platform}?countryCode=&offset=&limit=
  GET /api/v2/chart/song/{slug}/available-rankings?offset=&limit=
  GET /api/v2.14/chart/song/{slug}/ranking/{latest|ATOM datetime}?offset=&limit=
  GET /api/v2.25/song/{uuid}
  GET /api/v2/song/{uuid}/audience/{platform}?startDate=&endDate=&offset=&limit=
  GET /api/v2/team/usage (spends no quota; x-quota-remaining and a small body)
admin (no auth): GET|POST|DELETE /__admin/faults, GET /__admin/requests (counts
  requests by path and faults injected by kind), POST /__admin/reset (faults,
  counters and the quota back to the start), GET|POST /__admin/today,
  GET|POST /__admin/seed (body {"seed": n}),
  GET|POST /__admin/quota (body {"remaining": n}; null = the starting quota)

quota (--quota N): every authenticated API call but the usage one spends one;
  every answer's x-quota-remaining is what is left after it. With none left,
  every call is a 429 with x-quota-remaining: 0, no Retry-After (the 429 fault,
  a rate limit, has one) and the body
  {"errors": [{"key": "quota", "code": 429,
               "message": "Quota exceeded: your API quota is consumed."}]}

fault SPEC: kind[:key=value,...] with kind 429|500|slow|hang|malformed|unpublished
  and keys
  path_contains  only paths containing this text (default: every path)
  count          times to fire before disarming (default: forever)
  rate           hit each matching request with this probability, 0 < rate <= 1
                 (default: every one); with count, disarms after count hits;
                 decisions follow --seed: same seed and requests, same hits
  retry_after    429: seconds in Retry-After / x-ratelimit-reset (default 1)
  delay          slow: seconds before answering (default 1); hang: seconds to
                 hold the request before dropping the connection unanswered
                 (default 60; 0 = drop at once)
  variant        malformed: how the 200 answer is broken; any answer, request by
                 request: truncated (default, cut JSON) | missing_items; only
                 rankings, as valid JSON, every page of a fetch alike (count
                 counts rankings): duplicate_positions (position 1 twice) |
                 duplicate_songs (the first song again, last) |
                 position_out_of_range (the last at maxResultsCount + 1) |
                 short (143 of 200 entries) | gap (no position 57) |
                 no_streams (metric null on every entry)
  date           unpublished: YYYY-MM-DD to hide (default: the newest ranking)

a hang past the client timeout: the chart-sync client (SoundchartsClient) waits
  30 s for an answer, then retries (4 attempts in all, pausing 1, 2, 4 s); the
  hang default of 60 s outlasts it, and so would slow:delay=45 (an answer that
  comes after the client gave up)

examples:
  --fault 429:count=2,retry_after=1
  --fault slow:delay=2.5,path_contains=/ranking/
  --fault unpublished:date=2026-11-20,path_contains=spotify-top-200-global-daily
  --fault malformed:variant=duplicate_positions,path_contains=/ranking/,count=1
  a repeatable soak: about 10 % of ranking requests fail (429, 500 or a hang), 1 % malformed
  --seed 7 --fault 429:rate=0.04,path_contains=/ranking/
    --fault 500:rate=0.03,path_contains=/ranking/
    --fault hang:rate=0.03,path_contains=/ranking/
    --fault malformed:rate=0.01,path_contains=/ranking/
"""


def _fault(spec: str) -> FaultRule:
    try:
        return parse_fault_spec(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _quota(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soundcharts_emulator",
        description=f"Serve a local, deterministic Soundcharts API emulator ({len(CHARTS)} song charts).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8899, help="0 = any free port (default: %(default)s)")
    parser.add_argument("--app-id", default="soundcharts", help="accepted x-app-id (default: %(default)s)")
    parser.add_argument("--api-key", default="soundcharts", help="accepted x-api-key (default: %(default)s)")
    parser.add_argument("--today", type=_day, help="fix the clock to YYYY-MM-DD (default: the real UTC date)")
    parser.add_argument(
        "--fault", type=_fault, action="append", default=[], metavar="SPEC",
        help="arm a fault rule (repeatable), see below",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the decisions of faults with a rate (default: %(default)s)",
    )
    parser.add_argument(
        "--quota", type=_quota, default=QUOTA_START, metavar="N",
        help="the starting API quota, one spent per call (default: %(default)s, effectively unlimited)",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every API answer")
    parser.add_argument("--log-requests", action="store_true", help="log each request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = start_server(
        args.host, args.port, args.today, args.fault,
        app_id=args.app_id, api_key=args.api_key,
        latency_ms=args.latency_ms, log_requests=args.log_requests, seed=args.seed, quota=args.quota,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"soundcharts-emulator listening on {server.url}", flush=True)
    try:
        server.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
