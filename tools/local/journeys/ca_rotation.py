"""CA rotation: the run is a rotation's overlap (tools/local/pki_material.py: the run's
intermediate is the `previous` CA, a second one is `issuing`); devices are re-issued under the
issuing CA until the retirement gate (tools/ca_rotation.py's survey) opens in every region.
Runs after the device journeys (it re-issues their devices), beside the browser journey
(whose devices carry Amazon-issued certificates, so the survey never lists them) and before
the game day, whose devices come from the issuing CA. Steps: docs/local-run.md, "Journeys and
wires".
"""

from __future__ import annotations

from typing import Any

from components.edge.cas import DeviceCa, DeviceCas
from tools import ca_rotation
from tools import pki as pki_tool
from tools.local.emulation.iot_data import CA_TYPE, IotData
from tools.local.journeys import JourneyRun, journey, short, shown
from tools.local.journeys import registry as seen
from tools.local.journeys.jitr import connect_first
from tools.local.pki_material import NEXT_CA_NAME, PREVIOUS_CA_NAME
from tools.local.world import World

CAPABILITY = "jitr"
RULE_TYPE = "aws:iot/topicRule:TopicRule"


def _rotation(world: World) -> ca_rotation.Stack | None:
    """What tools/ca_rotation.py reads, from the run's PKI (None: no second intermediate)."""
    pki = world.pki
    if pki.next_intermediate is None:
        return None
    cas = DeviceCas((DeviceCa(PREVIOUS_CA_NAME, pki.intermediate_pem, "previous"),
                     DeviceCa(NEXT_CA_NAME, pki_tool.pem_certs(pki.next_intermediate.cert).decode(),
                              "issuing")))
    return ca_rotation.Stack(tuple(world.regions), world.table(seen.INVENTORY), cas)


def _survey(world: World, stack: ca_rotation.Stack) -> list[ca_rotation.CaInRegion]:
    return ca_rotation.survey(stack, [PREVIOUS_CA_NAME], world.client)


def _onboard(run: JourneyRun, region: str, thing: str, *, next_ca: bool) -> tuple[Any, Any]:
    """First connection of a device: auto-registration, the registered event, JITR."""
    world = run.world
    which = "the issuing CA" if next_ca else "the previous CA"
    with run.step(f"{thing}: certificate from {which}; its first connection registers it and "
                  "starts JITR", region=region) as step:
        device = world.pki.device(thing, next_ca=next_ca)
        registration, deliveries, results = connect_first(world, region, device.pem)
        ok = bool(results) and all(r["status"] == "SUCCEEDED" for r in results)
        step.check(ok, f"CA {short(registration.ca_certificate_id)}, rule(s) "
                       f"{', '.join(d.rule for d in deliveries) or 'none'}: "
                       + "; ".join(f"{r['status']}" + (f" {r.get('error')}" if r["status"] != "SUCCEEDED"
                                                        else "") for r in results))
    return device, registration


