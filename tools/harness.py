"""Evaluate a Pulumi Python program offline, under recording mocks.

No Pulumi CLI, no provider plugin, no cloud: every resource registration is answered by
`RecordingMocks`, which records it (type, logical name, inputs, parent, region) and fills
the computed outputs the program reads (ARNs, stream ARNs, ids). The result is the stack's
resource graph, used by the tests, the offline plan (`tools.plan`), the benchmark and the
policy runner (`tools.policy_check`).

Each evaluation runs in a fresh `contextvars.Context`, so the Pulumi runtime's ambient
settings of one evaluation never leak into the next. What the harness needs of the SDK beyond
its public API is in tools/pulumi_internals.py (and nowhere else).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import gc
import hashlib
import json
import logging
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.facts import GLOBAL_AWS_MODULES

ACCOUNT_ID = "123456789012"
# The engine's marker for a value not known until the update (pulumi.runtime.rpc.UNKNOWN).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PARTITION = "aws"
# Services whose resources have no region (pulumi-aws v7 gives them no `region` argument).
GLOBAL_MODULES = GLOBAL_AWS_MODULES
GLOBAL = "global"
# Packages whose type tokens are `<package>:<module>...` and which land in an AWS region.
NATIVE_PACKAGES = ("aws", "aws-native")


@dataclass(frozen=True)
class RecordedResource:
    """One `RegisterResource` call as the engine would have seen it."""

    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any]
    parent_urn: str | None
    custom: bool
    provider: str | None
    # What the engine would know after the create: the id and inputs + computed outputs.
    id: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    # Resource options the engine acts on at update/delete time (deleteBeforeReplace,
    # retainOnDelete, ignoreChanges, importId, protect, replaceOnChanges), as the request
    # carried them.
    options: Mapping[str, Any] = field(default_factory=dict)
    # URNs this resource was known by before (its `aliases` option): Pulumi moves state
    # from any of them instead of replacing the resource.
    aliases: tuple[str, ...] = ()
    # The `region` of the explicit provider the resource was registered with (how a
    # pulumi-aws-native resource, which has no `region` argument, picks its region).
    provider_region: str | None = None

    @property
    def module(self) -> str:
        """`dynamodb` for `aws:dynamodb/table:Table`, `iot` for `aws-native:iot:ScheduledAudit`."""
        package, _, rest = self.type.partition(":")
        return rest.split("/")[0].split(":")[0] if package in NATIVE_PACKAGES else package

    @property
    def region(self) -> str | None:
        """Where the resource lands: its `region` input, `global`, or None for components."""
        if not self.custom:
            return None
        package = self.type.partition(":")[0]
        if package in NATIVE_PACKAGES and self.module in GLOBAL_MODULES:
            return GLOBAL
        if package == "aws-native":
            return self.provider_region  # None: the default provider, which we never use
        region = self.inputs.get("region")
        return region if isinstance(region, str) else None


@dataclass
class StackGraph:
    """Everything one evaluation registered, in registration order, plus the stack's exports."""

    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # (level, message) of every pulumi.log call, e.g. ("ERROR", "iot-multi-region:regions: ...")
    diagnostics: list[tuple[str, str]] = field(default_factory=list)
    # True when evaluated as `pulumi preview` sees a first deployment: computed outputs are
    # unknown (`UNKNOWN`), and so is every input derived from one.
    preview: bool = False
    _index: tuple[tuple[int, int], dict[str, RecordedResource]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def by_urn(self) -> dict[str, RecordedResource]:
        return dict(self._urn_index())

    def _urn_index(self) -> dict[str, RecordedResource]:
        # Built once per state of the list (an evaluation appends; edits make a new graph):
        # ancestors() asks for it for every resource a world looks at.
        key = (id(self.resources), len(self.resources))
        if self._index is None or self._index[0] != key:
            self._index = (key, {r.urn: r for r in self.resources})
        return self._index[1]

    def children(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent_urn == parent.urn]

    def custom_resources(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.custom]

    def ancestors(self, resource: RecordedResource) -> list[RecordedResource]:
        index = self._urn_index()
        chain: list[RecordedResource] = []
        urn = resource.parent_urn
        while urn and urn in index:
            chain.append(index[urn])
            urn = index[urn].parent_urn
        return chain


class ProgramFailed(Exception):
    """The program raised; `graph` holds what it had registered before it did."""

    def __init__(self, error: Exception, graph: StackGraph) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.graph = graph


# --- computed outputs ---------------------------------------------------------------------

def _digest(*parts: str, length: int = 32) -> str:
    """Stable fake identifiers, so two evaluations of one stack are identical."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _arn(resource: RecordedResource, kind: str, physical: str) -> str:
    region = "" if resource.region in (None, GLOBAL) else resource.region
    account = ACCOUNT_ID
    return f"arn:{PARTITION}:{resource.module}:{region}:{account}:{kind}/{physical}"


def _physical_name(resource: RecordedResource) -> str:
    name = resource.inputs.get("name")
    return name if isinstance(name, str) else resource.name


def _table_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    arn = _arn(r, "table", name)
    label = "2026-01-01T00:00:00.000"
    replicas = []
    for replica in r.inputs.get("replicas") or []:
        region = replica.get("regionName")
        replica_arn = f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
        replicas.append({**replica, "arn": replica_arn, "streamArn": f"{replica_arn}/stream/{label}",
                         "streamLabel": label})
    out: dict[str, Any] = {"name": name, "arn": arn, "replicas": replicas}
    if r.inputs.get("streamEnabled"):
        out.update(streamArn=f"{arn}/stream/{label}", streamLabel=label)
    return out


def _kms_key_outputs(r: RecordedResource) -> dict[str, Any]:
    prefix = "mrk-" if r.inputs.get("multiRegion") else ""
    key_id = prefix + _digest(r.urn)
    return {"keyId": key_id, "arn": _arn(r, "key", key_id)}


def _replica_key_outputs(r: RecordedResource) -> dict[str, Any]:
    primary = str(r.inputs.get("primaryKeyArn", ""))
    key_id = primary.rsplit("/", 1)[-1] or "mrk-" + _digest(r.urn)
    return {"keyId": key_id, "arn": _arn(r, "key", key_id)}


def _iam_role_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}",
            "uniqueId": "AROA" + _digest(r.urn, length=17).upper()}


def _iam_policy_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:policy/{name}"}


def _hosted_zone_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"zoneId": "Z" + _digest(r.urn, length=20).upper()}


def _acm_certificate_outputs(r: RecordedResource) -> dict[str, Any]:
    """Like ACM: the DNS-validation CNAME depends on account and domain, not on region."""
    domain = str(r.inputs.get("domainName", ""))
    certificate_id = f"{_digest(r.urn, length=8)}-0000-4000-8000-{_digest(r.urn, length=12)}"
    option = {
        "domainName": domain,
        "resourceRecordName": f"_{_digest(ACCOUNT_ID, domain)}.{domain}.",
        "resourceRecordType": "CNAME",
        "resourceRecordValue": f"_{_digest(domain, ACCOUNT_ID)}.offline.acm-validations.aws.",
    }
    return {"arn": _arn(r, "certificate", certificate_id), "status": "PENDING_VALIDATION",
            "domainValidationOptions": [option] if domain else []}


def _route53_record_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"fqdn": str(r.inputs.get("name", "")).rstrip(".")}



def _regional_arn(r: RecordedResource, service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{r.region or ''}:{ACCOUNT_ID}:{resource}"


def _state_machine_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"name": _physical_name(r),
            "arn": _regional_arn(r, "states", f"stateMachine:{_physical_name(r)}")}


def _lambda_function_outputs(r: RecordedResource) -> dict[str, Any]:
    arn = _regional_arn(r, "lambda", f"function:{_physical_name(r)}")
    return {"name": _physical_name(r), "arn": arn, "qualifiedArn": f"{arn}:$LATEST",
            "invokeArn": f"arn:{PARTITION}:apigateway:{r.region}:lambda:path/2015-03-31/"
                         f"functions/{arn}/invocations"}


def _lambda_layer_outputs(r: RecordedResource) -> dict[str, Any]:
    layer_arn = _regional_arn(r, "lambda", f"layer:{r.inputs.get('layerName', r.name)}")
    return {"layerArn": layer_arn, "arn": f"{layer_arn}:1", "version": "1"}


def _log_group_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "arn": _regional_arn(r, "logs", f"log-group:{name}")}


def _sqs_queue_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "arn": _regional_arn(r, "sqs", name),
            "url": f"https://sqs.{r.region}.amazonaws.com/{ACCOUNT_ID}/{name}"}

# Resource type -> computed outputs. A capability registers its own types from a module of
# tools/harness_outputs/ (`@register_outputs("aws:...")`), loaded below; no edit here.
COMPUTED_OUTPUTS: dict[str, Callable[[RecordedResource], dict[str, Any]]] = {
    "aws:dynamodb/table:Table": _table_outputs,
    "aws:kms/key:Key": _kms_key_outputs,
    "aws:kms/replicaKey:ReplicaKey": _replica_key_outputs,
    "aws:iam/role:Role": _iam_role_outputs,
    "aws:iam/policy:Policy": _iam_policy_outputs,
    "aws:route53/zone:Zone": _hosted_zone_outputs,
    "aws:acm/certificate:Certificate": _acm_certificate_outputs,
    "aws:route53/record:Record": _route53_record_outputs,
    "aws:sfn/stateMachine:StateMachine": _state_machine_outputs,
    "aws:lambda/function:Function": _lambda_function_outputs,
    "aws:lambda/layerVersion:LayerVersion": _lambda_layer_outputs,
    "aws:sqs/queue:Queue": _sqs_queue_outputs,
    "aws:cloudwatch/logGroup:LogGroup": _log_group_outputs,
}


OutputsFunction = Callable[[RecordedResource], dict[str, Any]]


def register_outputs(type_token: str) -> Callable[[OutputsFunction], OutputsFunction]:
    """Decorator: `fn` computes what the engine would return for resources of `type_token`."""
    def add(fn: OutputsFunction) -> OutputsFunction:
        if type_token in COMPUTED_OUTPUTS and COMPUTED_OUTPUTS[type_token] is not fn:
            raise ValueError(f"computed outputs for {type_token} registered twice")
        COMPUTED_OUTPUTS[type_token] = fn
        return fn
    return add


def _load_output_modules() -> None:
    import importlib
    import pkgutil

    from tools import harness_outputs

    for module in pkgutil.iter_modules(harness_outputs.__path__):
        importlib.import_module(f"tools.harness_outputs.{module.name}")


def _default_outputs(r: RecordedResource) -> dict[str, Any]:
    if isinstance(r.inputs.get("arn"), str):
        return {}  # an `arn` input (e.g. TopicPolicy's topic) is what the engine echoes back
    kind = r.type.rsplit(":", 1)[-1]
    kind = kind[:1].lower() + kind[1:]
    return {"arn": _arn(r, kind, _physical_name(r))}


# Invoke token -> its result, for invokes beyond the built-in ones below; a module of
# tools/harness_outputs/ registers them with `@register_call("aws:...")`.
CALL_OUTPUTS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {}
CallFunction = Callable[[Mapping[str, Any]], dict[str, Any]]


def register_call(token: str) -> Callable[[CallFunction], CallFunction]:
    """Decorator: `fn(args)` answers the invoke `token` as the provider would."""
    def add(fn: CallFunction) -> CallFunction:
        if token in CALL_OUTPUTS and CALL_OUTPUTS[token] is not fn:
            raise ValueError(f"invoke {token} registered twice")
        CALL_OUTPUTS[token] = fn
        return fn
    return add


# What the engine's reads answer offline: a stack reference has no outputs we could know.
STACK_REFERENCE = "pulumi:pulumi:StackReference"


def _read_outputs(type_: str, name: str, resource_id: str, inputs: Mapping[str, Any],
                  unknown_outputs: bool = False) -> tuple[str, dict[str, Any]]:
    """`Resource.get(...)` and `StackReference(...)` reads: the id and the state read. A stack
    reference's outputs live in another stack: none (or, `unknown_outputs`, unknown)."""
    if type_ == STACK_REFERENCE:
        stack_name = str(inputs.get("name") or resource_id or name)
        return stack_name, {"name": stack_name, "outputs": UNKNOWN if unknown_outputs else {},
                            "secretOutputNames": []}
    return resource_id or name, dict(inputs)


def _hosted_zone_name(config: Mapping[str, Any]) -> str:
    """A realistic name for the stack's hosted zone: the parent of its device domain."""
    domain = next((str(v) for k, v in config.items() if k.endswith(":deviceDomain")), "")
    _, _, parent = domain.rstrip(".").partition(".")
    return parent or "example.com"


def _call_outputs(token: str, args: Mapping[str, Any],
                  config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a data source (invoke) returns; `config` is the evaluated stack's config."""
    region = args.get("region") or "us-east-1"
    if token in CALL_OUTPUTS:
        return CALL_OUTPUTS[token](args)
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": ACCOUNT_ID, "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/offline",
                "userId": "AIDAOFFLINE", "id": ACCOUNT_ID}
    if token == "aws:index/getPartition:getPartition":
        return {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION,
                "reverseDnsPrefix": "com.amazonaws"}
    if token == "aws:index/getRegion:getRegion":
        return {"name": region, "region": region, "id": region,
                "endpoint": f"ec2.{region}.amazonaws.com", "description": region}
    if token == "aws:iot/getEndpoint:getEndpoint":
        endpoint_type = str(args.get("endpointType", "iot:Data-ATS"))
        prefix = _digest(ACCOUNT_ID, length=14)
        suffix = "-ats" if endpoint_type.endswith("-ATS") else ""
        return {"endpointAddress": f"{prefix}{suffix}.iot.{region}.amazonaws.com",
                "id": f"{region}-{endpoint_type}"}
    if token == "aws:route53/getZone:getZone":
        zone_id = str(args.get("zoneId") or "Z" + _digest(str(args.get("name")), length=20).upper())
        name = str(args.get("name") or _hosted_zone_name(config or {})).rstrip(".")
        return {"zoneId": zone_id, "id": zone_id, "name": name, "arn":
                f"arn:{PARTITION}:route53:::hostedzone/{zone_id}", "privateZone": False,
                "resourceRecordSetCount": 2, "callerReference": zone_id, "comment": "",
                "nameServers": [f"ns-1.awsdns-00.{tld}" for tld in ("com", "net", "org", "co.uk")],
                "primaryNameServer": "ns-1.awsdns-00.com", "tags": {}}
    return {}


# --- mocks --------------------------------------------------------------------------------

def _comparable(value: Any) -> Any:
    """Recorded inputs as plain data: Pulumi assets/archives compare by identity, so they are
    recorded as `{"<kind>": <path, text, uri or members>}` (two evaluations then compare equal)."""
    import pulumi

    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, pulumi.FileArchive):
        return {"fileArchive": value.path}
    if isinstance(value, pulumi.FileAsset):
        return {"fileAsset": value.path}
    if isinstance(value, pulumi.StringAsset):
        return {"stringAsset": value.text}
    if isinstance(value, (pulumi.RemoteArchive, pulumi.RemoteAsset)):
        return {type(value).__name__[:1].lower() + type(value).__name__[1:]: value.uri}
    if isinstance(value, pulumi.AssetArchive):
        return {"assetArchive": {k: _comparable(v) for k, v in value.assets.items()}}
    from tools.pulumi_internals import is_unknown

    if is_unknown(value):
        return UNKNOWN  # the engine's sentinel for a value known only after the update
    return value


