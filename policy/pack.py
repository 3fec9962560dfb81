"""Every guardrail of the pack, in one list, importable without starting the analyzer.

`build_pack()` constructs `pulumi_policy.PolicyPack`, which starts the gRPC analyzer server
and blocks forever: only `policy/__main__.py` (run by the Pulumi CLI) calls it.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from policy.guardrails import (
    apigateway,
    cloudfront,
    cognito,
    configuration,
    coverage,
    data,
    events,
    iam,
    iot,
    kms,
    lambda_,
    logs,
    operations,
    pipes,
    route53,
    s3,
    secretsmanager,
    sns,
    sqs,
    stack,
    stepfunctions,
    waf,
)
from policy.guardrails._common import ANCHORS

PACK_NAME = "iot-multi-region-guardrails"

ALL_POLICIES: list[Policy] = [
    *iot.POLICIES,
    *data.POLICIES,
    *iam.POLICIES,
    *lambda_.POLICIES,
    *configuration.POLICIES,
    *stepfunctions.POLICIES,
    *pipes.POLICIES,
    *apigateway.POLICIES,
    *waf.POLICIES,
    *cognito.POLICIES,
    *kms.POLICIES,
    *secretsmanager.POLICIES,
    *s3.POLICIES,
    *cloudfront.POLICIES,
    *sns.POLICIES,
    *sqs.POLICIES,
    *events.POLICIES,
    *logs.POLICIES,
    *route53.POLICIES,
    *stack.POLICIES,
    *operations.POLICIES,
    *coverage.POLICIES,
]

__all__ = ["ALL_POLICIES", "ANCHORS", "PACK_NAME", "build_pack"]


def build_pack() -> None:
    """Serve the pack to the Pulumi engine (never returns)."""
    from pulumi_policy import PolicyPack

    PolicyPack(name=PACK_NAME, policies=ALL_POLICIES,
               enforcement_level=EnforcementLevel.MANDATORY)
