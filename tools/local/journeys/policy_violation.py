"""A policy-pack violation injected into a copy of the stack is reported.

Proves the guardrails are enforced on what the program declares: the stack as evaluated
passes; a copy with one log group's KMS key removed is rejected with a mandatory violation
naming that log group.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import EnforcementLevel

from tools.policy_check import run_policies
from tools.local.graph_edit import with_inputs
from tools.local.journeys import JourneyRun, journey

LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"


def _unencrypted(inputs: dict[str, Any]) -> dict[str, Any]:
    inputs.pop("kmsKeyId", None)
    return inputs


@journey("policy-violation", "A policy-pack violation injected into a copy of the stack is "
         "reported", needs_runtime=False, order=90)
def policy_violation(run: JourneyRun) -> None:
    system = run.system
    with run.step("a copy of the stack with an unencrypted log group") as step:
        targets = [r for r in system.evaluated.of_type(LOG_GROUP_TYPE) if r.inputs.get("kmsKeyId")]
        step.check(bool(targets), f"{len(targets)} encrypted log group(s) declared",
                   "the stack declares no encrypted log group to break")
        target = targets[0]
        broken = with_inputs(system.evaluated, target, _unencrypted)
        step.check("kmsKeyId" not in broken.named(target.name).inputs
                   and bool(system.evaluated.named(target.name).inputs.get("kmsKeyId")),
                   f"log group {target.inputs.get('name')} without kmsKeyId in the copy; "
                   f"the evaluated stack untouched")

    with run.step("the policy runner rejects the copy, naming that log group") as step:
        def mandatory_on(report: Any) -> list[str]:
            return sorted({v.policy for v in report.violations
                           if v.urn == target.urn and v.level == EnforcementLevel.MANDATORY})

        before = mandatory_on(system.policy_report)  # the run's own check of the stack
        after = mandatory_on(run_policies(broken, policy_config=system.policy_config,
                                          stack_config=system.stack_config))
        step.check(not before and bool(after),
                   f"mandatory violation(s) on {target.name}: before {before or 'none'}, "
                   f"after {', '.join(after) or 'none'}")
