"""Command line of the local run (`python -m tools.local --help`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from tools.local import journeys
from tools.local.progress import Progress
from tools.local.report import RunReport, format_text
from tools.local.runner import RunOptions, SetupError, run
from tools.local.system import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalSystem

EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Run the stack's whole system locally, offline, in one command: evaluate the stack under
the Pulumi mocks and enforce the policy pack; start a moto server on 127.0.0.1; create the
declared resources of every region in it; emulate what moto lacks (IoT rules engine,
device auto-registration, Lambda in-process, global-table replication) from the declared
resources; drive the device journeys and report every step per region.
Exit status: 0 all journeys passed (pending steps allowed), 1 a journey failed or the
policy pack rejected the stack, 2 the run could not start, 130 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    journeys.load_modules()
    parser = argparse.ArgumentParser(prog="python -m tools.local", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev",
                        help="stack to run (reads Pulumi.<stack>.yaml; default: dev)")
    parser.add_argument("--regions", type=lambda v: [r for r in v.split(",") if r],
                        metavar="R1,R2",
                        help="run only these of the stack's regions (comma-separated)")
    parser.add_argument("--journey", choices=sorted(journeys.JOURNEYS),
                        help="run only this journey (default: all)")
    parser.add_argument("--keep", action="store_true",
                        help="after the journeys, leave the server up (with the emulations) "
                             "and print how to reach it with the AWS CLI or boto3; Ctrl-C stops it")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON on stdout (progress stays on stderr)")
    parser.add_argument("--break", dest="breaks", action="append", default=[],
                        choices=sorted(journeys.WIRES), metavar="WIRE",
                        help="break a wire in a copy of the resource graph before running, to see "
                             f"the run catch it; one of: {', '.join(sorted(journeys.WIRES))}")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def access_instructions(system: LocalSystem) -> str:
    region = system.primary_region
    return "\n".join([
        f"moto server kept running at {system.endpoint} (Ctrl-C stops it).",
        "AWS CLI:",
        f"  export AWS_ENDPOINT_URL={system.endpoint} AWS_ACCESS_KEY_ID={ACCESS_KEY_ID} "
        f"AWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY} AWS_DEFAULT_REGION={region}",
        "  aws iot list-things; aws dynamodb scan --table-name <table> --region "
        f"{system.other_regions(region)[0] if system.other_regions(region) else region}",
        "boto3:",
        f"  boto3.client('iot', endpoint_url='{system.endpoint}', region_name='{region}', "
        f"aws_access_key_id='{ACCESS_KEY_ID}', aws_secret_access_key='{SECRET_ACCESS_KEY}')",
        # Emulations that serve something a person opens (the installer web app) say where.
        *(e.access() for e in system.emulations.values() if hasattr(e, "access")),
    ])


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the server is stopped either way."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _emit(report: RunReport, as_json: bool) -> None:
    print(report.to_json() if as_json else format_text(report), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    progress = Progress(enabled=not options.quiet)
    printed = False

    def hold(report: RunReport, system: LocalSystem) -> None:
        nonlocal printed
        progress.done()
        _emit(report, options.json)
        printed = True
        print(access_instructions(system), file=sys.stderr if options.json else sys.stdout,
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

    try:
        with _terminate_as_interrupt():
            report = run(RunOptions(stack=options.stack, regions=options.regions,
                                    journey=options.journey, breaks=list(options.breaks)),
                         progress, hold=hold if options.keep else None)
    except SetupError as error:
        progress.done()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        progress.done()
        print("interrupted: the server and emulations were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not printed:
        _emit(report, options.json)
    elif report.warnings:
        print("\n".join(f"warning: {w}" for w in report.warnings), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED
