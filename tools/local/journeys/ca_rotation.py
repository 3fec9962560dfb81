"""CA rotation: the run is a rotation's overlap (tools/local/pki_material.py: the run's
intermediate is the `previous` CA, a second one is `issuing`). Per region: both CAs are
registered ACTIVE with auto-registration and each has its JITR rule; a device onboarded under
the previous CA shows up in the rotation report (tools/ca_rotation.py) and blocks the
retirement; re-issued under the issuing CA, its first connection moves it (JITR: the row
names the new certificate and CA, the old certificate is revoked here and, through
replication, unusable everywhere). Then every other device the report still lists (the earlier
journeys' devices) is re-issued the same way, and the retirement gate opens only once none is
left in any region. Runs after the device journeys (it re-issues their devices).
"""

from __future__ import annotations

from typing import Any

from components.edge.cas import DeviceCas
from tools import ca_rotation
from tools.local.emulation.device_gateway import DeviceGateway
from tools.local.journeys import JourneyRun, journey, short
from tools.local.journeys.elsewhere import inventory_row, inventory_table, known_elsewhere
from tools.local.journeys.jitr import finished_execution
from tools.local.pki_material import NEXT_CA_NAME, PREVIOUS_CA_NAME
from tools.local.system import LocalSystem

CAPABILITY = "jitr"
CA_TYPE = "aws:iot/caCertificate:CaCertificate"
REPLICATION_SECONDS = 30
RULE_TYPE = "aws:iot/topicRule:TopicRule"


def _rotation(system: LocalSystem) -> ca_rotation.Stack:
    """What tools/ca_rotation.py reads, from the run's evaluated stack."""
    from components.edge.cas import DeviceCa

    pki = system.pki
    assert pki.next_intermediate is not None
    from tools import pki as pki_tool

    cas = DeviceCas((DeviceCa(PREVIOUS_CA_NAME, pki.intermediate_pem, "previous"),
                     DeviceCa(NEXT_CA_NAME, pki_tool.pem_certs(pki.next_intermediate.cert).decode(),
                              "issuing")))
    return ca_rotation.Stack(tuple(system.regions), inventory_table(system), cas)


def _survey(system: LocalSystem, stack: ca_rotation.Stack) -> list[ca_rotation.CaInRegion]:
    return ca_rotation.survey(stack, [PREVIOUS_CA_NAME], system.client)


def _onboard(run: JourneyRun, region: str, thing: str, *, next_ca: bool) -> tuple[Any, Any]:
    """First connection of a device: auto-registration, the registered event, JITR."""
    system = run.system
    gateway = system.emulation(DeviceGateway)
    which = "the issuing CA" if next_ca else "the previous CA"
    with run.step(f"{thing}: certificate from {which}; its first connection registers it and "
                  "starts JITR", region=region) as step:
        device = system.pki.device(thing, next_ca=next_ca)
        registration = gateway.auto_register(region, device.pem)
        deliveries = gateway.publish_registered(registration)
        started = [d for d in deliveries if d.action == "stepFunctions" and d.ok]
        results = [finished_execution(system, run, region, d.detail) for d in started]
        ok = bool(results) and all(r["status"] == "SUCCEEDED" for r in results)
        step.check(ok, f"CA {short(registration.ca_certificate_id)}, rule(s) "
                       f"{', '.join(d.rule for d in deliveries) or 'none'}: "
                       + "; ".join(f"{r['status']}" + (f" {r.get('error')}" if r["status"] != "SUCCEEDED"
                                                        else "") for r in results))
    return device, registration


