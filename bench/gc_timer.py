"""Time spent in Python's cyclic garbage collector, for the benchmarks (stdlib only, so it
also runs under the other variants' interpreters)."""

from __future__ import annotations

import gc
import time


class GcTimer:
    """Accumulates the seconds spent in the cyclic GC (all generations) through
    ``gc.callbacks``, from creation or the last :meth:`reset`.

    Attributes:
        seconds: GC time since the last reset (seconds).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: float | None = None
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def reset(self) -> None:
        """Start counting from zero."""
        self.seconds = 0.0
