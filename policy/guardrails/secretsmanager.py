"""Secrets Manager: CMK encryption, rotation (or a documented exception), no public policy,
no secret value in the Pulumi state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, PolicyConfigSchema, ResourceValidationArgs, StackValidationArgs

from ._common import (
    config,
    get,
    is_customer_managed_key,
    number,
    resource_guardrail,
    stack_guardrail,
    truthy,
)
from ._exposure import resource_policy_check

SECRET = "aws:secretsmanager/secret:Secret"
SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
# A secret that cannot rotate says why in this tag (the documented exception).
EXCEPTION_TAG = "rotation-exception"
DEFAULT_MAX_ROTATION_DAYS = 90


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    if not is_customer_managed_key(args.props.get("kmsKeyId")):
        yield "secret has no customer-managed kmsKeyId (aws/secretsmanager allows no key policy)"


def _interval_days(rotation: Mapping[str, Any]) -> float | None:
    rules = rotation.get("rotationRules")
    days = number(get(rules, "automaticallyAfterDays"))
    if days is not None:
        return days
    if get(rules, "scheduleExpression"):
        return 0.0  # a schedule (rate/cron) AWS checks itself; count it as rotating
    return None


def _rotation(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    maximum = number(config(args, "maxRotationDays", DEFAULT_MAX_ROTATION_DAYS)) or 0
    exceptions = config(args, "exceptions", {})
    rotations: dict[str, list[Mapping[str, Any]]] = {}
    for r in args.resources:
        if r.resource_type == SECRET_ROTATION:
            rotations.setdefault(str(r.props.get("secretId")), []).append(r.props)
    for secret in args.resources:
        if secret.resource_type != SECRET:
            continue
        name = str(secret.props.get("name") or secret.name)
        tags = secret.props.get("tags")
        reason = (tags.get(EXCEPTION_TAG) if isinstance(tags, Mapping) else None) or \
            (exceptions.get(name) or exceptions.get(secret.name) if isinstance(exceptions, Mapping) else None)
        if isinstance(reason, str) and reason.strip():
            continue  # documented exception
        keys = {str(secret.props.get(k)) for k in ("arn", "id", "name") if secret.props.get(k)}
        mine = [r for k in keys for r in rotations.get(k, [])]
        if not mine:
            yield (f"secret {name} has no aws.secretsmanager.SecretRotation; rotate it or document "
                   f"why not (tag {EXCEPTION_TAG!r} or policy config `exceptions`)", secret.urn)
            continue
        for rotation in mine:
            if rotation.get("rotationEnabled") is not None and not truthy(rotation.get("rotationEnabled")):
                yield f"secret {name}: rotationEnabled is false", secret.urn
            days = _interval_days(rotation)
            if days is None or days > maximum:
                yield (f"secret {name} rotates every {days if days is not None else '?'} days; "
                       f"the maximum is {maximum:g}", secret.urn)


def _no_value_in_state(args: ResourceValidationArgs) -> Iterator[str]:
    for key in ("secretString", "secretBinary"):
        if args.props.get(key):
            yield (f"{key} is set: the secret value is stored in the Pulumi state (set it out of "
                   "band, let a rotation Lambda generate it, or use secretStringWo)")


ROTATION_SCHEMA = PolicyConfigSchema(properties={
    "maxRotationDays": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_ROTATION_DAYS,
                        "description": "longest allowed automatic rotation interval"},
    "exceptions": {"type": "object", "default": {},
                   "description": "secret name (physical or logical) -> why it does not rotate"},
})

POLICIES: list[Policy] = [
    resource_guardrail(
        "secretsmanager-cmk-encryption", "Secrets are encrypted with a customer-managed KMS key",
        ["CKV_AWS_149", "AWS Config secretsmanager-using-cmk"], [SECRET], _cmk),
    stack_guardrail(
        "secretsmanager-rotation",
        "Every secret rotates automatically within `maxRotationDays`, or documents why not "
        f"(tag '{EXCEPTION_TAG}' or policy config `exceptions`)",
        ["CKV2_AWS_57", "AwsSolutions-SMG4", "Security Hub SecretsManager.1",
         "Security Hub SecretsManager.4", "AWS Config secretsmanager-rotation-enabled-check"],
        _rotation, config_schema=ROTATION_SCHEMA),
    resource_guardrail(
        "secretsmanager-no-public-policy",
        "Secret resource policies admit no one outside the account (shared resource-policy "
        "judgement)",
        ["IAM Access Analyzer external access findings (AWS::SecretsManager::Secret)",
         "Secrets Manager BlockPublicPolicy"],
        [SECRET, SECRET_POLICY],
        resource_policy_check({SECRET: ("policy",), SECRET_POLICY: ("policy",)})),
    resource_guardrail(
        "secretsmanager-no-value-in-state",
        "Secret versions do not carry their value in the program (it would sit in the state)",
        ["AWS Well-Architected SEC02-BP03 (store and use secrets securely)", "CKV_AWS_45 (same "
         "intent for Lambda)"],
        [SECRET_VERSION], _no_value_in_state),
]
