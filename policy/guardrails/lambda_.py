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

from policy.semantics import exposure, globs
from policy.semantics.secrets import find as find_secrets
from policy.semantics.secrets import why_secret

from ._common import (
    ADVISORY,
    as_list,
    config,
    get,
    home_accounts,
    is_customer_managed_key,
    number,
    resource_guardrail,
    resource_region,
    stack_guardrail,
)

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
LAYER_PERMISSION = "aws:lambda/layerVersionPermission:LayerVersionPermission"
EVENT_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
TOPIC_RULE = "aws:iot/topicRule:TopicRule"
PROVISIONING_TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
AUTHORIZER = "aws:iot/authorizer:Authorizer"

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
    return why_secret(name, value) is not None


def _no_secrets_in_env(args: ResourceValidationArgs) -> Iterator[str]:
    variables = get(args.props, "environment", "variables")
    if not isinstance(variables, Mapping):
        return
    for path, reason in find_secrets(variables):
        yield (f"environment variable {path} looks like a secret ({reason}); keep it in "
               "Secrets Manager or SSM and pass its ARN/name")


def _env_cmk(args: ResourceValidationArgs) -> Iterator[str]:
    variables = get(args.props, "environment", "variables")
    if isinstance(variables, Mapping) and len(variables) and \
            not is_customer_managed_key(args.props.get("kmsKeyArn")):
        yield ("environment variables are encrypted with the AWS managed key: set kmsKeyArn to "
               "a customer-managed key")


def _permission_scoped(args: ResourceValidationArgs) -> Iterator[str]:
    """Who may invoke: the principal, and what sourceArn / sourceAccount / principalOrgId
    pin. Every account named (in the principal, sourceAccount or sourceArn) must be home."""
    props = args.props
    principal = str(props.get("principal") or "").strip()
    source_arn = str(props.get("sourceArn") or "").strip()
    source_account = str(props.get("sourceAccount") or "").strip()
    org_id = str(props.get("principalOrgId") or "").strip()
    home = set(home_accounts(args))
    arn_pins, arn_account = exposure.fixed_arn(source_arn) if source_arn else (False, None)
    if source_arn and not arn_pins:
        yield (f"sourceArn {source_arn!r} pins no resource (a wildcard in the service or account, "
               "or a bucket name pattern anyone could register)")
    account_pins = exposure.account_of(source_account) is not None and \
        exposure.ACCOUNT.match(source_account) is not None
    if source_account and not account_pins:
        yield f"sourceAccount {source_account!r} is not a 12-digit account id"
    org_pins = bool(exposure.ORG_ID.match(org_id))
    if org_id and not org_pins:
        yield f"principalOrgId {org_id!r} is not an organization id (o-...)"
    named = {a for a in (exposure.account_of(principal), arn_account,
                         source_account if account_pins else None) if a}
    foreign = sorted(a for a in named if home and a not in home)
    if foreign:
        yield (f"names account(s) {', '.join(foreign)}, outside this stack's account(s) "
               f"{', '.join(sorted(home))}")
    # A bucket ARN names no account: whose bucket it is only sourceAccount can say.
    arn_pins_account = arn_pins and (arn_account is not None or account_pins)
    if globs.scopes_nothing(principal):
        if not (org_pins or account_pins or arn_pins_account):
            auth = props.get("functionUrlAuthType")
            yield (f"principal '*' lets anyone{' with any AWS account' if auth == 'AWS_IAM' else ''} "
                   "invoke the function: set principalOrgId, or pin the calling resource with a "
                   "sourceArn in this account (and sourceAccount)")
        return
    if principal.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        if arn_pins and arn_account is None and not account_pins:
            yield f"{principal} with sourceArn {source_arn!r} needs sourceAccount too: the ARN carries no account id"
        elif not (arn_pins_account or account_pins or org_pins):
            yield (f"{principal} may invoke the function on behalf of any account: set sourceArn "
                   "(and sourceAccount) against the confused deputy")
    elif exposure.account_of(principal) is None and not principal.startswith("arn:"):
        yield f"principal {principal!r} is neither an account, an ARN nor a service principal"


def _function_url_auth(args: ResourceValidationArgs) -> Iterator[str]:
    if str(args.props.get("authorizationType") or "").upper() != "AWS_IAM":
        yield ("function URL authorizationType is NONE: anyone on the internet can invoke the "
               "function (use AWS_IAM, or API Gateway with an authorizer and WAF)")


