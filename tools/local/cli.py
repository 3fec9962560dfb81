"""Command line of the local run (`python -m tools.local --help`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the run's modules import moto and pulumi_aws: seconds `--help` never needs
    from tools.local.report import RunReport
    from tools.local.world import World

EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Run the stack's whole system locally, offline, in one command: evaluate the stack under
the Pulumi mocks and enforce the policy pack; create the declared resources of every region
in moto; emulate what moto lacks (IoT rules engine and data plane, Lambda, API Gateway,
fleet provisioning, global tables, pipes) from the declared resources; drive the device
journeys and report every step per region.
Exit status: 0 all journeys passed (pending steps allowed), 1 a journey failed or the
policy pack rejected the stack, 2 the run could not start, 130 interrupted (Ctrl-C or
SIGTERM; also how a --keep run ends). `--list` names the journeys and wires.
`python -m tools.local invoke <function> -e event.json` invokes one declared Lambda
function in the local world instead (`invoke --help`)."""


def _region_list(value: str) -> list[str]:
    regions = [r.strip() for r in value.split(",") if r.strip()]
    if not regions:  # `--regions ,` is not "every region"
        raise argparse.ArgumentTypeError("name at least one region, e.g. --regions eu-west-1,us-west-2")
    return regions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.local", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev",
                        help="stack to run (reads Pulumi.<stack>.yaml; default: dev)")
    parser.add_argument("--regions", type=_region_list,
                        metavar="R1,R2",
                        help="run only these of the stack's regions (comma-separated)")
    # Names are checked by the run (an unknown one is exit 2 naming the available ones), so
    # that --help does not import every journey.
    parser.add_argument("--journey", metavar="NAME",
                        help="run only this journey (default: all; --list names them)")
    parser.add_argument("--keep", action="store_true",
                        help="after the journeys, serve the system on 127.0.0.1 (with the "
                             "emulations) for the AWS CLI or boto3; Ctrl-C stops it")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON on stdout (progress stays on stderr)")
    parser.add_argument("--break", dest="breaks", action="append", default=[], metavar="WIRE",
                        help="break a wire in a copy of the resource graph before running, to see "
                             "the run catch it (--list names them)")
    parser.add_argument("--list", action="store_true",
                        help="list the journeys and the wires, then exit")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def access_instructions(system: World) -> str:
    from tools.local.world import ACCESS_KEY_ID, SECRET_ACCESS_KEY

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


def device_guide(system: World, directory: Path) -> str:
    """Material for a device of one's own against the kept system, written to `directory`:
    the run's root (what the endpoint's server certificate chains to), its intermediate (the
    stack's CA) and a new device certificate and key the intermediate signed, which JITR
    onboards on its first connection, as in AWS. Keys are written owner-readable only."""
    from components.edge.device_policy import telemetry_topic
    from tools.local.emulation.device_endpoint import DeviceEndpoints
    from tools.local.journeys.jitr import app_name

    endpoints = system.emulations.get(DeviceEndpoints)
    if not isinstance(endpoints, DeviceEndpoints) or not endpoints.addresses:
        return ""
    thing = "local-device-1"
    device = system.pki.device(thing)
    files = {"root-ca.pem": system.pki.root_pem, "intermediate-ca.pem": system.pki.intermediate_pem,
             f"{thing}.pem": device.pem, f"{thing}.key": device.key_pem}
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        if name.endswith(".key"):
            path.chmod(0o600)
    app = app_name(system)
    address = endpoints.addresses[system.primary_region]
    return "\n".join([
        f"Device material in {directory} (removed when this run stops):",
        "  root-ca.pem (the endpoint's server chain), intermediate-ca.pem (the stack's CA), "
        f"{thing}.pem / .key (signed by it, not yet registered: JITR onboards it)",
        f"Connect a device to {address.region} ({address.host_name}) with the AWS IoT Device SDK:",
        f"  python -m examples.devices.jitr_device --endpoint {address.host_name} "
        f"--ca {directory / 'root-ca.pem'} --cert {directory / (thing + '.pem')} "
        f"--key {directory / (thing + '.key')} --thing {thing} "
        f"--topic {telemetry_topic(app, thing)}/status --proxy 127.0.0.1:{address.proxy_port}",
        *(f"  {a.region}: {a.host_name} via --proxy 127.0.0.1:{a.proxy_port}"
          for a in endpoints.addresses.values() if a.region != address.region),
    ])


