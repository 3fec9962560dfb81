"""Files the operators' tools keep (journals, state, a claim's hand-over): checked before a
tool changes anything, so a directory that cannot be written is found first, not after."""

from __future__ import annotations

import tempfile
from pathlib import Path


def writable_directory(path: Path) -> None:
    """Create `path` and write a file in it (OSError when it cannot be)."""
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path) as probe:
        probe.write(b"probe")


def journal_dir_refusal(path: Path, resume: str) -> str | None:
    """The one line a tool prints for an unusable --journal-dir (`resume`: what a rerun
    does with it), or None once `path` is known writable."""
    try:
        writable_directory(path)
    except OSError as error:
        return (f"error: --journal-dir {path}: cannot write there ({error.strerror or error}): "
                f"pass a writable directory{resume}; nothing was changed")
    return None
