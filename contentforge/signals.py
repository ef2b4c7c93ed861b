"""Stop signals for the long-running commands (`worker`, `scheduler`).

Installed before anything is started, so a SIGTERM that arrives while embedded services come up
(`docker stop` right after start) is a clean stop that shuts them down again, not a death by signal
that leaves a PostgreSQL running on the data folder.
"""

from __future__ import annotations

import signal
import threading


def stop_on_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT. Call from the main thread."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
