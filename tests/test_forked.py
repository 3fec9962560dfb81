"""tools/forked.py: a call made in a forked child; whatever goes wrong there, the call is made
here instead, so the result (or the error) is the one an in-process call gives."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing.context
import os
import threading
import time

import pytest

from tools.forked import ForkedCall


def test_the_child_makes_the_call_and_sends_back_its_result() -> None:
    parent = os.getpid()
    call = ForkedCall(lambda: {"made in": os.getpid(), "items": [1, 2]}, name="test")
    assert call.pid not in (None, parent)
    answer = call.result()
    assert answer["made in"] not in (None, parent) and answer["items"] == [1, 2]
    assert call.pid is None  # answered: the child is gone


def test_an_error_in_the_child_is_raised_here_by_the_call_made_again() -> None:
    parent = os.getpid()
    made_here = []

    def fails_everywhere() -> None:
        if os.getpid() == parent:
            made_here.append(True)
        raise LookupError("no such stack")

    with pytest.raises(LookupError, match="no such stack"):
        ForkedCall(fails_everywhere, name="test").result()
    assert made_here == [True]


def test_without_a_fork_the_call_is_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork(self: object) -> None:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", no_fork)
    call = ForkedCall(os.getpid, name="test")
    assert call.pid is None
    assert call.result() == os.getpid()


def test_the_parents_event_loop_still_wakes_after_a_child_answered() -> None:
    """Parent and child share the loop's epoll: a child that closed its copy of the loop
    unregistered the parent's wake-up pipe, and the parent's next Pulumi evaluation waited
    forever for its executor threads' answers."""
    previous = asyncio.get_event_loop_policy()  # its loop (the SDK's, for later tests) untouched
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # held, like the SDK's, by the policy alone
    assert ForkedCall(lambda: gc.collect() >= 0, name="test").result()
    loop = asyncio.get_event_loop_policy().get_event_loop()
    try:
        woken = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (woken.set_result, "woken")).start()
        started = time.monotonic()
        loop.run_until_complete(asyncio.wait_for(woken, 5))
        assert time.monotonic() - started < 2, "the loop woke only at its timeout"
    finally:
        loop.close()
        asyncio.set_event_loop_policy(previous)


def test_a_child_that_does_not_answer_in_time_is_replaced_by_the_call_made_here() -> None:
    parent = os.getpid()

    def slow_in_the_child() -> int:
        if os.getpid() != parent:
            time.sleep(30)
        return os.getpid()

    started = time.monotonic()
    assert ForkedCall(slow_in_the_child, name="test", answer_seconds=0.3).result() == parent
    assert time.monotonic() - started < 5


def test_the_child_runs_without_the_cyclic_collector_and_the_parent_keeps_it() -> None:
    """The child's call makes objects that live until it answers: a collection would only walk
    them (and the inherited heap, copying it page by page)."""
    assert gc.isenabled()
    assert ForkedCall(gc.isenabled, name="test").result() is False
    assert gc.isenabled()
