"""Game day: a region is evacuated on purpose and restored, with devices connected through the
device domain (emulation/dns.py) with the AWS IoT Device SDK; `python -m tools.evacuate --apply`
then `--restore`. Steps (the tests call them too) and what each checks: docs/local-run.md,
"Journeys and wires". Wire: the combined health checks leave the evacuation control out.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from tools.harness import StackGraph
from tools.local.emulation.dns import HEALTH_CHECK, Dns
from tools.local.graph_edit import with_each
from tools.local.journeys import JourneyRun, journey, wire
from tools.local.journeys import registry as seen
from tools.local.journeys import shadows
from tools.local.journeys.jitr import connect_first
from tools.local.world import World

DEVICES = 3
# The tool's waits, shortened for the run: Route53's publication lag is one poll
# (emulation/dns.py) and no resolver caches the record here; a dropped device's SDK retries
# after 1 s (examples/devices/mqtt.py), so a 1.5 s settle still sees one that came back.
TOOL_OPTIONS = {"poll_seconds": 0.05, "settle_seconds": 1.5}
GROUP = "game-day-fleet"
# The emulated Route 53 computes a check's status on each query (emulation/dns.py), so the
# tool's first poll sees a flip; its timeout only bounds how long a broken wire is waited out.
TOOL_ARGS = ["--ttl-seconds", "0", "--rate", "50", "--timeout", "2"]


def device_domain(world: World) -> str:
    return str(world.graph.outputs["deviceDomain"])


def outputs_file(world: World, directory: Path) -> Path:
    """The stack outputs as `pulumi stack output --json` gives them, with the world's ids."""
    path = directory / f"{world.stack}-outputs.json"
    path.write_text(json.dumps(world.resolver(world.graph.outputs)))
    return path


def evacuate(world: World, region: str, directory: Path, *, restore: bool = False) -> tuple[int, str]:
    """`python -m tools.evacuate <stack> --region <region> [--restore] --apply` against the
    world; (exit status, what it printed)."""
    from tools.evacuate import main

    out = io.StringIO()
    args = [world.stack, "--region", region, "--apply", "--outputs", str(outputs_file(world, directory)),
            "--journal-dir", str(directory / "journal"), "--program", str(world.project_dir), *TOOL_ARGS]
    code = main([*args, "--restore"] if restore else args, out=out, err=out,
                clients=lambda service, where: world.client(service, where), **TOOL_OPTIONS)
    return code, out.getvalue()


@contextlib.contextmanager
def held_sessions(world: World, devices: list[Any], home: str) -> Iterator[list[Any]]:
    """Each device connected through the device domain, as resolved from `home`, for the
    block; the SDK reconnects by itself (re-resolving) when the endpoint drops it."""
    from examples.devices.mqtt import connected
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    endpoints = world.emulation(DeviceEndpoints)
    dns = world.emulation(Dns)
    endpoint = endpoints.resolving(lambda: dns.resolve(device_domain(world), home))
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(connected(endpoint, d.pem, d.key_pem, d.thing_name)) for d in devices]


def connected_in(world: World, region: str, things: list[str]) -> list[str]:
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    endpoints = world.emulation(DeviceEndpoints)
    return [t for t in things if endpoints.connected(region, t)]


@journey("game-day", "Game day: region A evacuated with tools.evacuate; its devices reconnect in B "
         "through DNS and find identity, shadow and groups; B's updates are in A after --restore; nothing "
         "lost, nothing echoes", capability="replication", order=70, beside_background=True,
         uses=("jitr", "shadow_replication", "cvm"))  # cvm: its controls are evacuated too
