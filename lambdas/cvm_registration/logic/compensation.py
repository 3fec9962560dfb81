"""Undo what a failed request did, newest first, so the device can simply retry."""

from __future__ import annotations

from collections.abc import Callable

Undo = Callable[[], object]
OnUndoFailure = Callable[[str, Exception], None]


class Compensation:
    def __init__(self, on_failure: OnUndoFailure) -> None:
        self._steps: list[tuple[str, Undo]] = []
        self._on_failure = on_failure

    def push(self, name: str, undo: Undo) -> None:
        self._steps.append((name, undo))

    def abandon(self) -> None:
        """Forget every step: whether the work landed is unknown, and undoing work that
        landed would do harm (the caller leaves it to a later, better-informed request)."""
        self._steps.clear()

    def run(self) -> None:
        """Every step runs even if an earlier one failed; failures are reported, not raised
        (the caller is already answering with the original failure)."""
        while self._steps:
            name, undo = self._steps.pop()
            try:
                undo()
            except Exception as error:  # noqa: BLE001 - reported, and the next step must run
                self._on_failure(name, error)