def _in_region(run: JourneyRun, region: str, stack: ca_rotation.Stack) -> None:
    world = run.world
    iot = world.client("iot", region)
    thing = f"rotor-{region}"

    with run.step("both CAs registered ACTIVE with auto-registration, one JITR rule each",
                  region=region) as step:
        described = []
        for resource in world.declared(CA_TYPE, region):
            ca_id = world.resolver(resource.id)
            description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
            # moto leaves autoRegistrationStatus out; AWS returns ENABLE/DISABLE.
            auto = description.get("autoRegistrationStatus") or (
                "ENABLE" if world.state(resource).get("allowAutoRegistration") else "DISABLE")
            described.append((description["status"], auto))
        rules = world.declared(RULE_TYPE, region)
        jitr_rules = [r for r in rules if "registered/" in str(r.inputs.get("sql"))]
        step.check(described == [("ACTIVE", "ENABLE")] * 2 and len(jitr_rules) == 2,
                   f"CAs {shown([' '.join(d) for d in described])}, JITR rules {len(jitr_rules)}",
                   "expected two CAs ACTIVE with auto-registration ENABLE and a JITR rule each")

    old_device, old = _onboard(run, region, thing, next_ca=False)

    with run.step("the rotation report lists the device on the previous CA; retiring it is "
                  "refused", region=region) as step:
        [entry] = [e for e in _survey(world, stack) if e.region == region]
        step.check(thing in entry.things and old.certificate_id in entry.usable_certificates,
                   f"CA {PREVIOUS_CA_NAME}: {len(entry.things)} device(s), "
                   f"{len(entry.usable_certificates)} usable certificate(s) here")

    new_device, new = _onboard(run, region, thing, next_ca=True)

    with run.step("the row names the new certificate and CA (version + 1), the old one is "
                  "revoked here", region=region) as step:
        row = seen.row(world, region, thing) or {}
        old_status = iot.describe_certificate(
            certificateId=old.certificate_id)["certificateDescription"]["status"]
        principals = iot.list_thing_principals(thingName=thing)["principals"]
        expected = (new.certificate_id, new.ca_certificate_id, "2", [old.certificate_id])
        found = (row.get("certificateId"), row.get("caCertificateId"), row.get("version"),
                 row.get("revokedCertificateIds"))
        step.check(found == expected and old_status == "REVOKED" and
                   principals == [new.certificate_arn],
                   f"row {short(str(found[0]))} CA {short(str(found[1]))} v{found[2]}; old "
                   f"certificate {old_status}; principals {len(principals)}")

    with run.step("the device connects with its new certificate, no longer with the old one",
                  region=region) as step:
        data = world.emulation(IotData)
        allowed_new, why_new = data.authorize_connect(region, new_device.pem, thing)
        allowed_old, why_old = data.authorize_connect(region, old_device.pem, thing)
        step.check(allowed_new and not allowed_old, f"new: {why_new}; old: {why_old}")

    run.known_elsewhere(region, thing, seen.row(world, region, thing), new_device.pem,
                        without="re-issuing there")
    for other in world.other_regions(region):
        if "replication" not in world.capabilities(other):
            run.pending(f"old certificate of {thing} unusable in {other}", region=other,
                        reason=f"needs capability 'replication', which stack {world.stack} "
                               "does not have")
            continue
        # The replicator deactivates a certificate the item no longer names (REVOKED where it
        # was revoked); either way the old certificate cannot connect there.
        with run.step(f"old certificate of {thing} unusable in {other}", region=other) as step:
            other_iot = world.client("iot", other)

            def status() -> str | None:
                try:
                    return str(other_iot.describe_certificate(certificateId=old.certificate_id)[
                        "certificateDescription"]["status"])
                except other_iot.exceptions.ResourceNotFoundException:
                    return None
            unusable = (None, "INACTIVE", "REVOKED")
            found_status = seen.wait_for(status, lambda s: s in unusable, timeout=20, world=world)
            step.check(found_status in unusable,
                       f"old certificate {found_status or 'never registered'} in {other}")


@journey("ca-rotation", "CA rotation: both CAs during the overlap, a device re-issued under "
         "the new one, the old CA retired only when none remain", capability=CAPABILITY,
         order=60, beside_background=True)
def rotation(run: JourneyRun) -> None:
    world = run.world
    stack = _rotation(world)
    if stack is None:
        run.skipped("CA rotation", reason="the run's PKI has no second intermediate")
        return
    regions = run.regions_with(CAPABILITY, "CA rotation")
    for region in regions:
        _in_region(run, region, stack)
    if not regions:
        return
    # The operator's loop: every device the report still lists is re-issued (where it
    # connects first: here the first region), until the report is empty everywhere.
    listed = sorted({thing for e in _survey(world, stack) for thing in e.things})
    for thing in listed:
        _onboard(run, regions[0], thing, next_ca=True)
    with run.step("no device is left on the previous CA in any region: the retirement gate "
                  "opens") as step:
        entries = seen.wait_for(lambda: _survey(world, stack),
                                lambda found: sum(e.remaining for e in found) == 0,
                                timeout=world.converge_seconds, world=world)
        left = {f"{e.region}: {', '.join(e.things + [short(c) for c in e.usable_certificates])}"
                for e in entries if e.remaining}
        step.check(not left, f"{len(listed)} other device(s) re-issued; "
                             + ("; ".join(sorted(left)) if left else
                                f"none left on CA {PREVIOUS_CA_NAME} in {len(entries)} region(s)"))
