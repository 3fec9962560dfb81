"""Secrets in configuration outside Lambda environments: SSM String parameters, HTTP headers
of topic rules, pipes, event targets and API destinations, Step Functions definitions, API
Gateway stage variables and integration parameters, scheduler inputs. Each lands in the
Pulumi state and in the service's own (readable, logged) configuration.

One judgement (policy.semantics.secrets) for every place: values by shape, then by the name
they sit under, JSON text decoded and walked, `{key, value}` pairs read as name -> value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from policy.semantics.secrets import find, why_secret

from ._common import get, resource_guardrail

SSM_PARAMETER = "aws:ssm/parameter:Parameter"
# Resource type -> the properties (paths) whose content is configuration someone reads.
SCANNED: dict[str, tuple[tuple[str, ...], ...]] = {
    "aws:iot/topicRule:TopicRule": (("http",), ("errorAction",), ("republishes",)),
    "aws:sfn/stateMachine:StateMachine": (("definition",),),
    "aws:pipes/pipe:Pipe": (("targetParameters",), ("enrichmentParameters",), ("sourceParameters",)),
    "aws:cloudwatch/eventTarget:EventTarget": (("httpTarget",), ("input",), ("inputTransformer",)),
    "aws:cloudwatch/eventConnection:EventConnection": (("authParameters", "invocationHttpParameters"),),
    "aws:apigateway/stage:Stage": (("variables",),),
    "aws:apigateway/integration:Integration": (("requestParameters",), ("requestTemplates",)),
    "aws:apigatewayv2/integration:Integration": (("requestParameters",), ("requestTemplates",)),
    "aws:apigatewayv2/stage:Stage": (("stageVariables",),),
    "aws:scheduler/schedule:Schedule": (("target",),),
    "aws:iot/provisioningTemplate:ProvisioningTemplate": (("templateBody",),),
}


def _not_secret_flagged(value: Any) -> Any:
    """API destination connections may carry headers marked `isValueSecret` (AWS keeps those
    in Secrets Manager); only the others are plain configuration."""
    if isinstance(value, Mapping):
        if value.get("isValueSecret") is True or str(value.get("isValueSecret")).lower() == "true":
            return None
        return {k: _not_secret_flagged(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_not_secret_flagged(v) for v in value]
    return value


def _ssm(args: ResourceValidationArgs) -> Iterator[str]:
    kind = str(args.props.get("type") or "String")
    if kind == "SecureString":
        return
    name = str(args.props.get("name") or args.name)
    for key in ("value", "insecureValue"):
        value = args.props.get(key)
        if value is None:
            continue
        reason = why_secret(name.rsplit("/", 1)[-1], value)
        found = [(f"{key}", reason)] if reason else list(find(value, name.rsplit("/", 1)[-1], key))
        for where, why in found:
            yield (f"{kind} parameter {name}: {where} looks like a secret ({why}); use type "
                   "SecureString with a customer-managed key, set out of band, or Secrets Manager")


def _in_configuration(args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == SSM_PARAMETER:
        yield from _ssm(args)
        return
    for path in SCANNED.get(args.resource_type, ()):
        value = get(args.props, *path)
        if value is None:
            continue
        if args.resource_type == "aws:cloudwatch/eventConnection:EventConnection":
            value = _not_secret_flagged(value)
        for where, why in find(value, path[-1], ".".join(path)):
            yield (f"{where} looks like a secret ({why}); keep it in Secrets Manager (API "
                   "destinations: a connection's secret parameters; Step Functions and pipes: "
                   "resolve it at run time) and pass its ARN")


POLICIES: list[Policy] = [
    resource_guardrail(
        "no-secrets-in-configuration",
        "Configuration outside Lambda (SSM String parameters, rule/pipe/event-target HTTP "
        "headers, Step Functions definitions, stage variables, integration parameters, "
        "schedules, templates) holds no secrets, judged by value shape and by name, JSON "
        "decoded",
        ["CKV_AWS_45 (same intent beyond Lambda)", "CKV_AWS_337 (SSM SecureString)",
         "AWS Well-Architected SEC02-BP03 (store and use secrets securely)"],
        [SSM_PARAMETER, *SCANNED], _in_configuration, severity=Severity.CRITICAL),
]
