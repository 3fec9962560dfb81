"""SQS: customer-managed encryption, TLS-only access, no public policy, failures kept."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Policy, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from policy.semantics.documents import statements

from ._common import (
    ADVISORY,
    is_customer_managed_key,
    parsed_documents,
    resource_guardrail,
    stack_guardrail,
)
from ._exposure import resource_policy_check, tls_only_problem

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    key = args.props.get("kmsMasterKeyId")
    if not is_customer_managed_key(key):
        yield "queue has no customer-managed kmsMasterKeyId (SQS-managed SSE and alias/aws/sqs " \
              "allow no key policy)"


def _queue_policies(queue: PolicyResource, queue_policies: list[Mapping[str, Any]]) -> list[Any]:
    ids = {str(queue.props.get(k)) for k in ("url", "id") if queue.props.get(k)}
    arn = str(queue.props.get("arn") or "")
    found = [queue.props.get("policy")]
    for qp in queue_policies:
        if str(qp.get("queueUrl")) in ids:
            found.append(qp.get("policy"))
            continue
        for _, document, _ in parsed_documents(qp, ["policy"]):
            if arn and any(arn in (s.resources or ()) for s in statements(document)):
                found.append(qp.get("policy"))
    return [p for p in found if p]


def _ssl_only(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    queue_policies: list[Mapping[str, Any]] = [r.props for r in args.resources
                                               if r.resource_type == QUEUE_POLICY]
    for queue in args.resources:
        if queue.resource_type != QUEUE:
            continue
        arn = queue.props.get("arn")
        problem = tls_only_problem(_queue_policies(queue, queue_policies), "sqs",
                                   lambda _doc: [str(arn) if arn else "*"])
        if problem:
            yield f"queue policy is not TLS-only (aws:SecureTransport): {problem}", queue.urn


_DEAD_LETTER_KEYS = ("deadletter", "erroraction", "onfailure", "redrive", "dlq")


def _is_dead_letter_path(path: str) -> bool:
    return any(part in path.lower() for part in _DEAD_LETTER_KEYS)


def _references(value: Any, identifiers: set[str], path: str = "") -> list[str]:
    """Key paths under which `value` mentions one of `identifiers`.

    Only a mention under a dead-letter key counts, so a scalar unknown at preview under any
    other key cannot change the verdict and is not read (an unknown CloudFront origin must not
    leave every queue unjudged). An unknown object or array may hide a dead-letter key: that
    one still raises, as the engine expects."""
    found = []
    if isinstance(value, str):
        if _is_dead_letter_path(path) and any(i in value for i in identifiers):
            found.append(path)
    elif isinstance(value, Mapping):
        for k in value:
            child = _read(value, k, f"{path}.{k}")
            if child is not _SKIPPED:
                found += _references(child, identifiers, f"{path}.{k}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for i in range(len(value)):
            child = _read(value, i, f"{path}[{i}]")
            if child is not _SKIPPED:
                found += _references(child, identifiers, f"{path}[{i}]")
    return found


_SKIPPED = object()
_SCALAR_UNKNOWNS = frozenset({UNKNOWN_STRING_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_BOOLEAN_VALUE,
                              UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE})


def _read(container: Any, key: Any, path: str) -> Any:
    try:
        return container[key]
    except UnknownValueError as unknown:
        if unknown.unknown_type_sentinel in _SCALAR_UNKNOWNS and not _is_dead_letter_path(path):
            return _SKIPPED
        raise


def _dead_letters_kept(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    queues = [r for r in args.resources if r.resource_type == QUEUE]
    redriven = {str(r.props.get("queueUrl")) for r in args.resources
                if r.resource_type == REDRIVE_POLICY and r.props.get("redrivePolicy")}
    for queue in queues:
        if queue.props.get("redrivePolicy") or str(queue.props.get("url")) in redriven:
            continue
        identifiers = {str(queue.props.get(k)) for k in ("arn", "url") if queue.props.get(k)}
        used_as_dead_letter = any(_references(other.props, identifiers)
                                  for other in args.resources if other is not queue)
        if not used_as_dead_letter:
            yield ("queue has no redrivePolicy (dead-letter queue) and is no resource's dead-letter "
                   "target: poison messages would be retried until they expire", queue.urn)


POLICIES: list[Policy] = [
    resource_guardrail(
        "sqs-cmk-encryption", "Queues are encrypted with a customer-managed KMS key",
        ["CKV_AWS_27", "AwsSolutions-SQS2", "Security Hub SQS.1"],
        [QUEUE], _cmk, severity=Severity.MEDIUM),
    stack_guardrail(
        "sqs-ssl-only", "Every queue's policy denies requests without TLS (aws:SecureTransport)",
        ["AwsSolutions-SQS4"], _ssl_only,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "sqs-no-public-policy",
        "Queue policies admit no one outside the account (shared resource-policy judgement)",
        ["CKV_AWS_168", "CKV_AWS_72", "Security Hub SQS.3", "AWS Config sqs-queue-no-public-access"],
        [QUEUE, QUEUE_POLICY],
        resource_policy_check({QUEUE: ("policy",), QUEUE_POLICY: ("policy",)}),
        severity=Severity.CRITICAL),
    stack_guardrail(
        "sqs-dead-letters-kept",
        "Every queue has a dead-letter queue, or is itself a dead-letter target (advisory)",
        ["AwsSolutions-SQS3"], _dead_letters_kept, level=ADVISORY, severity=Severity.LOW),
]
