"""JITR: a device's first connection to a region onboards it there.

Steps (used by the journey and the tests): `connect_first` (IoT auto-registers the
certificate PENDING_ACTIVATION and publishes the registered event into the rules engine,
which starts the declared JITR machine), `run_machine` (an execution with a given event).
Wires: the rule targets another machine, the machine uses another table, the check function
trusts another CA.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from components.edge.device_policy import telemetry_topic
from tools import pki
from tools.harness import StackGraph
from tools.local.emulation.iot_data import CA_TYPE, IotData, Registration, certificate_id
from tools.local.emulation.rules_engine import Delivery
from tools.local.graph_edit import of_capability, with_each
from tools.local.journeys import JourneyRun, journey, short, shown, wire
from tools.local.journeys import registry as seen
from tools.local.pki_material import bootstrap
from tools.local.sfn_adapter import wait_for_execution
from tools.local.world import World

CAPABILITY = "jitr"


def machine_arn(world: World, region: str) -> str:
    [machine] = [m for m in of_capability(world.graph, CAPABILITY, "aws:sfn/stateMachine:StateMachine")
                 if m.region == region]
    return str(world.resolver(machine.outputs["arn"]))


def check_function(world: World, region: str) -> str:
    [function] = [f for f in of_capability(world.graph, CAPABILITY, "aws:lambda/function:Function")
                  if f.region == region]
    return str(function.outputs["arn"])


def app_name(world: World) -> str:
    """The stack's appName (the device policy's topics are under it)."""
    return str(next(v for k, v in world.stack_config.items() if k.endswith(":appName")))


def run_machine(world: World, region: str, event: dict[str, Any]) -> dict[str, Any]:
    """One execution of the region's JITR machine with `event`, once it finished."""
    sfn = world.client("stepfunctions", region)
    started = sfn.start_execution(stateMachineArn=machine_arn(world, region), name=str(uuid.uuid4()),
                                  input=json.dumps(event))
    return wait_for_execution(sfn, started["executionArn"])


def connect_first(world: World, region: str, certificate_pem: str
                  ) -> tuple[Registration, list[Delivery], list[dict[str, Any]]]:
    """The device's first connection: auto-registration, the event to the rules, and the
    executions it started (finished)."""
    data = world.emulation(IotData)
    registration = data.auto_register(region, certificate_pem)
    deliveries = data.publish_registered(registration)
    sfn = world.client("stepfunctions", region)
    executions = [wait_for_execution(sfn, d.detail) for d in deliveries
                  if d.action == "stepFunctions" and d.ok]
    return registration, deliveries, executions


def _onboard(run: JourneyRun, region: str) -> None:
    world = run.world
    thing = f"jitr-{region}"
    with run.step(f"device {thing}: key and CSR on the device, certificate from our intermediate",
                  region=region) as step:
        device = world.pki.device(thing)
        chain = pki.verify_certificate(device.certificate, [world.pki.intermediate.cert,
                                                            world.pki.root.cert], purpose="client")
        step.check(len(chain) == 3, f"CN={thing}, device -> intermediate -> root verifies for clientAuth")

    from examples.devices import jitr_device  # the device SDK and the broker: only when a device runs
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    endpoints = world.emulation(DeviceEndpoints)
    endpoint = endpoints.endpoint(region)
    with run.step(f"first connection (device SDK, MQTT over TLS to {endpoint.host_name}): refused, the "
                  "certificate auto-registered PENDING_ACTIVATION; the event reaches the JITR rule, "
                  "which starts the machine; it succeeds", region=region) as step:
        refused = jitr_device.first_connection(endpoint, device.pem, device.key_pem, thing)
        mine = [r for r in endpoints.log(region).registrations if r[0].certificate_id == certificate_id(device.pem)]
        if not mine:
            step.check(False, f"connection {'refused: ' + refused if refused else 'accepted'}; the endpoint "
                              f"registered nothing ({'; '.join(endpoints.log(region).refusals[-2:])})")
        registration, deliveries = mine[0]
        sfn = world.client("stepfunctions", region)
        results = [wait_for_execution(sfn, d.detail) for d in deliveries
                   if d.action == "stepFunctions" and d.ok]
        # As the registration event told the machine: by now JITR may have activated it.
        pending = shown(sorted({json.loads(r["input"]).get("certificateStatus") for r in results}))
        step.check(bool(refused) and pending == "PENDING_ACTIVATION" and bool(results)
                   and all(d.ok for d in deliveries) and all(r["status"] == "SUCCEEDED" for r in results),
                   f"connection refused ({short(refused, 60)}); certificate {short(registration.certificate_id)} "
                   f"registered {pending}; "
                   + "; ".join(f"rule {d.rule} -> {d.action}: {'ok' if d.ok else d.detail}"
                               for d in deliveries)
                   + "; executions " + ", ".join(f"{r['status']} {r.get('error') or ''}"
                                                 f"{short(str(r.get('cause') or ''), 160)}"
                                                 for r in results))

    topic = f"{telemetry_topic(app_name(world), thing)}/status"
    with run.step("the device's retry connects (CONNACK) as its thing and publishes; the endpoint "
                  "accepts the publish; certificate ACTIVE, thing attached exclusively, device policy",
                  region=region) as step:
        certificate_id_ = registration.certificate_id
        outcome = jitr_device.run(endpoint, device.pem, device.key_pem, thing, topic)
        arrived = endpoints.wait_for_message(region, thing, topic) if outcome.published else None
        step.check(bool(outcome.attempt) and arrived is not None and seen.usable(world, region, thing, certificate_id_),
                   f"attempt {outcome.attempt or 'none'} connected, publish to {topic} "
                   f"{'arrived' if arrived else 'did not arrive'}; certificate "
                   f"{seen.status(world, region, certificate_id_)}, things {shown(seen.things_of(world, region, certificate_id_))}, "
                   f"policies {shown(seen.policies_of(world, region, certificate_id_))}"
                   + (f"; refused: {'; '.join(short(r, 80) for r in outcome.refusals)}" if outcome.refusals else "")
                   + (f"; endpoint: {endpoints.log(region).refusals[-1]}" if not arrived and endpoints.log(region).refusals else ""))

    with run.step(f"inventory ({world.table(seen.INVENTORY)}) records the device", region=region) as step:
        row = seen.row(world, region, thing) or {}
        expected = {"certificateId": certificate_id_, "status": "ACTIVE", "onboarding": "JITR",
                    "originRegion": region, "version": "1", "certificatePem": device.pem,
                    "caCertificateId": registration.ca_certificate_id}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(bool(row) and not wrong, f"row {thing}: " + ", ".join(
            f"{k}={short(str(row.get(k)), 16)}" for k in expected if k != "certificatePem"),
                   f"unexpected: {', '.join(wrong)}" if row else "no row")
    run.known_elsewhere(region, thing, row, device.pem, without="connecting there first")


