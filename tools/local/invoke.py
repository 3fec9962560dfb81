"""`python -m tools.local invoke <function> -e event.json`: one declared Lambda function of the
stack, run in the local world (moto, the emulations, the declared environment and permissions
of every region) with an event file; its response on stdout, its logs on stderr, as
`sam local invoke` does. Bad input (an event file missing or not JSON, a function the stack
does not declare) is one line naming the fix, before anything is stood up when it can be."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tools.local.report import RunReport
    from tools.local.world import World

EXIT_OK, EXIT_FUNCTION_ERROR, EXIT_SETUP = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local invoke",
        description="Invoke one declared Lambda function of the stack in the local world with an "
                    "event file: the response on stdout, the function's logs on stderr. Exit 0 "
                    "answered, 1 the function failed or timed out, 2 bad input.")
    parser.add_argument("function", help="the function's declared name (or ARN); a wrong one lists them")
    parser.add_argument("-e", "--event", type=Path, required=True, help="the event, a JSON file ('-': stdin)")
    parser.add_argument("--stack", default="dev", help="stack (reads Pulumi.<stack>.yaml; default: dev)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


class BadInput(Exception):
    pass


def read_event(path: Path, stdin: TextIO | None = None) -> Any:
    """The event file as JSON, or BadInput naming the file and what is wrong with it."""
    try:
        text = (stdin or sys.stdin).read() if str(path) == "-" else path.read_text()
    except FileNotFoundError:
        raise BadInput(f"event file {path}: not found (pass a JSON file with -e)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"event file {path}: cannot be read ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"event file {path}: not JSON: {error.msg} at line {error.lineno}, "
                       f"column {error.colno}") from None


def declared_functions(world: World) -> list[str]:
    return sorted(str(world.state(f)["name"]) for f in world.declared("aws:lambda/function:Function"))


def invoke_in(world: World, function: str, event: Any, out: TextIO, err: TextIO) -> int:
    """Invoke `function` in `world`: the response as JSON on `out`, its logs on `err`."""
    from tools.local.emulation.lambdas import FunctionNotFound, FunctionTimeout, LambdaRuntime

    names = declared_functions(world)
    if LambdaRuntime not in world.emulations:
        print(f"error: stack {world.stack} declares no Lambda function", file=err)
        return EXIT_SETUP
    runtime = world.emulation(LambdaRuntime)
    try:
        declared = runtime.function(function)
    except FunctionNotFound:
        print(f"error: no function {function!r} in stack {world.stack}; its functions: {', '.join(names)}",
              file=err)
        return EXIT_SETUP
    mark = declared.written
    try:
        response = runtime.invoke(declared.arn, event)
        code = EXIT_OK
    except FunctionTimeout as timeout:
        response, code = {"errorType": "FunctionTimeout", "errorMessage": str(timeout)}, EXIT_FUNCTION_ERROR
    except Exception as error:  # the handler raised: Lambda answers with its type and message
        response, code = {"errorType": type(error).__name__, "errorMessage": str(error)}, EXIT_FUNCTION_ERROR
    timing = runtime.last_timing()
    print(f"--- logs of {declared.name} ({'cold start, ' if timing.init_wall else ''}"
          f"{timing.run_wall * 1000:.0f} ms) ---", file=err)
    for line in list(declared.output)[max(0, len(declared.output) - (declared.written - mark)):]:
        print(line, file=err)
    print(json.dumps(response, indent=2, default=str), file=out, flush=True)
    return code


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    options = build_parser().parse_args(argv)
    try:
        event = read_event(options.event)
    except BadInput as bad:
        print(f"error: {bad}", file=err)
        return EXIT_SETUP
    from tools.local.report import Progress
    from tools.local.runner import RunOptions, SetupError, run

    answer: list[int] = []

    def hold(report: RunReport, world: World) -> None:
        progress.done()
        answer.append(invoke_in(world, options.function, event, out, err))

    progress = Progress(err, enabled=not options.quiet)
    try:
        report = run(RunOptions(stack=options.stack, journeys=False, serve=False), progress, hold=hold)
    except SetupError as error:
        progress.done()
        print(f"error: {error}", file=err)
        return EXIT_SETUP
    except KeyboardInterrupt:
        progress.done()
        print("interrupted", file=err)
        return 130
    if not answer:
        print("error: the local world did not start: " + "; ".join(report.errors or ["see above"]), file=err)
        return EXIT_SETUP
    return answer[0]
