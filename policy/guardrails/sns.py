"""SNS: customer-managed encryption, no public topic policy, TLS only."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import is_customer_managed_key, resource_guardrail, stack_guardrail
from ._exposure import resource_policy_check, tls_only_problem

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    if not is_customer_managed_key(args.props.get("kmsMasterKeyId")):
        yield "topic has no customer-managed kmsMasterKeyId (alias/aws/sns allows no key policy)"


def _ssl_only(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    policies = [r.props for r in args.resources if r.resource_type == TOPIC_POLICY]
    for topic in args.resources:
        if topic.resource_type != TOPIC:
            continue
        arn = str(topic.props.get("arn") or "")
        candidates = [topic.props.get("policy")] + [p.get("policy") for p in policies
                                                     if str(p.get("arn")) == arn]
        problem = tls_only_problem([c for c in candidates if c], "sns",
                                   lambda _doc: [arn or "*"])
        if problem:
            yield f"topic policy is not TLS-only (aws:SecureTransport): {problem}", topic.urn


POLICIES: list[Policy] = [
    resource_guardrail(
        "sns-cmk-encryption", "Topics are encrypted with a customer-managed KMS key",
        ["CKV_AWS_26", "AwsSolutions-SNS2", "Security Hub SNS.1", "AWS Config sns-encrypted-kms"],
        [TOPIC], _cmk, severity=Severity.MEDIUM),
    resource_guardrail(
        "sns-no-public-policy",
        "Topic policies admit no one outside the account (shared resource-policy judgement)",
        ["CKV_AWS_169", "IAM Access Analyzer external access findings (AWS::SNS::Topic)"],
        [TOPIC, TOPIC_POLICY],
        resource_policy_check({TOPIC: ("policy",), TOPIC_POLICY: ("policy",)}),
        severity=Severity.CRITICAL),
    stack_guardrail(
        "sns-ssl-only", "Every topic's policy denies requests without TLS (aws:SecureTransport)",
        ["AwsSolutions-SNS3"], _ssl_only, severity=Severity.MEDIUM),
]
