"""SQS: customer-managed encryption and TLS-only access."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import get, parsed_documents, resource_guardrail, resources, stack_guardrail, statements, truthy

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    key = args.props.get("kmsMasterKeyId")
    if not key or str(key) == "alias/aws/sqs":
        yield "queue has no customer-managed kmsMasterKeyId (SQS-managed SSE and alias/aws/sqs " \
              "allow no key policy)"


def denies_insecure_transport(policy: Any) -> bool:
    for _, document, _ in parsed_documents({"policy": policy}, ["policy"]):
        for statement in statements(document):
            secure = get(statement, "Condition", "Bool", "aws:SecureTransport")
            if statement.get("Effect") == "Deny" and secure is not None and not truthy(secure):
                return True
    return False


def _ssl_only(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    queue_policies: list[Mapping[str, Any]] = [r.props for r in args.resources
                                               if r.resource_type == QUEUE_POLICY]
    for queue in args.resources:
        if queue.resource_type != QUEUE:
            continue
        ids = {str(queue.props.get(k)) for k in ("url", "id") if queue.props.get(k)}
        arn = str(queue.props.get("arn") or "")
        candidates = [queue.props.get("policy")]
        for qp in queue_policies:
            if str(qp.get("queueUrl")) in ids:
                candidates.append(qp.get("policy"))
                continue
            for _, document, _ in parsed_documents(qp, ["policy"]):
                if arn and any(arn in resources(s) for s in statements(document)):
                    candidates.append(qp.get("policy"))
        if not any(denies_insecure_transport(p) for p in candidates if p):
            yield ("queue policy does not Deny requests with aws:SecureTransport = false",
                   queue.urn)


POLICIES: list[Policy] = [
    resource_guardrail(
        "sqs-cmk-encryption", "Queues are encrypted with a customer-managed KMS key",
        ["CKV_AWS_27", "AwsSolutions-SQS2"],
        [QUEUE], _cmk, severity=Severity.MEDIUM),
    stack_guardrail(
        "sqs-ssl-only", "Every queue's policy denies requests without TLS (aws:SecureTransport)",
        ["AwsSolutions-SQS4"], _ssl_only,
        severity=Severity.MEDIUM),
]
