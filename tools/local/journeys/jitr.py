"""JITR: a device's first connection to a region onboards it there.

Per region of the run, a device of its own: the device makes its key and CSR, our
intermediate signs it; its first connection makes IoT auto-register the certificate
PENDING_ACTIVATION and publish the registered event; the region's JITR rule starts the
JITR state machine, which activates the certificate, creates and attaches the thing and
the device policy, and records the device in the inventory. Then the row must reach the
other regions' replicas (global tables), and the device must be usable there (what the
replication capability provides: pending until it and its journey module exist).

Wires this journey proves (each a copy of the graph with the wire broken): the rule
targets another machine, the machine uses another table, the check function trusts
another CA.
"""

from __future__ import annotations

import json
from typing import Any

from tools import pki
from tools.harness import StackGraph
from tools.local.emulation.device_gateway import DeviceGateway
from tools.local.graph_edit import of_capability, with_inputs
from tools.local.journeys import JourneyRun, journey, short, wire
from tools.local.journeys.elsewhere import inventory_row, inventory_table, known_elsewhere
from tools.local.pki_material import bootstrap
from tools.local.system import LocalSystem

CAPABILITY = "jitr"
RULE_TYPE = "aws:iot/topicRule:TopicRule"
MACHINE_TYPE = "aws:sfn/stateMachine:StateMachine"
FUNCTION_TYPE = "aws:lambda/function:Function"
EXECUTION_TIMEOUT_SECONDS = 30


def _last(identifier: str) -> str:
    """The name at the end of an ARN or URL."""
    return identifier.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]


def finished_execution(system: LocalSystem, run: JourneyRun, region: str, arn: str
                       ) -> dict[str, Any]:
    """The execution once it is no longer RUNNING (or after the timeout)."""
    sfn = system.client("stepfunctions", region)
    described: dict[str, Any] = run.wait_for(
        lambda: sfn.describe_execution(executionArn=arn),
        lambda d: d["status"] != "RUNNING", timeout=EXECUTION_TIMEOUT_SECONDS)
    return described