def game_day(run: JourneyRun) -> None:
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    world = run.world
    regions = [r for r in run.regions_with("replication", "game day")
               if "shadow_replication" in world.capabilities(r) and "jitr" in world.capabilities(r)]
    if len(regions) < 2 or DeviceEndpoints not in world.emulations or Dns not in world.emulations:
        run.skipped("game day", reason="needs two regions with jitr, replication and shadow_replication, "
                                       "the device endpoints and the DNS emulation")
        return
    a, b = regions[0], regions[1]
    domain = device_domain(world)
    dns = world.emulation(Dns)
    things = [f"game-day-{i}" for i in range(DEVICES)]
    with run.step(f"{DEVICES} devices onboarded in {a} (JITR) are usable in {b} (replication)", region=a) as step:
        # After the CA rotation's retirement gate opened: new devices come from the issuing CA.
        devices = [world.pki.device(t, next_ca=world.pki.next_intermediate is not None) for t in things]
        for device in devices:
            connect_first(world, a, device.pem)
        usable = seen.wait_for(lambda: [t for t in things if seen.active_certificates(world, b, t)],
                               lambda found: len(found) == DEVICES, timeout=world.converge_seconds, world=world)
        step.check(len(usable) == DEVICES, f"{len(usable)} of {DEVICES} with an ACTIVE certificate in {b}")
    with tempfile.TemporaryDirectory(prefix="game-day-") as scratch, held_sessions(world, devices, a):
        directory = Path(scratch)
        with run.step(f"{domain} resolves to {a} for its devices; they connect there (device SDK, MQTT/mTLS)",
                      region=a) as step:
            here = seen.wait_for(partial(connected_in, world, a, things), lambda found: len(found) == DEVICES,
                                 timeout=world.converge_seconds, world=world)
            step.check(dns.resolve(domain, a) == a and len(here) == DEVICES,
                       f"resolves to {dns.resolve(domain, a)}; {len(here)} of {DEVICES} connected in {a}")
        reported = {t: {"reported": {"firmware": "1.0", "room": i}} for i, t in enumerate(things)}
        with run.step(f"the devices report their shadows in {a}; {b} has them", region=b) as step:
            for thing, state in reported.items():
                shadows.update(world, a, thing, state)
            found = seen.wait_for(lambda: {t: shadows.state(world, b, t) for t in things},
                                  lambda got: got == reported, timeout=world.converge_seconds, world=world)
            step.check(found == reported, f"{sum(found[t] == reported[t] for t in things)} of {DEVICES} in {b}")
        with run.step(f"an operator labels the devices and puts them in {GROUP} in {a}; {b} has it",
                      region=b) as step:
            for region in (a, b):  # the stack declares the fleet's groups in every region
                shadows.ensure_group(world, region, GROUP)
            for thing in things:
                shadows.describe(world, a, thing, {"site": "game-day"})
                shadows.join(world, a, thing, GROUP)
            organised = {t: shadows.organisation(world, a, t) for t in things}
            found_org = seen.wait_for(lambda: {t: shadows.organisation(world, b, t) for t in things},
                                      lambda got: got == organised, timeout=world.converge_seconds, world=world)
            step.check(found_org == organised and all(o and o["groups"] == [GROUP] for o in organised.values()),
                       f"{sum(found_org[t] == organised[t] for t in things)} of {DEVICES} in {b}")
        run.alone(a)  # the evacuation takes A out of DNS: not under a journey still using it
        with run.step(f"operator: python -m tools.evacuate {world.stack} --region {a} --apply", region=a) as step:
            code, printed = evacuate(world, a, directory)
            lines = [line for line in printed.splitlines() if line[:1].isdigit()]
            step.check(code == 0 and dns.resolve(domain, a) == b,
                       f"exit {code}; {domain} now resolves to {dns.resolve(domain, a)} from {a}; "
                       + " | ".join(lines[-3:]), printed.strip().splitlines()[-1] if printed.strip() else "")
        with run.step(f"the devices reconnect (SDK, re-resolving {domain}) and are accepted in {b} with "
                      "their identity; none is left in " + a, region=b) as step:
            there = seen.wait_for(partial(connected_in, world, b, things), lambda found: len(found) == DEVICES,
                                  timeout=world.converge_seconds, world=world)
            left = connected_in(world, a, things)
            step.check(len(there) == DEVICES and not left,
                       f"{len(there)} of {DEVICES} connected in {b}, {len(left)} in {a}")
        with run.step(f"each device finds its shadow in {b}", region=b) as step:
            found = {t: shadows.state(world, b, t) for t in things}
            step.check(found == reported, f"{sum(found[t] == reported[t] for t in things)} of {DEVICES} shadows")
        with run.step(f"each device finds its attributes and groups in {b}", region=b) as step:
            found_org = {t: shadows.organisation(world, b, t) for t in things}
            step.check(found_org == organised, f"{sum(found_org[t] == organised[t] for t in things)} of "
                                               f"{DEVICES} as organised in {a}")
        desired = {"desired": {"mode": "eco"}}
        with run.step(f"while {a} is out, an application sets the devices' desired state in {b}",
                      region=b) as step:
            for thing in things:
                shadows.update(world, b, thing, desired)
            step.check(all((shadows.state(world, b, t) or {}).get("desired") == desired["desired"] for t in things),
                       f"desired set on {DEVICES} shadows in {b}")
        moved = things[0]
        with run.step(f"while {a} is out, an operator takes {moved} out of {GROUP} in {b}", region=b) as step:
            shadows.leave(world, b, moved, GROUP)
            left_org = shadows.organisation(world, b, moved)
            step.check(left_org is not None and left_org["groups"] == [], f"{moved} in {b}: groups "
                       f"{', '.join(left_org['groups']) if left_org and left_org['groups'] else 'none'}")
        with run.step(f"operator: python -m tools.evacuate {world.stack} --region {a} --restore --apply "
                      f"(backfill, readmit)", region=a) as step:
            code, printed = evacuate(world, a, directory, restore=True)
            step.check(code == 0 and dns.resolve(domain, a) == a,
                       f"exit {code}; {domain} resolves to {dns.resolve(domain, a)} from {a} again",
                       printed.strip().splitlines()[-1] if printed.strip() else "")
    wanted = {t: {**reported[t], **desired} for t in things}
    with run.step(f"{a} has {b}'s updates: nothing lost", region=a) as step:
        found = seen.wait_for(lambda: {t: shadows.state(world, a, t) for t in things},
                              lambda got: got == wanted, timeout=world.converge_seconds, world=world)
        step.check(found == wanted, f"{sum(found[t] == wanted[t] for t in things)} of {DEVICES} shadows in {a} "
                                    f"equal {b}'s")
    with run.step(f"{a} has {b}'s change to the groups: {moved} is in none, the others in {GROUP}",
                  region=a) as step:
        wanted_groups = {t: [] if t == moved else [GROUP] for t in things}
        groups_in_a = seen.wait_for(lambda: {t: (shadows.organisation(world, a, t) or {}).get("groups") for t in things},
                                    lambda got: got == wanted_groups, timeout=world.converge_seconds, world=world)
        step.check(groups_in_a == wanted_groups,
                   f"{sum(groups_in_a[t] == wanted_groups[t] for t in things)} of {DEVICES} as in {b}")
    with run.step("nothing echoed: each shadow's record names its last writer, once, in both regions",
                  region=a) as step:
        world.settle()
        records = {(r, t): shadows.record(world, r, t) or {} for r in (a, b) for t in things}
        from lambdas.contracts.shadows import Attr

        ok = all(rec.get(Attr.WRITER_REGION) == b and int(rec.get(Attr.VERSION) or 0) == 2 for rec in records.values())
        step.check(ok, "; ".join(sorted({f"{rec.get(Attr.WRITER_REGION)} v{rec.get(Attr.VERSION)}"
                                         for rec in records.values()})))


@wire("evacuation-control-not-a-child", journey="game-day",
      description="each region's combined health check leaves its evacuation control out (two "
                  "children, threshold 2): inverting the control would keep the region in DNS, "
                  "so the tool refuses to evacuate before it flips or disconnects anything")
def control_not_a_child(graph: StackGraph) -> StackGraph:
    controls = {c.id for c in graph.of_type(HEALTH_CHECK) if c.name.endswith("-evacuation-control")}
    combined = [c for c in graph.of_type(HEALTH_CHECK)
                if set(c.inputs.get("childHealthchecks") or []) & controls]

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        inputs["childHealthchecks"] = [c for c in inputs["childHealthchecks"] if c not in controls]
        inputs["childHealthThreshold"] = len(inputs["childHealthchecks"])
        return inputs
    return with_each(graph, combined, change, "combined health check with an evacuation control")