def fleet_guide(system: World, directory: Path) -> str:
    """A serial allow-listed and a claim for it, as an installer's `tools.installer claim`
    would hand over (written to `directory`, the key owner-only), and the fleet device example's
    command: it provisions over MQTT with the claim, then connects as its thing."""
    import datetime as dt

    from components.edge.device_policy import telemetry_topic
    from tools import installer
    from tools.local.emulation.device_endpoint import DeviceEndpoints
    from tools.local.emulation.fleet_provisioning import FleetProvisioning
    from tools.local.emulation.policy import role_policies
    from tools.local.journeys import fleet_provisioning as fleet
    from tools.local.journeys import registry as seen
    from tools.local.journeys.jitr import app_name
    from tools.local.materialise import GLOBAL_SERVICE_REGION

    provisioning, endpoints = system.emulations.get(FleetProvisioning), system.emulations.get(DeviceEndpoints)
    regions = [r for r in system.regions if fleet.CAPABILITY in system.capabilities(r)]
    if not isinstance(provisioning, FleetProvisioning) or not isinstance(endpoints, DeviceEndpoints) or not regions:
        return ""
    region, serial = regions[0], "SN-KEPT-0001"
    installer.allow_serial(system.resource("dynamodb", region).Table(system.table(seen.PROVISIONING)), serial,
                           now=dt.datetime.now(dt.timezone.utc))
    [role] = [system.state(g)["roleArn"] for g in system.declared("aws:cognito/userGroup:UserGroup", region)
              if system.state(g)["name"] == installer.INSTALLERS_GROUP]
    template = provisioning[region]
    claim = template.create_provisioning_claim(
        role_policies(system.client("iam", GLOBAL_SERVICE_REGION), role), template.name)
    certificate, key = directory / f"{serial}.claim.pem.crt", directory / f"{serial}.claim.pem.key"
    certificate.write_text(claim["certificatePem"])
    key.touch(mode=0o600)
    key.write_text(claim["keyPair"]["PrivateKey"])
    address = endpoints.addresses[region]
    prefix = fleet.hook_variables(system, region).get("CLAIM_CLIENT_ID_PREFIX", "")
    return "\n".join([
        f"Fleet provisioning in {region}: serial {serial} is allow-listed and {certificate.name} / {key.name} "
        f"are its claim (valid until {claim['expiration']:%H:%M:%S} UTC; `python -m tools.installer claim` "
        "makes another). The device provisions over MQTT, then connects as its thing:",
        f"  python -m examples.devices.fleet_device --endpoint {address.host_name} --ca {directory / 'root-ca.pem'} "
        f"--claim-cert {certificate} --claim-key {key} --template {template.name} --serial {serial} "
        f"--client-id {prefix}{serial} --topic-root {telemetry_topic(app_name(system), '').rstrip('/')} "
        f"--proxy 127.0.0.1:{address.proxy_port}",
    ])


def cvm_guide(system: World) -> str:
    """A device the factory imported into a legacy batch (no key of its own) and the `curl`
    of the registration request for it (components/cvm/README.md), against a local URL for
    the CVM's route; the answer holds its certificate and key."""
    import json
    import shlex

    from tools.local.emulation.api_gateway import ApiGateway
    from tools.local.journeys import cvm

    gateway = system.emulations.get(ApiGateway)
    regions = [r for r in system.regions if cvm.CAPABILITY in system.capabilities(r)]
    if not isinstance(gateway, ApiGateway) or not regions:
        return ""
    region = regions[0]
    legacy = [b for b in system.state(cvm.function(system, region))["environment"]["variables"]
              .get("LEGACY_BATCHES", "").split(",") if b]
    if not legacy:
        return ""
    device = cvm.Device("LOCAL-CURL-1", legacy[0], "local-salt-legacy-batch", legacy=True)
    cvm.factory(system, region, [device])
    registration = cvm.registration_url(system, region)
    host, _, path = registration.removeprefix("https://").partition("/")
    url = f"{gateway.serve(region, host)}/{path}"
    body = json.dumps({"device_uid": device.uid, "device_token": device.token})
    return "\n".join([
        f"CVM registration in {region} ({registration}) at {url}; device {device.uid} is imported "
        f"(legacy batch {device.batch}: the answer carries its certificate and key):",
        f"  curl -s -X POST {url} -H 'Content-Type: application/json' -d {shlex.quote(body)}",
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
    from tools.local.report import format_text

    print(report.to_json() if as_json else format_text(report), flush=True)


def list_names() -> str:
    from tools.local import journeys

    journeys.load_modules()
    lines = ["journeys (--journey NAME), in run order:"]
    lines += [f"  {j.name:<18} {j.title}" for j in journeys.ordered()]
    lines += ["wires (--break WIRE), each with the journey that must catch it (and those that may "
              "fail too: they use its capability):"]
    lines += [f"  {name:<44} {wire.journey}" + (f" (may also fail: {', '.join(also)})" if (
        also := journeys.also_affected(name)) else "") for name, wire in sorted(journeys.WIRES.items())]
    return "\n".join(lines)


def wait_for_interrupt(stop: threading.Event, tick: float = 0.5) -> None:
    """Until Ctrl-C or SIGTERM: short waits, so a signal is acted on within `tick`."""
    while not stop.wait(tick):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["invoke"]:
        from tools.local import invoke

        return invoke.main(arguments[1:])
    options = build_parser().parse_args(arguments)
    if options.list:
        print(list_names())
        return EXIT_OK
    from tools.local.report import Progress
    from tools.local.runner import RunOptions, SetupError, run

    progress = Progress(enabled=not options.quiet)
    printed = kept_until_interrupted = False

    def hold(report: RunReport, system: World) -> None:
        nonlocal printed, kept_until_interrupted
        progress.done()
        _emit(report, options.json)
        printed = True
        with tempfile.TemporaryDirectory(prefix="iotmr-local-") as material:
            guide = [access_instructions(system), device_guide(system, Path(material)),
                     fleet_guide(system, Path(material)), cvm_guide(system)]
            print("\n".join(g for g in guide if g),
                  file=sys.stderr if options.json else sys.stdout, flush=True)
            try:
                wait_for_interrupt(threading.Event())
            except KeyboardInterrupt:
                kept_until_interrupted = True

    try:
        with _terminate_as_interrupt():
            report = run(RunOptions(stack=options.stack, regions=options.regions,
                                    journey=options.journey, breaks=list(options.breaks)),
                         progress, hold=hold if options.keep else None)
    except SetupError as error:
        progress.done()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:  # before the journeys (evaluating, materialising) or a second one
        progress.done()
        print("interrupted: the server and emulations were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not printed:
        _emit(report, options.json)
    elif report.warnings:
        print("\n".join(f"warning: {w}" for w in report.warnings), file=sys.stderr)
    if report.interrupted or kept_until_interrupted:
        print("interrupted: the server and emulations were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if report.ok else EXIT_FAILED
