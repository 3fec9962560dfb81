"""Replication: every region applies to its own registry what other regions wrote (each region's
declared pipe: its inventory replica's stream, filtered to other regions' writes, into the
declared machine). What the journey checks (revocation, the region-B-first races):
docs/local-run.md, "Journeys and wires". Wire: the pipe filter admits the region's own writes.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from tools.harness import StackGraph
from tools.local.emulation.iot_data import IotData, certificate_id
from tools.local.emulation.streams import Streams
from tools.local.graph_edit import with_each
from tools.local.journeys import JourneyRun, journey, short, shown, wire
from tools.local.journeys import registry as seen
from tools.local.journeys.cvm import Device, factory, post
from tools.local.journeys.jitr import connect_first
from tools.local.world import World

CAPABILITY = "replication"


def onboard(world: World, region: str, pem: str) -> str:
    """JITR in `region` for this certificate; the executions' statuses."""
    _, _, executions = connect_first(world, region, pem)
    return ", ".join(str(e["status"]) for e in executions) or "no execution"


def _pipes_run(run: JourneyRun) -> None:
    streams = run.world.emulation(Streams)
    for region in run.world.regions:
        with run.step("the region's pipe runs: its role trusts Pipes for this pipe, reads the "
                      "replica stream, starts the machine, may dead-letter", region=region) as step:
            pipe = streams.consumer("pipe", region)
            step.check(not pipe.failed and not pipe.errors,
                       f"pipe {pipe.name}: {pipe.failed or '; '.join(pipe.errors) or 'running'}")


def _revocation(run: JourneyRun, a: str) -> None:
    world = run.world
    data = world.emulation(IotData)
    device = Device(f"CVM-REVOKE-{a}")
    made = factory(world, a, [device])
    with run.step(f"device {device.uid} registers in {a} (CVM) and is usable everywhere", region=a) as step:
        payload = post(world, a, device.request()).json().get("payload") or {}
        pem = (payload.get("certificates") or {}).get("device_certificate", "")
        thing, certificate = payload.get("thing_name", ""), payload.get("certificate_id", "")
        usable = {r: bool(pem) and seen.wait_for(partial(data.authorize_connect, r, pem, thing),
                                                 lambda result: result[0], timeout=world.converge_seconds,
                                                 world=world)[0] for r in world.regions}
        step.check(all(usable.values()), f"usable: {shown(usable)}")

    with run.step(f"the operator revokes {device.uid} in {a} (tools/manufacturer.py revoke)",
                  region=a) as step:
        made.revoke(device.uid)
        item = seen.row(world, a, thing) or {}
        step.check(item.get("status") == "REVOKED" and seen.status(world, a, certificate) == "REVOKED",
                   f"item {item.get('status')} version {item.get('version')}; certificate "
                   f"{seen.status(world, a, certificate)}")
    for other in world.other_regions(a):
        with run.step(f"the revocation reaches {other}: certificate REVOKED, the device cannot "
                      "connect", region=other) as step:
            status = seen.wait_for(partial(seen.status, world, other, certificate),
                                   lambda s: s == "REVOKED", timeout=world.converge_seconds, world=world)
            allowed, why = data.authorize_connect(other, pem, thing)
            step.check(status == "REVOKED" and not allowed, f"certificate {short(certificate)} "
                                                             f"{status}; connect: {why}")


def _race_pending_first(run: JourneyRun, a: str, b: str) -> None:
    world = run.world
    data = world.emulation(IotData)
    thing = f"race-pending-{b}"
    device = world.pki.device(thing)
    with run.step(f"{thing}'s first connection reaches {b} (PENDING_ACTIVATION, {b}'s JITR not "
                  f"run yet); it connects to {a}: JITR onboards it there", region=b) as step:
        early = data.auto_register(b, device.pem)
        pending = seen.status(world, b, early.certificate_id)
        status = onboard(world, a, device.pem)
        step.check(pending == "PENDING_ACTIVATION" and status == "SUCCEEDED",
                   f"{b}: {pending}; JITR in {a}: {status}")

    with run.step(f"replication activates the PENDING certificate in {b}; the device is usable "
                  "there", region=b) as step:
        allowed, why = seen.wait_for(partial(data.authorize_connect, b, device.pem, thing),
                                     lambda result: result[0], timeout=world.converge_seconds, world=world)
        step.check(allowed, why)

    with run.step(f"{b}'s late JITR run changes nothing: one ACTIVE certificate everywhere, the "
                  "inventory's", region=b) as step:
        late = [d for d in data.publish_registered(early) if d.ok]
        ok, found = seen.wait_for(partial(seen.converged, world, thing), lambda r: r[0],
                                  timeout=world.converge_seconds, world=world)
        step.check(ok and bool(late), f"late JITR started: {bool(late)}; {found}")


