"""``[core] hostname_callable`` of the test Celery workers: each worker's name from its
environment (``DATAPRODUCTS_TEST_WORKER``), so ``task_instance.hostname`` tells which of the
workers on this one machine ran a task."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name, e.g. ``worker1``; this host's FQDN outside a test worker."""
    return os.environ.get("DATAPRODUCTS_TEST_WORKER") or socket.getfqdn()