def _layer_not_public(args: ResourceValidationArgs) -> Iterator[str]:
    principal = str(args.props.get("principal") or "").strip()
    if globs.scopes_nothing(principal) and not args.props.get("organizationId"):
        yield "layer version is shared with every AWS account (principal '*' without organizationId)"


def function_name(reference: Any) -> str:
    """`fn` from a name, `arn:aws:lambda:r:a:function:fn[:qualifier]` or `.../function/fn`."""
    text = str(reference or "")
    match = re.match(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function[:/]([^:/]+)", text)
    return match.group(1) if match else text.split(":")[0]


def _function_key(resource: PolicyResource) -> tuple[str | None, str]:
    name = resource.props.get("name") or function_name(resource.props.get("arn")) or resource.name
    return resource_region(resource), str(name)


def _synchronous_source(source_arn: str) -> bool:
    """IoT calls pre-provisioning hooks and custom authorizers synchronously (it waits for the
    answer), unlike rule actions."""
    return bool(re.search(r":iot:[^:]*:[^:]*:(provisioningtemplate|authorizer)/", source_arn))


def _iot_synchronous_targets(args: StackValidationArgs) -> set[tuple[str | None, str]]:
    """Functions IoT calls synchronously: provisioning hooks and custom authorizers."""
    targets = set()
    for r in args.resources:
        if r.resource_type == PROVISIONING_TEMPLATE:
            arn = get(r.props, "preProvisioningHook", "targetArn")
        elif r.resource_type == AUTHORIZER:
            arn = r.props.get("authorizerFunctionArn")
        else:
            continue
        if arn:
            targets.add((resource_region(r), function_name(arn)))
    return targets


def _async_failure_destination(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    async_reason: dict[tuple[str | None, str], str] = {}
    on_failure: set[tuple[str | None, str]] = set()
    synchronous = _iot_synchronous_targets(args)
    for r in args.resources:
        region = resource_region(r)
        if r.resource_type == PERMISSION:
            principal = str(r.props.get("principal") or "")
            source_arn = str(r.props.get("sourceArn") or "")
            target = (region, function_name(r.props.get("function")))
            if principal == "iot.amazonaws.com" and not source_arn and target in synchronous:
                continue  # a hook or authorizer without sourceArn: still a synchronous caller
            if (principal in ASYNC_INVOKERS or re.match(r"^logs\.[a-z0-9-]+\.amazonaws\.com$", principal)) \
                    and not _synchronous_source(source_arn):
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
        "Lambda permissions admit no one outside the account: no '*' principal without "
        "principalOrgId, no foreign account, service principals pinned by a sourceArn/"
        "sourceAccount that fixes the account",
        ["CKV_AWS_364", "CKV_AWS_301", "Security Hub Lambda.1",
         "AWS Config lambda-function-public-access-prohibited"],
        [PERMISSION], _permission_scoped, severity=Severity.CRITICAL),
    resource_guardrail(
        "lambda-function-url-auth",
        "Lambda function URLs require AWS_IAM authorization",
        ["CKV_AWS_258"], [FUNCTION_URL], _function_url_auth, severity=Severity.CRITICAL),
    resource_guardrail(
        "lambda-environment-cmk",
        "Functions with environment variables encrypt them with a customer-managed key",
        ["CKV_AWS_173"], [FUNCTION], _env_cmk, severity=Severity.MEDIUM),
    resource_guardrail(
        "lambda-layer-not-public",
        "Lambda layer versions are not shared with every AWS account",
        ["IAM Access Analyzer external access findings (AWS::Lambda::LayerVersion)"],
        [LAYER_PERMISSION], _layer_not_public),
    resource_guardrail(
        "lambda-reserved-concurrency", "Lambda functions reserve concurrency (advisory)",
        ["CKV_AWS_115", "NIST.800.53.R5-LambdaConcurrency",
         "AWS Config lambda-concurrency-check"],
        [FUNCTION], _reserved_concurrency, level=ADVISORY, severity=Severity.LOW),
    resource_guardrail(
        "lambda-no-secrets-in-env",
        "Lambda environment variables hold no secrets (by value shape, and by name unless the "
        "value is a reference such as an ARN or SSM path)",
        ["CKV_AWS_45"],
        [FUNCTION], _no_secrets_in_env, severity=Severity.CRITICAL),
]