def _new_recorder(config: Mapping[str, Any], invoke_answers: Mapping[str, Mapping[str, Any]],
                  preview: bool = False,
                  unknown_uncomputed: bool = False) -> tuple[Any, list[RecordedResource]]:
    import pulumi

    from tools.pulumi_internals import (
        MonitorBase,
        deserialize_inputs,
        ensure_event_loop,
        register_response,
        registered,
        stack_response,
    )

    recorded: list[RecordedResource] = []
    provider_regions: dict[str, str] = {}  # explicit provider URN -> its `region` input

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
            # Registrations are answered by RecordingMonitor (which also sees the parent);
            # only reads (`X.get(...)`, StackReference) reach here.
            return _read_outputs(args.typ, args.name, args.resource_id or "", args.inputs,
                                 unknown_uncomputed)

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
            return {**_call_outputs(args.token, args.args, config),
                    **invoke_answers.get(args.token, {})}

    class RecordingMonitor(MonitorBase):
        def make_urn(self, parent: str, type_: str, name: str, stack: str = "",
                     project: str = "") -> str:
            """The engine's URN: the parent's whole qualified type chain (minus the root
            stack) precedes the type, so re-parenting a component changes the URNs of
            everything below it, as it would in a real `pulumi up`. (Pulumi's MockMonitor
            keeps only the parent's last type, which hides such moves.)"""
            if parent:
                qualified = parent.split("::")[2]
                if qualified != "pulumi:pulumi:Stack":
                    type_ = f"{qualified}${type_}"
            return (f"urn:pulumi:{stack or pulumi.get_stack()}::"
                    f"{project or pulumi.get_project()}::{type_}::{name}")

        def alias_urns(self, request: Any) -> tuple[str, ...]:
            """The `aliases` option as URNs, the way the engine resolves alias specs."""
            urns = []
            for alias in request.aliases:
                if alias.urn:
                    urns.append(alias.urn)
                    continue
                spec = alias.spec
                parent = "" if spec.noParent else (spec.parentUrn or request.parent)
                urns.append(self.make_urn(parent, spec.type or request.type,
                                          spec.name or request.name, spec.stack, spec.project))
            return tuple(urns)

        def RegisterResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == "pulumi:pulumi:Stack":
                return stack_response(urn)
            ensure_event_loop()
            inputs = deserialize_inputs(request)
            if request.type.startswith("pulumi:providers:") and isinstance(
                    inputs.get("region"), str):
                provider_regions[urn] = inputs["region"]
            # A provider reference is "<provider urn>::<provider id>".
            provider_urn = (request.provider or "").rsplit("::", 1)[0]
            draft = RecordedResource(
                type=request.type, name=request.name, urn=urn, inputs=_comparable(inputs),
                parent_urn=request.parent or None, custom=bool(request.custom),
                provider=request.provider or None, aliases=self.alias_urns(request),
                provider_region=provider_regions.get(provider_urn),
                options={"deleteBeforeReplace": bool(request.deleteBeforeReplace),
                         "retainOnDelete": bool(request.retainOnDelete),
                         "ignoreChanges": list(request.ignoreChanges),
                         "importId": request.importId, "protect": bool(request.protect),
                         "replaceOnChanges": list(request.replaceOnChanges)})
            if draft.custom:
                computed = COMPUTED_OUTPUTS.get(draft.type, _default_outputs)(draft)
                resource_id = request.importId or f"{request.name}-{_digest(urn, length=8)}"
            else:
                computed, resource_id = {}, ""
            if preview and draft.custom and not request.importId:
                # A create during preview: the provider answers with the inputs; every
                # computed output (and the id) stays unknown until the update.
                unknown = {k: UNKNOWN for k in computed if k not in draft.inputs}
                recorded.append(dataclasses.replace(
                    draft, id=UNKNOWN, outputs={**draft.inputs, **unknown}))
                state, resource_id = dict(inputs), ""
            else:
                recorded.append(dataclasses.replace(
                    draft, id=resource_id, outputs={**draft.inputs, **computed}))
                state = {**inputs, **computed}
            registered(self, urn, resource_id, state)
            return register_response(urn, resource_id, state)

    mocks = RecordingMocks()
    return RecordingMonitor(mocks), recorded


