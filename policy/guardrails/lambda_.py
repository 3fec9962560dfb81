"""Lambda: tracing, runtimes, async failure handling, permissions, concurrency, secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from ._common import (
    ADVISORY,
    as_list,
    config,
    get,
    number,
    resource_guardrail,
    resource_region,
    stack_guardrail,
)

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
EVENT_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
TOPIC_RULE = "aws:iot/topicRule:TopicRule"

# Managed runtimes AWS still supports for create and update (Lambda runtime deprecation
# calendar, checked 2026-11). Override with the policy config `allowedRuntimes`.
DEFAULT_RUNTIMES = [
    "python3.11", "python3.12", "python3.13", "python3.14",
    "nodejs22.x", "nodejs24.x",
    "java17", "java21", "java25",
    "dotnet8", "dotnet10",
    "ruby3.3", "ruby3.4",
    "provided.al2023",
]
# Services that invoke functions asynchronously (event-driven pushes, retried by Lambda).
ASYNC_INVOKERS = ("iot.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com",
                  "s3.amazonaws.com", "ses.amazonaws.com", "config.amazonaws.com",
                  "cloudwatch.amazonaws.com", "codecommit.amazonaws.com",
                  "logs.amazonaws.com")

_SECRET_NAME = re.compile(r"SECRET|PASSW(OR)?D|\bPWD\b|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|"
                          r"CREDENTIAL|CLIENT_SECRET", re.IGNORECASE)
_REFERENCE_NAME = re.compile(r"(_ARN|_NAME|_ID|_PARAM|_PARAMETER|_PATH|_TABLE|_URL|_REGION|"
                             r"_ALIAS|_TTL|_HEADER)$", re.IGNORECASE)
_SECRET_VALUES = (
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub token
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack token
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."),  # JWT
    re.compile(r"^[A-Za-z0-9/+]{40}$"),  # AWS secret access key shape
)


def _tracing(args: ResourceValidationArgs) -> Iterator[str]:
    mode = get(args.props, "tracingConfig", "mode")
    if mode != "Active":
        yield f"tracingConfig.mode is {mode!r}; set Active for X-Ray traces"


def _runtime(args: ResourceValidationArgs) -> Iterator[str]:
    if args.props.get("packageType") == "Image":
        return
    allowed = [str(r) for r in as_list(config(args, "allowedRuntimes", DEFAULT_RUNTIMES))]
    runtime = args.props.get("runtime")
    if runtime not in allowed:
        yield f"runtime {runtime!r} is not a supported runtime ({', '.join(allowed)})"


def _reserved_concurrency(args: ResourceValidationArgs) -> Iterator[str]:
    reserved = number(args.props.get("reservedConcurrentExecutions"))
    if reserved is None or reserved < 0:
        yield ("no reserved concurrency: a burst can exhaust the account's concurrency for "
               "every other function in the region")


def looks_secret(name: str, value: Any) -> bool:
    text = str(value or "")
    if any(p.search(text) for p in _SECRET_VALUES):
        return True
    if not _SECRET_NAME.search(name) or _REFERENCE_NAME.search(name) or not text:
        return False
    # References to where a secret lives are fine; the secret itself is not.
    return not (text.startswith(("arn:", "/", "{{resolve:")) or text.isdigit())


def _no_secrets_in_env(args: ResourceValidationArgs) -> Iterator[str]:
    variables = get(args.props, "environment", "variables")
    if not isinstance(variables, Mapping):
        return
    for name, value in variables.items():
        if looks_secret(str(name), value):
            yield (f"environment variable {name} looks like a secret; keep it in Secrets Manager "
                   "or SSM and pass its ARN/name")


def _permission_scoped(args: ResourceValidationArgs) -> Iterator[str]:
    props = args.props
    principal = str(props.get("principal") or "")
    if principal == "*":
        if props.get("functionUrlAuthType") != "AWS_IAM":
            yield "principal '*' lets anyone invoke the function"
        return
    if principal.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        source_arn, source_account = props.get("sourceArn"), props.get("sourceAccount")
        if not source_arn and not source_account and not props.get("principalOrgId"):
            yield (f"{principal} may invoke the function on behalf of any account: set sourceArn "
                   "(and sourceAccount) against the confused deputy")
        elif principal == "s3.amazonaws.com" and not source_account:
            yield "s3.amazonaws.com needs sourceAccount too: bucket ARNs carry no account id"


def function_name(reference: Any) -> str:
    """`fn` from a name, `arn:aws:lambda:r:a:function:fn[:qualifier]` or `.../function/fn`."""
    text = str(reference or "")
    match = re.match(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function[:/]([^:/]+)", text)
    return match.group(1) if match else text.split(":")[0]


def _function_key(resource: PolicyResource) -> tuple[str | None, str]:
    name = resource.props.get("name") or function_name(resource.props.get("arn")) or resource.name
    return resource_region(resource), str(name)


def _synchronous_iot_hook(props: Mapping[str, Any]) -> bool:
    """AWS IoT invokes a provisioning template's pre-provisioning hook synchronously and
    waits for its answer (AWS IoT developer guide, "Pre-provisioning hooks"): a permission
    whose source is a provisioning template is no asynchronous invoker."""
    return str(props.get("principal") or "") == "iot.amazonaws.com" and bool(
        re.match(r"^arn:[^:]+:iot:[^:]*:[^:]*:provisioningtemplate/", str(props.get("sourceArn") or "")))


def _async_failure_destination(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    async_reason: dict[tuple[str | None, str], str] = {}
    on_failure: set[tuple[str | None, str]] = set()
    for r in args.resources:
        region = resource_region(r)
        if r.resource_type == PERMISSION:
            principal = str(r.props.get("principal") or "")
            if _synchronous_iot_hook(r.props):
                continue
            if principal in ASYNC_INVOKERS or re.match(r"^logs\.[a-z0-9-]+\.amazonaws\.com$", principal):
                async_reason[(region, function_name(r.props.get("function")))] = f"invoked by {principal}"
        elif r.resource_type == EVENT_INVOKE_CONFIG:
            key = (region, function_name(r.props.get("functionName")))
            async_reason.setdefault(key, "has an event invoke config")
            if get(r.props, "destinationConfig", "onFailure", "destination"):
                on_failure.add(key)
        elif r.resource_type == TOPIC_RULE:
            for action in as_list(r.props.get("lambdas")):
                if isinstance(action, Mapping):
                    key = (region, function_name(action.get("functionArn")))
                    async_reason.setdefault(key, "invoked by an IoT topic rule")
    for r in args.resources:
        if r.resource_type != FUNCTION:
            continue
        key = _function_key(r)
        if key in async_reason and key not in on_failure \
                and not get(r.props, "deadLetterConfig", "targetArn"):
            yield (f"function {key[1]} is invoked asynchronously ({async_reason[key]}) but has no "
                   "dead-letter queue and no on-failure destination: failed events are lost", r.urn)


RUNTIMES_SCHEMA = PolicyConfigSchema(properties={
    "allowedRuntimes": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_RUNTIMES,
                        "description": "Lambda runtimes that are not deprecated"},
})

POLICIES: list[Policy] = [
    resource_guardrail(
        "lambda-tracing-active", "Lambda functions trace with X-Ray (tracingConfig.mode Active)",
        ["CKV_AWS_50", "Serverless-LambdaTracing"],
        [FUNCTION], _tracing, severity=Severity.MEDIUM),
    resource_guardrail(
        "lambda-supported-runtime", "Lambda functions use a supported (not deprecated) runtime",
        ["CKV_AWS_363", "AwsSolutions-L1", "AWS Config lambda-function-settings-check"],
        [FUNCTION], _runtime, config_schema=RUNTIMES_SCHEMA),
    stack_guardrail(
        "lambda-async-failure-destination",
        "Asynchronously invoked functions (service permission, IoT rule action or event invoke "
        "config) have a dead-letter queue or an on-failure destination",
        ["CKV_AWS_116", "Serverless-LambdaDLQ", "Serverless-LambdaAsyncFailureDestination",
         "AWS Config lambda-dlq-check"],
        _async_failure_destination),
    resource_guardrail(
        "lambda-permission-scoped",
        "Lambda permissions for AWS services are pinned with sourceArn/sourceAccount; no '*'",
        ["CKV_AWS_364", "AWS Config lambda-function-public-access-prohibited"],
        [PERMISSION], _permission_scoped, severity=Severity.CRITICAL),
    resource_guardrail(
        "lambda-reserved-concurrency", "Lambda functions reserve concurrency (advisory)",
        ["CKV_AWS_115", "NIST.800.53.R5-LambdaConcurrency",
         "AWS Config lambda-concurrency-check"],
        [FUNCTION], _reserved_concurrency, level=ADVISORY, severity=Severity.LOW),
    resource_guardrail(
        "lambda-no-secrets-in-env",
        "Lambda environment variables hold no secrets (by name or by value shape)",
        ["CKV_AWS_45"],
        [FUNCTION], _no_secrets_in_env, severity=Severity.CRITICAL),
]