@journey("jitr", "JITR: a device's first connection onboards it; it is then known everywhere",
         capability=CAPABILITY, order=10, beside_background=True)
def jitr(run: JourneyRun) -> None:
    for region in run.regions_with(CAPABILITY, "JITR onboarding"):
        _onboard(run, region)


def _each(graph: StackGraph, type_token: str, change: Any) -> StackGraph:
    return with_each(graph, of_capability(graph, CAPABILITY, type_token), change,
                     f"{type_token} in capability {CAPABILITY}")


@wire("jitr-rule-targets-another-machine", journey="jitr",
      description="the JITR topic rule starts a state machine other than the JITR machine")
def rule_targets_another_machine(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        for action in inputs.get("stepFunctions") or []:
            action["stateMachineName"] = f"{action['stateMachineName']}-v2"
        return inputs
    return _each(graph, "aws:iot/topicRule:TopicRule", change)


@wire("jitr-machine-uses-another-table", journey="jitr",
      description="the JITR state machine reads and writes a table other than the inventory")
def machine_uses_another_table(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        definition = json.loads(inputs["definition"])
        for state in definition["States"].values():
            if "TableName" in (state.get("Parameters") or {}):
                state["Parameters"]["TableName"] += "-old"
        return {**inputs, "definition": json.dumps(definition)}
    return _each(graph, "aws:sfn/stateMachine:StateMachine", change)


@wire("jitr-check-trusts-another-ca", journey="jitr",
      description="the JITR check function verifies certificates against another CA")
def check_trusts_another_ca(graph: StackGraph) -> StackGraph:
    other_ca = bootstrap().intermediate_pem

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        inputs["environment"]["variables"]["CA_CERTIFICATE_PEM"] = other_ca
        return inputs
    return _each(graph, "aws:lambda/function:Function", change)


# --- Wires of the device endpoint: each breaks what the endpoint must enforce -------------

@wire("device-endpoint-ca-not-registered", journey="jitr",
      description="the CA registrations declare another CA: the endpoint's TLS must refuse our devices")
def ca_not_registered(graph: StackGraph) -> StackGraph:
    other_ca = bootstrap().intermediate_pem
    return with_each(graph, graph.of_type(CA_TYPE), lambda inputs: {**inputs, "caCertificatePem": other_ca},
                     "CA registration")


@wire("device-policy-publish-names-another-topic", journey="jitr",
      description="the device policy allows publishing under another topic root: the endpoint must "
                  "refuse the device's telemetry")
def policy_publish_names_another_topic(graph: StackGraph) -> StackGraph:
    names = {str(r.get("devicePolicyName")) for r in (graph.outputs.get("regions") or {}).values()}
    return with_each(graph, [p for p in graph.of_type("aws:iot/policy:Policy") if p.inputs.get("name") in names],
                     lambda inputs: {**inputs, "policy": str(inputs["policy"]).replace(":topic/dt/",
                                                                                       ":topic/elsewhere/")},
                     "device policy")


@wire("jitr-ca-auto-registration-off", journey="jitr",
      description="the CA registrations turn auto-registration off: no JITR event, the device never connects")
def ca_auto_registration_off(graph: StackGraph) -> StackGraph:
    return with_each(graph, graph.of_type(CA_TYPE), lambda inputs: {**inputs, "allowAutoRegistration": False},
                     "CA registration")
