"""The platform's journeys: the run's PKI is the stack's CA in every region; a policy-pack
violation injected into a copy of the stack is reported."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from pulumi_policy import EnforcementLevel

from components.x509 import is_ca_certificate, is_self_signed
from tools.local.emulation.iot_data import CA_TYPE
from tools.local.graph_edit import with_inputs
from tools.local.journeys import JourneyRun, journey, short, shown
from tools.local.journeys import registry as seen
from tools.local.world import plain


def _path_length(certificate: x509.Certificate) -> int | None:
    return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


@journey("pki", "PKI bootstrap: root CA -> intermediate CA, registered as the stack's CA", order=0,
         beside_background=True)
def pki_bootstrap(run: JourneyRun) -> None:
    world = run.world
    root, intermediate = world.pki.root.cert, world.pki.intermediate.cert
    with run.step("root CA created: self-signed CA certificate") as step:
        step.check(is_self_signed(root) and is_ca_certificate(root),
                   f"{root.subject.rfc4514_string()}, self-signed, CA, path length {shown(_path_length(root))}")
    with run.step("intermediate CA issued by the root, may issue device certificates only") as step:
        intermediate.verify_directly_issued_by(root)
        step.check(is_ca_certificate(intermediate) and _path_length(intermediate) == 0,
                   f"{intermediate.subject.rfc4514_string()}, signed by the root, path length "
                   f"{shown(_path_length(intermediate))}")
    with run.step("the stack declares the intermediate as its CA in every region") as step:
        # During a CA rotation a region declares two CAs; the intermediate must be one of them.
        declared: dict[str, list[Any]] = {}
        for resource in world.graph.of_type(CA_TYPE):
            declared.setdefault(str(resource.region), []).append(
                plain(dict(resource.inputs)).get("caCertificatePem"))
        wrong = sorted(r for r, pems in declared.items()
                       if not any(seen.same_certificate(p, intermediate) for p in pems))
        step.check(bool(declared) and not wrong, f"{len(declared)} CA registration(s) declared with the "
                                                 f"intermediate's PEM", f"expected the intermediate in every CA registration; "
                                                                       f"other CAs in: {shown(wrong)}")
    for region in world.regions:
        with run.step("our CA registered in IoT: ACTIVE, auto-registration on, as declared",
                      region=region) as step:
            resources = seen.device_ca_registrations(world, region)
            step.check(len(resources) == 1, f"{len(resources)} CA registration(s) of the intermediate declared")
            [resource] = resources
            state, ca_id = world.state(resource), world.resolver(resource.id)
            described = world.client("iot", region).describe_ca_certificate(
                certificateId=ca_id)["certificateDescription"]
            same = seen.same_certificate(described["certificatePem"], intermediate)
            step.check(described["status"] == "ACTIVE" and same and bool(state.get("allowAutoRegistration")),
                       f"CA {short(ca_id)} {described['status']}, PEM = intermediate: {same}, "
                       f"allowAutoRegistration={state.get('allowAutoRegistration')}, mode {state.get('certificateMode')}")


@journey("policy-violation", "A policy-pack violation injected into a copy of the stack is reported",
         needs_runtime=False, order=50, background=True)  # waits on its forked check, off the others' path
def policy_violation(run: JourneyRun) -> None:
    from tools.policy_check import forked_policy_run

    world = run.world
    evaluated = world.evaluated or world.graph
    with run.step("a copy of the stack with an unencrypted log group") as step:
        targets = [r for r in evaluated.of_type("aws:cloudwatch/logGroup:LogGroup") if r.inputs.get("kmsKeyId")]
        step.check(bool(targets), f"{len(targets)} encrypted log group(s) declared", "none declared to break")
        target = targets[0]
        broken = with_inputs(evaluated, target, lambda inputs: {k: v for k, v in inputs.items() if k != "kmsKeyId"})
        step.check("kmsKeyId" not in broken.named(target.name).inputs
                   and bool(evaluated.named(target.name).inputs.get("kmsKeyId")),
                   f"log group {target.inputs.get('name')} without kmsKeyId in the copy; the stack untouched")

    def mandatory_on(report: Any) -> list[str]:
        return sorted({v.policy for v in report.violations
                       if v.urn == target.urn and v.level == EnforcementLevel.MANDATORY})

    with run.step("the policy runner rejects the copy, naming that log group") as step:
        before = mandatory_on(world.policy_report)  # the run's own check of the stack
        # In a child: the check's 2-3 s of Python would otherwise be taken from the journeys beside it.
        after = mandatory_on(forked_policy_run(broken, policy_config=world.policy_config,
                                               stack_config=world.stack_config).result())
        step.check(not before and bool(after), f"mandatory violation(s) on {target.name}: before "
                                               f"{before or 'none'}, after {', '.join(after) or 'none'}")
