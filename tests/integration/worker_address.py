"""``[core] hostname_callable`` for the Celery topology test's workers: each worker is a "machine" at
its own loopback address (127.0.0.2, 127.0.0.3), where its own log server answers the api-server."""

import os


def address() -> str:
    return os.environ["CHARTSYNC_TEST_WORKER_ADDRESS"]
