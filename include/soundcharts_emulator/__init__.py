"""A local, deterministic emulator of the Soundcharts API subset chart-sync uses.

Run it with ``PYTHONPATH=include python -m soundcharts_emulator --port 8899`` or
in-process with ``soundcharts_emulator.start_server(port=0, today=...)``.

Modules: ``catalog`` (platforms, charts, publication calendar), ``songs`` (song
pools, metadata, audience), ``rankings`` (ranking entries and movement),
``api`` (endpoints), ``faults`` (fault rules), ``server`` (HTTP, admin API).

Sources for paths, parameters and JSON shapes: the official ``soundcharts``
SDK (PyPI ``soundcharts``; github.com/soundcharts/python-sdk,
``src/soundcharts/charts.py``, ``song.py``, ``api_util.py``: endpoint paths,
offset/limit paging with ``page.total``/``page.next``, ``x-quota-remaining``,
429 handling through ``x-ratelimit-reset`` and a "maximum request count"
message) and the project's /work/shared/reference/soundcharts-api.md.  Data
are invented; where the real API's behaviour is unknown (e.g. ``oldPosition``
of new entries, audience ordering) the choice is documented in the module
that makes it.
"""

from soundcharts_emulator.faults import FaultRule, parse_fault_spec
from soundcharts_emulator.server import EmulatorServer, start_server

__all__ = ["EmulatorServer", "FaultRule", "parse_fault_spec", "start_server"]