def _collecting_logger(sink: list[tuple[str, str]]) -> logging.Logger:
    """A private logger that keeps what the program logged through pulumi.log."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sink.append((record.levelname, record.getMessage()))

    logger = logging.Logger("pulumi-offline", level=logging.INFO)
    logger.propagate = False
    logger.addHandler(Collect())
    return logger


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# The program reads its stack config from PULUMI_CONFIG, as the Pulumi language host hands it
# over; the process has one environment, so evaluations take turns.
_CONFIG_ENV_LOCK = threading.RLock()
CONFIG_ENV = "PULUMI_CONFIG"


@contextlib.contextmanager
def _stack_config_env(config: Mapping[str, str]) -> Iterator[None]:
    with _CONFIG_ENV_LOCK:
        before = os.environ.get(CONFIG_ENV)
        os.environ[CONFIG_ENV] = json.dumps(dict(config))
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = before


def _evaluate_in_context(program: Callable[[], None], project: str, stack: str,
                         config: Mapping[str, Any],
                         invoke_answers: Mapping[str, Mapping[str, Any]],
                         preview: bool = False, unknown_uncomputed: bool = False) -> StackGraph:
    import pulumi

    from tools.pulumi_internals import run_program, stack_exports

    monitor, recorded = _new_recorder(config, invoke_answers, preview, unknown_uncomputed)
    diagnostics: list[tuple[str, str]] = []
    logger = _collecting_logger(diagnostics)
    texts = {k: _config_text(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(texts)  # what pulumi.Config reads
    # `unknown_uncomputed`: the SDK's dry-run rules make an output the mocks did not answer
    # (and a stack reference's outputs) unknown instead of None, while every output the
    # harness computes stays known; inputs derived from such a value are recorded UNKNOWN.
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack,
                             preview=preview or unknown_uncomputed, monitor=monitor, logger=logger)
    root = pulumi.runtime.get_root_resource()

    with _stack_config_env(texts):
        try:
            run_program(program)
        except Exception as error:
            partial = StackGraph(project=project, stack=stack, resources=list(recorded),
                                 diagnostics=diagnostics, preview=preview)
            raise ProgramFailed(error, partial) from error
    exports = stack_exports(root)
    return StackGraph(project=project, stack=stack, resources=list(recorded), outputs=exports,
                      diagnostics=diagnostics, preview=preview)


def evaluate(program: Callable[[], None], *, config: Mapping[str, Any] | None = None,
             project: str = "project", stack: str = "test",
             invoke_answers: Mapping[str, Mapping[str, Any]] | None = None,
             preview: bool = False, unknown_uncomputed: bool = False) -> StackGraph:
    """Run `program` (a function declaring resources) under recording mocks.

    `config` keys are full Pulumi keys (`project:key`); non-string values are JSON-encoded
    the way the CLI passes structured config. `invoke_answers` replaces fields of what a
    data source returns, by token (e.g. another hosted zone name for
    `aws:route53/getZone:getZone`). `preview=True` evaluates as `pulumi preview` of a first
    deployment does (computed outputs unknown). `unknown_uncomputed=True` (the policy
    runner's mode) keeps what the harness cannot compute unknown rather than None: outputs it
    has no formula for and stack references' outputs.
    """
    context = contextvars.Context()
    # Without the cyclic garbage collector: the SDK's futures and resource objects all live
    # until the graph is recorded, and each full collection walked them again. Measured on the
    # 20-region stack: 18.6 s of CPU with the collector, 10.4 s paused here (the first
    # collection after it walks them once), 8.9 s in a forked child; 16 MB more memory.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return context.run(_evaluate_in_context, program, project, stack, dict(config or {}),
                           dict(invoke_answers or {}), preview, unknown_uncomputed)
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class ProgramStack:
    directory: Path
    project: str
    stack: str
    config: dict[str, Any]
    # Full keys of `secure:` (encrypted) values: offline evaluation cannot decrypt them, so
    # they are left out of `config` and must be overridden or dropped to evaluate.
    secure_keys: tuple[str, ...] = ()


class StackFileError(ValueError):
    """A program or stack file that cannot be read; one line naming the file and the fix."""


def _stack_names(directory: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))


def _yaml_mapping(path: Path, what: str, fix: str) -> dict[str, Any]:
    """`path` parsed as a YAML mapping, or one StackFileError line."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise StackFileError(f"{path}: not valid YAML{where} ({problem}); {fix}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StackFileError(f"{path}: cannot be read ({error}); {fix}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        raise StackFileError(f"{path}: holds {kind} at the top level, but {what} is a mapping; "
                             f"{fix}")
    return document


def load_program_stack(program_dir: Path | str, stack: str) -> ProgramStack:
    """Read `Pulumi.yaml` and `Pulumi.<stack>.yaml` of a program directory.

    Every problem with these files is a `StackFileError` (a ValueError) whose message is
    one line naming the file and the fix.
    """
    directory = Path(program_dir).resolve()
    project_file = directory / "Pulumi.yaml"
    stack_file = directory / f"Pulumi.{stack}.yaml"
    if not project_file.is_file():
        raise StackFileError(f"{project_file} not found: not a Pulumi program directory; pass "
                             "the directory that holds Pulumi.yaml")
    if not stack_file.is_file():
        existing = _stack_names(directory)
        template = f"Pulumi.{existing[0]}.yaml" if existing else None
        create = (f"copy {template} to {stack_file.name} and edit it" if template
                  else f"write {stack_file.name} with a `config:` mapping")
        known = f"; existing stacks: {', '.join(existing)}" if existing else ""
        raise StackFileError(f"{stack_file} not found: no stack named {stack!r}; to create it, "
                             f"{create} (or `pulumi stack init {stack}` and "
                             f"`pulumi config set ...`, see README){known}")
    project = _yaml_mapping(project_file, "a Pulumi project file",
                            "fix the file (it needs at least `name:` and `runtime:`)").get("name")
    if not isinstance(project, str) or not project:
        raise StackFileError(f"{project_file}: no project `name:`; add `name: <project>`")
    stack_fix = (f"fix the file: it holds `config:`, a mapping of `{project}:<key>: <value>` "
                 "lines (see Pulumi.dev.yaml)")
    stack_doc = _yaml_mapping(stack_file, "a stack file", stack_fix)
    raw_config = stack_doc.get("config") or {}
    if not isinstance(raw_config, dict):
        raise StackFileError(f"{stack_file}: `config:` holds {type(raw_config).__name__} "
                             f"{raw_config!r}, not a mapping; {stack_fix}")
    config: dict[str, Any] = {}
    secure: list[str] = []
    for key, value in raw_config.items():
        full_key = key if ":" in str(key) else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure.append(full_key)
        else:
            config[full_key] = value
    return ProgramStack(directory, project, stack, config, tuple(secure))


def secure_value_error(spec: ProgramStack, full_key: str) -> StackFileError:
    short = full_key.removeprefix(f"{spec.project}:")
    return StackFileError(
        f"{spec.directory / f'Pulumi.{spec.stack}.yaml'}: {full_key} is an encrypted (secure) "
        "value, which offline evaluation cannot decrypt; keep secrets out of stack config, or "
        f"give a stand-in for offline runs (tools.plan: --set {short}=<value>)")


@contextlib.contextmanager
def _program_imports(directory: Path) -> Iterator[None]:
    """Import the program's own modules fresh, and forget them afterwards."""
    before = set(sys.modules)
    old_cwd = os.getcwd()
    sys.path.insert(0, str(directory))
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path.remove(str(directory))
        forgotten = {}
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            # Installed packages may sit inside the program directory (./venv): keep them, a
            # provider SDK must be imported once per process.
            if module_file.startswith(str(directory) + os.sep) and "site-packages" not in module_file:
                forgotten[name] = sys.modules.pop(name)
        # A package that stays (imported before, e.g. `components` by this module) still names
        # the forgotten submodules as attributes, and `from components import jitr` would
        # hand the next evaluation the old module: forget those names too.
        for name, module in forgotten.items():
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], child, None) is module:
                delattr(sys.modules[parent], child)


