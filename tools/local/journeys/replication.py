"""Replication: every region applies to its own registry what other regions wrote.

Each region's declared pipe reads its inventory replica's stream, passes only the records
its declared filter admits (inserts and updates written by another region) and runs the
declared replication machine synchronously. The other journeys' "usable in the other
region" steps are real because of it; this journey adds what only replication does:

* revocation in the first region reaches the others: a CVM device, registered and usable
  everywhere, is revoked with the operator's tool (`tools/manufacturer.py revoke`); its
  certificate must end REVOKED in every region;
* the region-B-first races converge to one ACTIVE certificate, the inventory's, in every
  region: (1) a device's first connection reached B, whose JITR has not run yet
  (certificate PENDING_ACTIVATION there) when A onboards it; (2) B onboarded the thing
  with another certificate within the replication delay before A did (replication is held
  while both write, then the later write wins everywhere);
* each region's pipe handed its machine only writes of other regions.

Wire this journey proves: the pipe filter admits the region's own writes.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tools.harness import StackGraph
from tools.local.emulation.device_gateway import DeviceGateway, Registration
from tools.local.emulation.global_tables import GlobalTableReplication
from tools.local.emulation.pipes import PIPE_TYPE, Pipes
from tools.local.graph_edit import with_inputs
from tools.local.journeys import JourneyRun, journey, plain_item, short, wire
from tools.local.journeys.cvm import CSR_BATCH, Device, factory, post
from tools.local.journeys.elsewhere import inventory_table
from tools.local.journeys.jitr import finished_execution
from tools.local.system import LocalSystem

CAPABILITY = "replication"
CONVERGE_TIMEOUT_SECONDS = 30


def _item(system: LocalSystem, region: str, thing: str) -> dict[str, Any]:
    return plain_item(system.client("dynamodb", region).get_item(
        TableName=inventory_table(system), Key={"thingName": {"S": thing}},
        ConsistentRead=True).get("Item")) or {}


def certificates(system: LocalSystem, region: str, thing: str) -> dict[str, str]:
    """Certificate id -> status, for every certificate attached to the thing in `region`."""
    iot = system.client("iot", region)
    try:
        principals = iot.list_thing_principals(thingName=thing)["principals"]
    except iot.exceptions.ResourceNotFoundException:
        return {}
    found = {}
    for arn in principals:
        certificate_id = arn.rsplit("/", 1)[-1]
        found[certificate_id] = iot.describe_certificate(
            certificateId=certificate_id)["certificateDescription"]["status"]
    return found


def _status(system: LocalSystem, region: str, certificate_id: str) -> str | None:
    iot = system.client("iot", region)
    try:
        return str(iot.describe_certificate(
            certificateId=certificate_id)["certificateDescription"]["status"])
    except iot.exceptions.ResourceNotFoundException:
        return None


def converged(system: LocalSystem, thing: str) -> tuple[bool, str]:
    """One item everywhere, and in every region exactly one ACTIVE certificate for the
    thing: the item's. (ok, what was found)"""
    items = {r: _item(system, r, thing) for r in system.regions}
    wanted = {str(i.get("certificateId")) for i in items.values()}
    states = {r: certificates(system, r, thing) for r in system.regions}
    active = {r: sorted(c for c, s in found.items() if s == "ACTIVE") for r, found in states.items()}
    ok = len(wanted) == 1 and all(a == sorted(wanted) for a in active.values())
    described = "; ".join(
        f"{r}: item {short(str(items[r].get('certificateId')))} (written in "
        f"{items[r].get('writerRegion')}), " + (", ".join(
            f"{short(c)} {s}" for c, s in sorted(states[r].items())) or "no certificate")
        for r in system.regions)
    return ok, described


def _onboard_jitr(run: JourneyRun, region: str, registration: Registration) -> str:
    """The registered event reaches the region's JITR rule; returns the execution status."""
    system = run.system
    deliveries = system.emulation(DeviceGateway).publish_registered(registration)
    started = [d for d in deliveries if d.action == "stepFunctions" and d.ok]
    if not started:
        raise AssertionError(f"no JITR execution started in {region}: {deliveries}")
    results = [finished_execution(system, run, region, d.detail) for d in started]
    return ", ".join(str(r["status"]) for r in results)


