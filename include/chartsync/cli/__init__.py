"""The ``chartsync`` command line (a front door): ``main`` parses, ``commands`` run one service each."""

from chartsync.cli.main import main

__all__ = ["main"]