def _onboard(run: JourneyRun, region: str) -> None:
    system = run.system
    gateway = system.emulation(DeviceGateway)
    iot = system.client("iot", region)
    thing = f"jitr-{region}"

    with run.step(f"device {thing}: key and CSR on the device, certificate from our "
                  "intermediate", region=region) as step:
        device = system.pki.device(thing)
        chain = pki.verify_certificate(device.certificate,
                                       [system.pki.intermediate.cert, system.pki.root.cert],
                                       purpose="client")
        step.check(len(chain) == 3, f"CN={thing}, chain device -> intermediate -> root verifies "
                                    f"for clientAuth")

    with run.step("first connection: IoT auto-registers the certificate PENDING_ACTIVATION",
                  region=region) as step:
        registration = gateway.auto_register(region, device.pem)
        status = iot.describe_certificate(
            certificateId=registration.certificate_id)["certificateDescription"]["status"]
        allowed, why = gateway.authorize_connect(region, device.pem, thing)
        step.check(status == "PENDING_ACTIVATION" and not allowed,
                   f"certificate {short(registration.certificate_id)} {status}, issued by CA "
                   f"{short(registration.ca_certificate_id)}; connection refused ({why})")

    with run.step("the registered event reaches the JITR rule, which starts the state machine",
                  region=region) as step:
        deliveries = gateway.publish_registered(registration)
        started = [d for d in deliveries if d.action == "stepFunctions" and d.ok]
        failed = [d for d in deliveries if not d.ok]
        step.check(bool(started) and not failed,
                   "; ".join(f"rule {d.rule} -> {d.action} {_last(d.target)}: "
                             + (f"ok {_last(d.detail)}" if d.ok else f"FAILED {d.detail}")
                             for d in deliveries) or f"no enabled rule matched {registration.topic}",
                   "no state machine was started" if not started else "an action failed")

    with run.step("the JITR execution succeeds", region=region) as step:
        results = [finished_execution(system, run, region, d.detail) for d in started]
        step.check(all(r["status"] == "SUCCEEDED" for r in results),
                   "; ".join(f"{r['executionArn'].rsplit(':', 2)[-2]} {r['status']}"
                             + (f" {r.get('error')}: {short(str(r.get('cause')), 160)}"
                                if r["status"] != "SUCCEEDED" else "") for r in results))

    with run.step("certificate ACTIVE, thing attached exclusively, device policy attached",
                  region=region) as step:
        arn = registration.certificate_arn
        status = iot.describe_certificate(
            certificateId=registration.certificate_id)["certificateDescription"]["status"]
        things = iot.list_principal_things(principal=arn)["things"]
        policies = sorted(p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"])
        device_policy = system.graph.outputs["regions"][region]["devicePolicyName"]
        step.check(status == "ACTIVE" and things == [thing] and policies == [device_policy],
                   f"certificate {status}, things {things}, policies {policies} "
                   f"(the region's device policy: {device_policy})")

    with run.step("the device can connect as its thing", region=region) as step:
        allowed, why = gateway.authorize_connect(region, device.pem, thing)
        step.check(allowed, why)

    with run.step(f"inventory ({inventory_table(system)}) records the device", region=region) as step:
        row = inventory_row(system, region, thing) or {}
        expected = {"certificateId": registration.certificate_id, "status": "ACTIVE",
                    "onboarding": "JITR", "originRegion": region, "version": "1",
                    "caCertificateId": registration.ca_certificate_id,
                    "certificatePem": device.pem}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(bool(row) and not wrong,
                   f"row {thing}: " + ", ".join(f"{k}={short(str(row.get(k)), 16)}"
                                                for k in expected if k != "certificatePem"),
                   f"unexpected: {', '.join(wrong)}" if row else "no row")

    known_elsewhere(run, region, thing, row, device.pem, without="connecting there first")


@journey("jitr", "JITR: a device's first connection onboards it; it is then known everywhere",
         capability=CAPABILITY, order=10)
def jitr(run: JourneyRun) -> None:
    for region in run.system.regions:
        if CAPABILITY not in run.system.capabilities(region):
            run.skipped("JITR onboarding", region=region,
                        reason=f"capability {CAPABILITY} is not enabled in {region}")
            continue
        _onboard(run, region)


# --- wires this journey proves ----------------------------------------------------------------

def _each(graph: StackGraph, type_token: str, change: Any) -> StackGraph:
    targets = of_capability(graph, CAPABILITY, type_token)
    if not targets:
        raise LookupError(f"no {type_token} in capability {CAPABILITY}")
    for target in targets:
        graph = with_inputs(graph, graph.named(target.name), change)
    return graph


@wire("jitr-rule-targets-another-machine", journey="jitr",
      description="the JITR topic rule starts a state machine other than the JITR machine")
def rule_targets_another_machine(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        for action in inputs.get("stepFunctions") or []:
            action["stateMachineName"] = f"{action['stateMachineName']}-v2"
        return inputs
    return _each(graph, RULE_TYPE, change)


@wire("jitr-machine-uses-another-table", journey="jitr",
      description="the JITR state machine reads and writes a table other than the inventory")
def machine_uses_another_table(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        definition = json.loads(inputs["definition"])
        for state in definition["States"].values():
            parameters = state.get("Parameters") or {}
            if "TableName" in parameters:
                parameters["TableName"] = f"{parameters['TableName']}-old"
        inputs["definition"] = json.dumps(definition)
        return inputs
    return _each(graph, MACHINE_TYPE, change)


@wire("jitr-check-trusts-another-ca", journey="jitr",
      description="the JITR check function verifies certificates against another CA")
def check_trusts_another_ca(graph: StackGraph) -> StackGraph:
    other_ca = bootstrap().intermediate_pem

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        variables = inputs["environment"]["variables"]
        variables["CA_CERTIFICATE_PEM"] = other_ca
        return inputs
    return _each(graph, FUNCTION_TYPE, change)