def evaluate_program(program_dir: Path | str, stack: str, *,
                     config_overrides: Mapping[str, Any] | None = None,
                     drop_keys: tuple[str, ...] = (),
                     invoke_answers: Mapping[str, Mapping[str, Any]] | None = None,
                     preview: bool = False, unknown_uncomputed: bool = False) -> StackGraph:
    """Evaluate a program directory's `__main__.py` for one of its stacks.

    `config_overrides` and `drop_keys` take short (`regions`) or full (`proj:regions`) keys;
    `invoke_answers` as for `evaluate`.
    """
    spec = load_program_stack(program_dir, stack)
    config = dict(spec.config)

    def full(key: str) -> str:
        return key if ":" in key else f"{spec.project}:{key}"

    for key in drop_keys:
        config.pop(full(key), None)
    for key, value in (config_overrides or {}).items():
        config[full(key)] = value
    replaced = {full(k) for k in (*drop_keys, *(config_overrides or {}))}
    for key in spec.secure_keys:
        if key not in replaced:
            raise secure_value_error(spec, key)
    main = spec.directory / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    with _program_imports(spec.directory), _lambda_layer_env(spec.directory):
        return evaluate(program, config=config, project=spec.project, stack=stack,
                        invoke_answers=invoke_answers, preview=preview,
                        unknown_uncomputed=unknown_uncomputed)


