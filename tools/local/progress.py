"""Progress while the run goes: phases as lines; on a terminal, a live status line too."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._live = enabled and self._stream.isatty()
        self._started = time.monotonic()
        self._status_width = 0

    def _elapsed(self) -> str:
        return f"[{time.monotonic() - self._started:5.1f}s]"

    def phase(self, text: str) -> None:
        if not self._enabled:
            return
        self._clear()
        print(f"{self._elapsed()} {text}", file=self._stream, flush=True)

    def status(self, text: str) -> None:
        """A transient line (terminals only): what the run is doing right now."""
        if not self._live:
            return
        line = f"{self._elapsed()}   … {text}"[:120]
        self._stream.write("\r" + line.ljust(self._status_width))
        self._stream.flush()
        self._status_width = len(line)

    def _clear(self) -> None:
        if self._live and self._status_width:
            self._stream.write("\r" + " " * self._status_width + "\r")
            self._stream.flush()
            self._status_width = 0

    def done(self) -> None:
        self._clear()