def _pipes_run(run: JourneyRun) -> None:
    for region in run.system.regions:
        with run.step("the region's pipe runs: its role trusts Pipes for this pipe, reads the "
                      "replica stream, starts the machine, may dead-letter", region=region) as step:
            problems = run.system.emulation(Pipes).problems(region)
            declared = [run.system.state(p)["name"] for p in run.system.declared(PIPE_TYPE, region)]
            step.check(bool(declared) and not problems,
                       f"pipe(s) {', '.join(declared) or 'none declared'}: "
                       + ("; ".join(problems) or "running"))


def _revocation(run: JourneyRun, a: str) -> None:
    system = run.system
    gateway = system.emulation(DeviceGateway)
    device = Device(f"CVM-REVOKE-{a}", CSR_BATCH, "local-salt-csr-batch",
                    ec.generate_private_key(ec.SECP256R1()))
    tool = factory(run, a, [device])
    with run.step(f"device {device.uid} registers in {a} (CVM) and is usable everywhere",
                  region=a) as step:
        response = post(system, a, device.request())
        payload = response.json().get("payload") or {}
        pem = (payload.get("certificates") or {}).get("device_certificate", "")
        thing, certificate_id = payload.get("thing_name", ""), payload.get("certificate_id", "")
        usable = {r: run.wait_for(partial(gateway.authorize_connect, r, pem, thing),
                                  lambda result: result[0], timeout=CONVERGE_TIMEOUT_SECONDS)[0]
                  if pem else False for r in system.regions}
        step.check(response.status == 200 and all(usable.values()),
                   f"HTTP {response.status}; usable: "
                   + ", ".join(f"{r} {ok}" for r, ok in usable.items()))

    with run.step(f"the operator revokes {device.uid} in {a} (tools/manufacturer.py revoke)",
                  region=a) as step:
        tool.revoke(device.uid)
        item = _item(system, a, thing)
        step.check(item.get("status") == "REVOKED" and _status(system, a, certificate_id) == "REVOKED",
                   f"item {item.get('status')} version {item.get('version')} written in "
                   f"{item.get('writerRegion')}; certificate {_status(system, a, certificate_id)}")

    for other in system.other_regions(a):
        with run.step(f"the revocation reaches {other}: certificate REVOKED, the device cannot "
                      "connect", region=other) as step:
            status = run.wait_for(partial(_status, system, other, certificate_id),
                                  lambda s: s == "REVOKED", timeout=CONVERGE_TIMEOUT_SECONDS)
            allowed, why = gateway.authorize_connect(other, pem, thing)
            step.check(status == "REVOKED" and not allowed,
                       f"certificate {short(certificate_id)} {status}; connect: {why}")


def _race_pending_first(run: JourneyRun, a: str, b: str) -> None:
    system = run.system
    gateway = system.emulation(DeviceGateway)
    thing = f"race-pending-{b}"
    device = system.pki.device(thing)
    with run.step(f"{thing}'s first connection reaches {b}: certificate PENDING_ACTIVATION "
                  f"there, {b}'s JITR not run yet", region=b) as step:
        early = gateway.auto_register(b, device.pem)
        step.check(_status(system, b, early.certificate_id) == "PENDING_ACTIVATION",
                   f"certificate {short(early.certificate_id)} "
                   f"{_status(system, b, early.certificate_id)}")

    with run.step(f"it connects to {a}: JITR onboards it there", region=a) as step:
        status = _onboard_jitr(run, a, gateway.auto_register(a, device.pem))
        step.check(status == "SUCCEEDED" and _item(system, a, thing).get("status") == "ACTIVE",
                   f"JITR execution {status}; item {_item(system, a, thing).get('status')}")

    with run.step(f"replication activates the PENDING certificate in {b}; the device is usable "
                  "there", region=b) as step:
        allowed, why = run.wait_for(partial(gateway.authorize_connect, b, device.pem, thing),
                                    lambda result: result[0], timeout=CONVERGE_TIMEOUT_SECONDS)
        step.check(allowed, why)

    with run.step(f"{b}'s late JITR run changes nothing: one ACTIVE certificate everywhere, the "
                  "inventory's", region=b) as step:
        late = _onboard_jitr(run, b, early)
        ok, found = run.wait_for(partial(converged, system, thing), lambda r: r[0],
                                 timeout=CONVERGE_TIMEOUT_SECONDS)
        step.check(ok, f"late JITR execution {late}; {found}")