LAYER_ENV = "IOTMR_LAMBDA_LAYER_ZIP"


def offline_layer_stand_in() -> Path:
    """A deterministic zip standing in for the dependencies layer when it has not been built
    (`python -m tools.package_lambda`): the shared contracts only, no third-party packages.
    Named by its content, so checkouts with different contracts never share one file."""
    import hashlib
    import tempfile

    from components.packaging import contracts_only_layer

    data = contracts_only_layer()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"iotmr-offline-layer-stand-in-{digest}.zip"
    if not path.is_file() or path.read_bytes() != data:
        # Atomically: parallel test workers may hash it while another one writes it.
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def built_layer(directory: Path | str) -> Path | None:
    """The dependencies layer the evaluation of `directory` uses, if one was built (None:
    the stand-in is used, and `pulumi up` would refuse to run)."""
    if os.environ.get(LAYER_ENV):
        return Path(os.environ[LAYER_ENV])
    built = Path(directory) / "build" / "lambda" / "dependencies-layer.zip"
    return built if built.is_file() else None


WEB_BUNDLE_ENV = "IOTMR_WEB_BUNDLE_DIR"


def offline_web_bundle_stand_in() -> Path:
    """A tiny, deterministic stand-in for the installer web app's build (`python -m
    tools.build_web`): evaluation needs its files, not their content."""
    import tempfile

    from components.installer_web.bundle import BUNDLE_FILES

    directory = Path(tempfile.gettempdir()) / "iotmr-offline-web-stand-in"
    for key in BUNDLE_FILES:
        path = directory / key
        data = f"stand-in for {key}\n".encode()
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial.write_bytes(data)
            partial.replace(path)
    return directory


def built_web_bundle(directory: Path | str) -> Path | None:
    """The installer web app's build the evaluation of `directory` uses, if built."""
    if os.environ.get(WEB_BUNDLE_ENV):
        return Path(os.environ[WEB_BUNDLE_ENV])
    built = Path(directory) / "build" / "web" / "installer"
    return built if (built / "index.html").is_file() else None


@contextlib.contextmanager
def _lambda_layer_env(directory: Path) -> Iterator[None]:
    """Point the program at the built layer and web bundle, or at stand-ins when not built."""
    added = {}
    if not os.environ.get(LAYER_ENV):
        added[LAYER_ENV] = str(built_layer(directory) or offline_layer_stand_in())
    if not os.environ.get(WEB_BUNDLE_ENV):
        added[WEB_BUNDLE_ENV] = str(built_web_bundle(directory) or offline_web_bundle_stand_in())
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


_load_output_modules()