def _race_other_certificate_first(run: JourneyRun, a: str, b: str) -> None:
    world = run.world
    tables = world.emulation(Streams).global_tables
    if tables is None:
        raise LookupError("no global table replicates between the regions")
    thing = f"race-two-certificates-{b}"
    in_b, in_a = world.pki.device(thing), world.pki.device(thing)  # two keys, one thing
    with run.step(f"within the replication delay, {b} onboards {thing} with one certificate, "
                  f"then {a} with another", region=b) as step:
        with tables.held():
            first, second = onboard(world, b, in_b.pem), onboard(world, a, in_a.pem)
            items = {r: (seen.row(world, r, thing) or {}).get("certificateId") for r in (a, b)}
        step.check(first == second == "SUCCEEDED" and items[a] != items[b] and all(items.values()),
                   f"JITR {b} {first}, {a} {second}; items before replication: {shown({r: short(str(i)) for r, i in items.items()})}")

    with run.step("the later write wins everywhere; each region converges to one ACTIVE "
                  "certificate, the inventory's", region=b) as step:
        ok, found = seen.wait_for(partial(seen.converged, world, thing), lambda r: r[0],
                                  timeout=world.converge_seconds, world=world)
        loser = seen.status(world, b, certificate_id(in_b.pem))
        step.check(ok and loser != "ACTIVE", f"{found}; {b}'s own certificate {loser}")


def _only_foreign_writes(run: JourneyRun) -> None:
    world = run.world
    world.emulation(Streams).tick()
    for region in world.regions:
        with run.step("the region's pipe handed its machine only writes of other regions",
                      region=region) as step:
            delivered = world.emulation(Streams).consumer("pipe", region).delivered
            writers = [((r["dynamodb"].get("NewImage") or {}).get("writerRegion") or {}).get("S")
                       for r in delivered]
            step.check(region not in writers, f"{len(delivered)} record(s) delivered, written in "
                                              f"{shown(sorted({str(w) for w in writers}))}")


@journey("replication", "Replication: revocation in one region reaches the others; "
         "region-B-first races converge", capability=CAPABILITY, order=40, uses=("cvm", "jitr"),
         beside_background=True)
def replication(run: JourneyRun) -> None:
    world = run.world
    regions = [r for r in world.regions if CAPABILITY in world.capabilities(r)]
    if len(regions) < 2:
        run.skipped("replication", reason=f"needs two regions with {CAPABILITY} ({regions})")
        return
    a, b = regions[0], regions[1]
    _pipes_run(run)
    if "cvm" in world.capabilities(a):
        _revocation(run, a)
    else:
        run.skipped("revocation reaches the other regions", region=a, reason="cvm is not enabled")
    if "jitr" in world.capabilities(a) and "jitr" in world.capabilities(b):
        _race_pending_first(run, a, b)
        _race_other_certificate_first(run, a, b)
    else:
        run.skipped("region-B-first races", region=b, reason="they use JITR in both regions")
    _only_foreign_writes(run)


@wire("replication-pipe-admits-own-writes", journey="replication",
      description="each region's pipe filter admits the region's own inventory writes")
def pipe_admits_own_writes(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        for entry in inputs["sourceParameters"]["filterCriteria"]["filters"]:
            pattern = json.loads(entry["pattern"])
            image = pattern.get("dynamodb", {}).get("NewImage", {})
            image.pop("writerRegion", None)
            if not image:
                pattern.get("dynamodb", {}).pop("NewImage", None)
            if not pattern.get("dynamodb", True):
                pattern.pop("dynamodb")
            entry["pattern"] = json.dumps(pattern, sort_keys=True)
        return inputs
    return with_each(graph, graph.of_type("aws:pipes/pipe:Pipe"), change, "pipe")