def _in_region(run: JourneyRun, region: str, stack: ca_rotation.Stack) -> None:
    system = run.system
    iot = system.client("iot", region)
    thing = f"rotor-{region}"

    with run.step("both CAs registered ACTIVE with auto-registration, one JITR rule each",
                  region=region) as step:
        described = []
        for resource in system.declared(CA_TYPE, region):
            ca_id = system.resolver(resource.id)
            description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
            # moto leaves autoRegistrationStatus out; AWS returns ENABLE/DISABLE.
            auto = description.get("autoRegistrationStatus") or (
                "ENABLE" if system.state(resource).get("allowAutoRegistration") else "DISABLE")
            described.append((description["status"], auto))
        rules = system.declared(RULE_TYPE, region)
        jitr_rules = [r for r in rules if "registered/" in str(r.inputs.get("sql"))]
        step.check(described == [("ACTIVE", "ENABLE")] * 2 and len(jitr_rules) == 2,
                   f"CAs {described}, JITR rules {len(jitr_rules)}")

    old_device, old = _onboard(run, region, thing, next_ca=False)

    with run.step("the rotation report lists the device on the previous CA; retiring it is "
                  "refused", region=region) as step:
        [entry] = [e for e in _survey(system, stack) if e.region == region]
        step.check(thing in entry.things and old.certificate_id in entry.usable_certificates,
                   f"CA {PREVIOUS_CA_NAME}: {len(entry.things)} device(s), "
                   f"{len(entry.usable_certificates)} usable certificate(s) here")

    new_device, new = _onboard(run, region, thing, next_ca=True)

    with run.step("the row names the new certificate and CA (version + 1), the old one is "
                  "revoked here", region=region) as step:
        row = inventory_row(system, region, thing) or {}
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
        gateway = system.emulation(DeviceGateway)
        allowed_new, why_new = gateway.authorize_connect(region, new_device.pem, thing)
        allowed_old, why_old = gateway.authorize_connect(region, old_device.pem, thing)
        step.check(allowed_new and not allowed_old, f"new: {why_new}; old: {why_old}")

    known_elsewhere(run, region, thing, inventory_row(system, region, thing), new_device.pem,
                    without="re-issuing there")
    for other in system.other_regions(region):
        reason = run.missing("replication", other)
        if reason:
            run.pending(f"old certificate of {thing} unusable in {other}", region=other,
                        reason=reason)
            continue
        # The replicator deactivates a certificate the item no longer names (REVOKED where it
        # was revoked); either way the old certificate cannot connect there.
        with run.step(f"old certificate of {thing} unusable in {other}", region=other) as step:
            other_iot = system.client("iot", other)

            def status() -> str | None:
                try:
                    return str(other_iot.describe_certificate(certificateId=old.certificate_id)[
                        "certificateDescription"]["status"])
                except other_iot.exceptions.ResourceNotFoundException:
                    return None
            unusable = (None, "INACTIVE", "REVOKED")
            found_status = run.wait_for(status, lambda s: s in unusable, timeout=20)
            step.check(found_status in unusable,
                       f"old certificate {found_status or 'never registered'} in {other}")


@journey("ca-rotation", "CA rotation: both CAs during the overlap, a device re-issued under "
         "the new one, the old CA retired only when none remain", capability=CAPABILITY,
         order=80)
def rotation(run: JourneyRun) -> None:
    system = run.system
    if system.pki.next_intermediate is None:
        run.skipped("CA rotation", reason="the run's PKI has no second intermediate")
        return
    stack = _rotation(system)
    regions = run.regions_with(CAPABILITY, "CA rotation")
    for region in regions:
        _in_region(run, region, stack)
    if not regions:
        return
    # The operator's loop: every device the report still lists is re-issued (where it
    # connects first: here the first region), until the report is empty everywhere.
    listed = sorted({thing for e in _survey(system, stack) for thing in e.things})
    for thing in listed:
        _onboard(run, regions[0], thing, next_ca=True)
    with run.step("no device is left on the previous CA in any region: the retirement gate "
                  "opens") as step:
        entries = run.wait_for(lambda: _survey(system, stack),
                               lambda found: sum(e.remaining for e in found) == 0,
                               timeout=REPLICATION_SECONDS)
        left = {f"{e.region}: {', '.join(e.things + [short(c) for c in e.usable_certificates])}"
                for e in entries if e.remaining}
        step.check(not left, f"{len(listed)} other device(s) re-issued; "
                             + ("; ".join(sorted(left)) if left else
                                f"none left on CA {PREVIOUS_CA_NAME} in {len(entries)} region(s)"))
