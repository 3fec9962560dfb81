"""A call made in a forked child while this process goes on with other work.

The local run's Python work holds one interpreter lock, so one of the machine's two cores
stays idle; a pure computation over data this process already holds (evaluating the stack,
checking the policy pack) can run on it in a child that shares the data copy-on-write and
sends back only its (pickled) result. Without fork, or when the child raises, dies or does not
answer in time, `result()` makes the call here: the same result, later, and any error it
raises is raised here, with its own traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import signal
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
ANSWER_SECONDS = 60  # the calls take seconds; a child that hangs is replaced, not waited on
_INHERITED_LOOPS: list[asyncio.AbstractEventLoop] = []  # in a child: never closed (see _in_child)


class ForkedCall(Generic[T]):
    def __init__(self, call: Callable[[], T], *, name: str, answer_seconds: float = ANSWER_SECONDS) -> None:
        self._call, self._answer_seconds = call, answer_seconds
        self._process: Any = None
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # or the child would write it again
            with contextlib.suppress(AttributeError, OSError, ValueError):  # none, or closed
                stream.flush()
        self._answers, sending = context.Pipe(duplex=False)
        try:
            self._process = context.Process(target=self._in_child, args=(sending,), daemon=True, name=name)
            self._process.start()
        except OSError:  # no fork now (process or memory limits): the call is made here
            self._process = None
            self._answers.close()
        finally:
            sending.close()

    @property
    def pid(self) -> int | None:
        """The child's process id; None once it answered, or where the call runs here."""
        return None if self._process is None else self._process.pid

    def _in_child(self, sending: Any) -> None:
        # What the child inherited is never collected here: a collection would write to every
        # inherited object's header and so copy the parent's heap, page by page. Nor is what
        # the call makes: it lives until the call answers and the child exits (an evaluation
        # of the 20-region stack: 8.9 s of CPU instead of 18.6 s, 16 MB more).
        gc.freeze()
        gc.disable()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        # The parent's event loop (the Pulumi SDK's) lists executor threads a child does not
        # have: the child gets its own. The parent's must stay referenced here until the child
        # exits: collected, it would close, and its epoll, which parent and child share, would
        # stop watching the parent's wake-up pipe (the parent's next evaluation hung).
        with contextlib.suppress(RuntimeError):
            _INHERITED_LOOPS.append(asyncio.get_event_loop_policy().get_event_loop())
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            answer: tuple[T] | None = (self._call(),)
        except BaseException:  # the parent makes the call again and meets the error itself
            answer = None
        sending.send(answer)

    def result(self) -> T:
        answer: tuple[T] | None = None
        if self._process is not None:
            try:
                if self._answers.poll(self._answer_seconds):
                    answer = self._answers.recv()
            except (EOFError, OSError):  # the child died (killed, out of memory)
                pass
            self.close()
        return answer[0] if answer is not None else self._call()

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._answers.close()
            self._process = None