def _race_other_certificate_first(run: JourneyRun, a: str, b: str) -> None:
    system = run.system
    gateway = system.emulation(DeviceGateway)
    replication = system.emulation(GlobalTableReplication)
    thing = f"race-two-certificates-{b}"
    in_b, in_a = system.pki.device(thing), system.pki.device(thing)  # two keys, one thing
    with run.step(f"within the replication delay, {b} onboards {thing} with one certificate, "
                  f"then {a} with another", region=b) as step:
        with replication.held():
            first = _onboard_jitr(run, b, gateway.auto_register(b, in_b.pem))
            second = _onboard_jitr(run, a, gateway.auto_register(a, in_a.pem))
            items = {r: _item(system, r, thing).get("certificateId") for r in (a, b)}
        step.check(first == second == "SUCCEEDED" and items[a] != items[b] and all(items.values()),
                   f"JITR {b} {first}, {a} {second}; items before replication: "
                   + ", ".join(f"{r} {short(str(c))}" for r, c in items.items()))

    with run.step("the later write wins everywhere; each region converges to one ACTIVE "
                  "certificate, the inventory's", region=b) as step:
        ok, found = run.wait_for(partial(converged, system, thing), lambda r: r[0],
                                 timeout=CONVERGE_TIMEOUT_SECONDS)
        loser = _status(system, b, _certificate_id(in_b.pem))
        step.check(ok and loser != "ACTIVE", f"{found}; {b}'s own certificate {loser}")


def _certificate_id(pem: str) -> str:
    from tools.local.emulation.device_gateway import certificate_id

    return certificate_id(pem)


def _only_foreign_writes(run: JourneyRun) -> None:
    system = run.system
    system.emulation(GlobalTableReplication).poll()
    system.emulation(Pipes).drain()
    for region in system.regions:
        with run.step("the region's pipe handed its machine only writes of other regions",
                      region=region) as step:
            delivered = system.emulation(Pipes).delivered(region)
            writers = [(((r["dynamodb"].get("NewImage") or {}).get("writerRegion") or {})
                        .get("S")) for r in delivered]
            own = [w for w in writers if w == region]
            step.check(not own,
                       f"{len(delivered)} record(s) delivered, written in "
                       f"{', '.join(sorted({str(w) for w in writers})) or '-'}; "
                       f"own writes: {len(own)}")


@journey("replication", "Replication: revocation in one region reaches the others; "
         "region-B-first races converge", capability=CAPABILITY, order=40)
def replication(run: JourneyRun) -> None:
    system = run.system
    regions = [r for r in system.regions if CAPABILITY in system.capabilities(r)]
    if len(regions) < 2:
        run.skipped("replication", reason=f"needs two regions with capability {CAPABILITY} "
                                          f"(the run has {', '.join(regions) or 'none'})")
        return
    a, b = regions[0], regions[1]
    _pipes_run(run)
    if "cvm" in system.capabilities(a):
        _revocation(run, a)
    else:
        run.skipped("revocation in the first region reaches the others", region=a,
                    reason="the revocation journey uses a CVM device; cvm is not enabled")
    if "jitr" in system.capabilities(a) and "jitr" in system.capabilities(b):
        _race_pending_first(run, a, b)
        _race_other_certificate_first(run, a, b)
    else:
        run.skipped("region-B-first races", region=b, reason="they use JITR in both regions")
    _only_foreign_writes(run)


# --- wires this journey proves ----------------------------------------------------------------

@wire("replication-pipe-admits-own-writes", journey="replication",
      description="each region's pipe filter admits the region's own inventory writes")
def pipe_admits_own_writes(graph: StackGraph) -> StackGraph:
    pipes = graph.of_type(PIPE_TYPE)
    if not pipes:
        raise LookupError(f"no {PIPE_TYPE} declared")

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
    for pipe in pipes:
        graph = with_inputs(graph, graph.named(pipe.name), change)
    return graph
