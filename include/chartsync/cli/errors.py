"""The exit codes of ``chartsync`` and the exception a command raises for bad input.

``chartsync.cli.main`` translates, once, the exceptions each command module names in its ``BAD_INPUT``
and ``FAILED`` (``chart_db`` the store's, ``commands`` those and the Airflow seam's). Nothing imported
here, so ``--help`` stays instant.
"""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class BadInput(Exception):
    pass
