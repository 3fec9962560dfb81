"""`python -m tools.local invoke <function> -e event.json`: one declared function in the local
world, its response on stdout and its logs on stderr; bad input is one line naming the fix."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.harness import StackGraph
from tools.local import invoke
from tools.local.cli import main
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

REGION = "eu-west-1"
HOOK = f"iotmr-dev-{REGION}-fleet-hook"


@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[REGION], pki=local_pki, capabilities=["fleet_provisioning"]) as opened:
        yield opened


def test_invoke_prints_the_response_and_the_functions_logs(world: World) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert invoke.invoke_in(world, HOOK, {"clientId": "x"}, out, err) == invoke.EXIT_OK
    assert json.loads(out.getvalue()) == {"allowProvisioning": False, "parameterOverrides": {}}
    logs = err.getvalue().splitlines()
    assert logs[0].startswith(f"--- logs of {HOOK} (")
    assert any('"reason":"MALFORMED_REQUEST"' in line for line in logs[1:])


def test_a_function_that_fails_answers_with_its_error_not_a_traceback(world: World) -> None:
    out, err = io.StringIO(), io.StringIO()
    recorder = f"iotmr-dev-{REGION}-fleet-recorder"
    code = invoke.invoke_in(world, recorder, {"Records": "not a list"}, out, err)
    assert code == invoke.EXIT_FUNCTION_ERROR
    assert json.loads(out.getvalue())["errorType"] == "UnexpectedBatchTypeError"
    assert err.getvalue().startswith(f"--- logs of {recorder} (cold start, ")
    assert "Traceback" not in out.getvalue()


def test_an_unknown_function_is_named_with_the_stacks_functions(world: World) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert invoke.invoke_in(world, "fleet-hook", {}, out, err) == invoke.EXIT_SETUP
    assert out.getvalue() == ""
    assert err.getvalue().startswith("error: no function 'fleet-hook' in stack dev; its functions: ")
    assert HOOK in err.getvalue()


@pytest.mark.parametrize(("content", "expected"), [
    (None, "not found (pass a JSON file with -e)"),
    ('{"a": ', "not JSON: Expecting value at line 1, column 7"),
])
def test_a_missing_or_invalid_event_file_is_one_line_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str) -> None:
    event = tmp_path / "event.json"
    if content is not None:
        event.write_text(content)
    assert main(["invoke", HOOK, "-e", str(event)]) == invoke.EXIT_SETUP
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"error: event file {event}: {expected}\n"


def test_only_the_invoking_thread_writes_to_a_functions_logs(world: World, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """sys.stdout is the function's while it runs, for its own thread only: what another
    thread prints meanwhile (the report, a guide) is not lost in the function's logs."""
    import threading

    from tools.local.emulation.lambdas import LambdaRuntime

    runtime = world.emulation(LambdaRuntime)
    function = runtime.function(HOOK)
    running, release = threading.Event(), threading.Event()

    def handler(event: object, context: object) -> dict[str, bool]:
        print("inside the function")
        running.set()
        release.wait(10)
        return {"allowProvisioning": False}

    monkeypatch.setattr(function, "loaded", handler)
    mark = function.written
    invocation = threading.Thread(target=runtime.invoke, args=(HOOK, {}))
    invocation.start()
    assert running.wait(10)
    print("the report, printed meanwhile")
    release.set()
    invocation.join(10)
    assert function.logs_since(mark) == ["inside the function"]
    assert "the report, printed meanwhile" in capsys.readouterr().out
