"""Run the policy pack offline, the way the Pulumi engine would, without the Pulumi CLI.

    python -m tools.policy_check --stack dev [--program DIR] [--config policy-config.json] [--preview]

The program directory's `__main__.py` is evaluated for the stack under the recording mocks
(`tools.harness.evaluate_program`), as `pulumi up` sees it (every value known) or, with
`--preview`, as `pulumi preview` of a first deployment sees it (computed outputs, and every
input derived from one, unknown). Then every policy of `policy.pack.ALL_POLICIES` runs with
its enforcement level and config resolved as the engine resolves them:

* resource policies once per resource with `ResourceValidationArgs` (props = the recorded
  inputs after a protobuf round trip, so numbers arrive as floats and maps/lists as read-only
  proxies; opts with the parent; the provider resource, the default provider carrying the
  stack's `aws:*` config);
* stack policies once with `StackValidationArgs` over `PolicyResource`s whose props are the
  outputs (inputs + computed outputs + id), linked to their parent, dependencies and
  property dependencies (derived from the ids/ARNs of other resources found in the inputs).

The policy config file uses the CLI's `--policy-pack-config` format: `{"all": "advisory",
"<policy>": "disabled" | {"enforcementLevel": ..., "<property>": ...}}`; schema defaults are
applied and values are checked against each policy's `config_schema`.

A policy that reads an unknown value is reported as the engine reports it: with `--preview`,
an advisory "can't run policy ... during preview" diagnostic (listed apart as *not judged*;
the same policy judges the known value when it runs again during the update). As `up`, a
value still unknown is one offline evaluation cannot know (another stack's output, an output
the harness has no formula for): the policy is reported *not judged* at its own level, so a
mandatory one fails the run unless `--waive-unjudged POLICY[:NAME]` accepts it.

Violations print like the CLI; the exit code is 1 if any mandatory violation was reported,
2 if the program or a policy failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from inspect import isawaitable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from tools import harness
from tools.forked import ForkedCall
from tools.harness import RecordedResource, StackGraph
from tools.policy_sdk import (
    NotApplicableError,
    UnknownValueError,
    deserialize_properties,
    serialize_properties,
    set_stack_and_project,
    unknown_checking_proxy,
    unknown_error_message,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
POLICY_DIR = PROJECT_DIR / "policy"


class PolicyConfigError(ValueError):
    """The policy config file does not fit the pack's policies or their schemas."""


class PolicyFailed(RuntimeError):
    """A policy raised (a bug in the policy, or props it did not expect)."""


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    urn: str
    message: str
    description: str
    # False for the engine's "can't run policy ... during preview" diagnostic: the policy read
    # a value unknown until the update, so it judged nothing yet.
    judged: bool = True


@dataclass
class Report:
    stack: str
    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    resources: int = 0
    policies: int = 0
    preview: bool = False

    @property
    def not_judged(self) -> list[Violation]:
        """Policies that could not be judged at preview (they run again during the update)."""
        return [v for v in self.violations if not v.judged]

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == EnforcementLevel.MANDATORY]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == EnforcementLevel.ADVISORY]

    def policy_names(self, level: EnforcementLevel | None = None) -> set[str]:
        return {v.policy for v in self.violations if level is None or v.level == level}


# --- policy config --------------------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,),
}


def _check_schema(policy: str, key: str, value: Any, schema: Mapping[str, Any]) -> None:
    expected = schema.get("type")
    if isinstance(expected, str):
        ok = isinstance(value, _JSON_TYPES.get(expected, (object,)))
        if expected in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            raise PolicyConfigError(f"{policy}.{key}: expected {expected}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise PolicyConfigError(f"{policy}.{key}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        raise PolicyConfigError(f"{policy}.{key}: {value!r} is below {schema['minimum']}")
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for item in value:
            _check_schema(policy, f"{key}[]", item, items)


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(value)
    except ValueError:
        raise PolicyConfigError(f"{where}: {value!r} is not an enforcement level "
                                f"({', '.join(e.value for e in EnforcementLevel)})") from None


@dataclass(frozen=True)
class ResolvedPolicy:
    policy: Policy
    level: EnforcementLevel
    config: dict[str, Any]


def resolve_policies(policies: Sequence[Policy], raw: Mapping[str, Any] | None,
                     pack_level: EnforcementLevel = EnforcementLevel.MANDATORY) -> list[ResolvedPolicy]:
    """Each policy's effective enforcement level and config (schema defaults + file)."""
    if raw is not None and not isinstance(raw, Mapping):
        raise PolicyConfigError(f"policy config must be a JSON object of policy name -> level "
                                f"or {{level, ...}}, not {type(raw).__name__} {raw!r}")
    raw = dict(raw or {})
    by_name = {p.name: p for p in policies}
    unknown = sorted(set(raw) - set(by_name) - {"all"})
    if unknown:
        raise PolicyConfigError(f"policy config names unknown policies: {', '.join(unknown)}")
    all_level = _level(raw["all"], "all") if "all" in raw else None
    resolved = []
    for policy in policies:
        level = policy.enforcement_level or pack_level
        if all_level is not None:
            level = all_level
        entry = raw.get(policy.name)
        properties: dict[str, Any] = {}
        if isinstance(entry, str):
            level = _level(entry, policy.name)
        elif isinstance(entry, Mapping):
            for key, value in entry.items():
                if key == "enforcementLevel":
                    level = _level(value, f"{policy.name}.enforcementLevel")
                else:
                    properties[key] = value
        elif entry is not None:
            raise PolicyConfigError(f"{policy.name}: expected an enforcement level or an object")
        schema = policy.config_schema
        config: dict[str, Any] = {}
        if schema is not None:
            for key, prop_schema in schema.properties.items():
                if "default" in prop_schema:
                    config[key] = prop_schema["default"]
            extra = sorted(set(properties) - set(schema.properties))
            if extra:
                raise PolicyConfigError(f"{policy.name}: unknown config properties {extra}")
            for key, value in properties.items():
                _check_schema(policy.name, key, value, schema.properties[key])
            config.update(properties)
            missing = [k for k in (schema.required or []) if k not in config]
            if missing:
                raise PolicyConfigError(f"{policy.name}: missing required config {missing}")
        elif properties:
            raise PolicyConfigError(f"{policy.name}: takes no config, got {sorted(properties)}")
        resolved.append(ResolvedPolicy(policy, level, config))
    return resolved


# --- engine-shaped arguments ----------------------------------------------------------------

def wire_props(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a policy sees after the engine's gRPC hop: a protobuf Struct decoded by
    pulumi_policy (numbers become floats), wrapped in its unknown-checking proxy."""
    struct = struct_pb2.Struct()
    struct.update(serialize_properties(_jsonable(values)))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _jsonable(value: Any) -> Any:
    import pulumi

    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def _options(resource: RecordedResource) -> PolicyResourceOptions:
    """The options the engine hands a policy (as the program registered them)."""
    options = resource.options or {}
    return PolicyResourceOptions(protect=bool(options.get("protect")),
                                 ignore_changes=list(options.get("ignoreChanges") or []),
                                 delete_before_replace=options.get("deleteBeforeReplace"),
                                 aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=[], parent=resource.parent_urn)


def outputs_of(resource: RecordedResource) -> dict[str, Any]:
    """The resource's state as a stack policy sees it: inputs, computed outputs and id."""
    if not resource.custom:
        return dict(resource.inputs)
    return {**resource.outputs, "id": resource.id}


class _Providers:
    """Explicit provider resources by URN, and a default provider per package."""

    def __init__(self, graph: StackGraph, stack_config: Mapping[str, Any]) -> None:
        self.graph = graph
        self.explicit = {r.urn: r for r in graph.resources if r.type.startswith("pulumi:providers:")}
        self.defaults: dict[str, PolicyResource] = {}
        self.config = stack_config

    def _default(self, package: str) -> PolicyResource:
        if package not in self.defaults:
            props: dict[str, Any] = {}
            for key, value in self.config.items():
                if key.startswith(f"{package}:"):
                    # The engine hands a default provider its config values as text (lists and
                    # maps as JSON), the way an explicit provider receives them too.
                    props[key.split(":", 1)[1]] = value if isinstance(value, str) else json.dumps(value)
            name = f"default_{_package_version(package)}"
            urn = f"urn:pulumi:{self.graph.stack}::{self.graph.project}::pulumi:providers:{package}::{name}"
            self.defaults[package] = PolicyResource(
                f"pulumi:providers:{package}", wire_props(props), urn, name,
                PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                None, None, [], {})
        return self.defaults[package]

    def for_resource(self, resource: RecordedResource) -> PolicyResource | None:
        if not resource.custom or resource.type.startswith("pulumi:providers:"):
            return None
        if resource.provider:
            # A provider reference is "<provider urn>::<provider id>".
            explicit = self.explicit.get(resource.provider.rsplit("::", 1)[0])
            if explicit is not None:
                return PolicyResource(explicit.type, wire_props(explicit.inputs), explicit.urn,
                                      explicit.name, _options(explicit), None, None, [], {})
        return self._default(resource.type.split(":", 1)[0])


def _package_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(f"pulumi-{package}").replace(".", "_")
    except PackageNotFoundError:
        return "0_0_0"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def derive_dependencies(graph: StackGraph) -> dict[str, dict[str, list[str]]]:
    """urn -> {input key: [urns of resources whose id/ARN/URL appears in that input]}.

    The harness does not record dependencies, so they are rebuilt from the values the
    program passed: an input that carries another resource's id or ARN depends on it."""
    identifiers: dict[str, str] = {}
    for r in graph.custom_resources():
        out = outputs_of(r)
        for key in ("arn", "id", "url", "streamArn"):
            value = out.get(key)
            if isinstance(value, str) and len(value) >= 8 and value != harness.UNKNOWN:
                identifiers[value] = r.urn
    # An identifier is found as the whole value, or (20 characters or more: an ARN, a URL)
    # inside a longer one, such as a policy document.
    order = {ident: index for index, ident in enumerate(identifiers)}
    long_identifiers = [ident for ident in identifiers if len(ident) >= 20]

    @functools.cache
    def owners(text: str) -> tuple[str, ...]:
        # The same values recur across resources (ARNs, region names, tags): scan each once.
        matched = {ident for ident in long_identifiers if ident in text}
        if text in identifiers:
            matched.add(text)
        return tuple(identifiers[ident] for ident in sorted(matched, key=order.__getitem__))

    result: dict[str, dict[str, list[str]]] = {}
    for r in graph.resources:
        per_key: dict[str, list[str]] = {}
        for key, value in r.inputs.items():
            found: list[str] = []
            for text in _strings(value):
                for urn in owners(text):
                    if urn != r.urn and urn not in found:
                        found.append(urn)
            if found:
                per_key[key] = found
        result[r.urn] = per_key
    return result


def stack_resources(graph: StackGraph, providers: _Providers) -> list[PolicyResource]:
    stack_urn = f"urn:pulumi:{graph.stack}::{graph.project}::pulumi:pulumi:Stack::{graph.project}-{graph.stack}"
    root = PolicyResource("pulumi:pulumi:Stack", wire_props({}), stack_urn,
                          f"{graph.project}-{graph.stack}",
                          PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                          None, None, [], {})
    by_urn: dict[str, PolicyResource] = {stack_urn: root}
    for r in graph.resources:
        by_urn[r.urn] = PolicyResource(r.type, wire_props(outputs_of(r)), r.urn, r.name, _options(r),
                                       _provider_info(providers.for_resource(r)), None, [], {})
    dependencies = derive_dependencies(graph)
    for r in graph.resources:
        resource = by_urn[r.urn]
        resource.parent = by_urn.get(r.parent_urn or stack_urn, root)
        for key, urns in dependencies.get(r.urn, {}).items():
            deps = [by_urn[u] for u in urns if u in by_urn]
            resource.property_dependencies[key] = deps
            for dep in deps:
                if dep not in resource.dependencies:
                    resource.dependencies.append(dep)
    return [root, *providers.defaults.values(), *(by_urn[r.urn] for r in graph.resources)]


# --- running --------------------------------------------------------------------------------

def _await(result: Any) -> None:
    if isawaitable(result):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(result)
        finally:
            loop.close()


def _waived(waivers: Sequence[str], policy: str, urn: str) -> bool:
    """`policy` waives it everywhere, `policy:<logical name>` on one resource."""
    name = urn.rsplit("::", 1)[-1] if urn else ""
    return any(w == policy or w == f"{policy}:{name}" for w in waivers)


def _run(graph: StackGraph, resolved: Sequence[ResolvedPolicy], stack_config: Mapping[str, Any],
         stack_tags: Mapping[str, str], waivers: Sequence[str] = ()) -> Report:
    # What `_configure_runtime_settings` does in the analyzer: policies may ask for the stack.
    set_stack_and_project(graph.stack, graph.project)
    report = Report(stack=graph.stack, resources=len(graph.resources),
                    policies=sum(1 for r in resolved if r.level != EnforcementLevel.DISABLED),
                    preview=graph.preview)
    from policy.pack import PACK_NAME

    pack = f"{PACK_NAME}@v{pack_version()}"
    providers = _Providers(graph, stack_config)

    def reporter(item: ResolvedPolicy, default_urn: str) -> Any:
        def report_violation(message: str, urn: str | None = None) -> None:
            text = item.policy.description + (f"\n{message}" if message else "")
            report.violations.append(Violation(item.policy.name, item.level, urn or default_urn,
                                               text, item.policy.description))
        return report_violation

    def guarded(item: ResolvedPolicy, call: Any, where: str, urn: str) -> None:
        try:
            _await(call())
        except UnknownValueError as error:
            if graph.preview:
                # What the analyzer answers (advisory, whatever the policy's level); the engine
                # attributes a resource policy's diagnostic to the analyzed resource. The same
                # policy runs again during the update, when the value is known.
                report.violations.append(Violation(
                    item.policy.name, EnforcementLevel.ADVISORY, urn,
                    f"can't run policy '{item.policy.name}' from policy pack '{pack}' during "
                    f"preview: {unknown_error_message(error)}", item.policy.description,
                    judged=False))
                return
            # As `pulumi up` sees it, a value still unknown is one the offline evaluation
            # cannot know (another stack's output, an output the harness does not compute):
            # the policy judged nothing, which never passes silently. It keeps its level
            # unless the run waives it explicitly (--waive-unjudged).
            waived = _waived(waivers, item.policy.name, urn)
            report.violations.append(Violation(
                item.policy.name, EnforcementLevel.ADVISORY if waived else item.level, urn,
                f"not judged offline{' (waived)' if waived else ''}: "
                f"{unknown_error_message(error).replace(' during preview', ' offline')} (an "
                "output of another stack or one the offline harness does not compute; judge it "
                "with `pulumi preview --policy-pack policy`, or waive it with --waive-unjudged "
                f"{item.policy.name})", item.policy.description, judged=False))
        except NotApplicableError as error:
            report.not_applicable.append((item.policy.name, error.reason or ""))
        except Exception as error:  # the analyzer would fail the whole update too
            raise PolicyFailed(f"policy {item.policy.name} failed on {where}: "
                               f"{type(error).__name__}: {error}") from error

    active = [r for r in resolved if r.level != EnforcementLevel.DISABLED]
    # The engine sends each resource once and the props are read-only proxies: build them once
    # per resource (and the stack's resources once), not once per policy.
    wired = {r.urn: (wire_props(r.inputs), _options(r), _provider_info(providers.for_resource(r)))
             for r in graph.resources}
    stack_view: list[PolicyResource] | None = None
    for item in active:
        if item.level == EnforcementLevel.REMEDIATE:
            item = ResolvedPolicy(item.policy, EnforcementLevel.MANDATORY, item.config)
        policy = item.policy
        if isinstance(policy, ResourceValidationPolicy):
            for r in graph.resources:
                props, options, provider = wired[r.urn]
                args = ResourceValidationArgs(r.type, props, r.urn, r.name, options, provider,
                                              dict(item.config), stack_tags)
                guarded(item, lambda a=args, p=policy, i=item, u=r.urn: p.validate(a, reporter(i, u)),
                        r.urn, r.urn)
        elif isinstance(policy, StackValidationPolicy):
            if stack_view is None:
                stack_view = stack_resources(graph, providers)
            stack_args = StackValidationArgs(stack_view, dict(item.config), stack_tags)
            guarded(item, lambda a=stack_args, p=policy, i=item: p.validate(a, reporter(i, "")),
                    f"stack {graph.stack}", "")
    return report


def _provider_info(provider: PolicyResource | None) -> PolicyProviderResource | None:
    if provider is None:
        return None
    return PolicyProviderResource(provider.resource_type, provider.props, provider.urn, provider.name)


def run_policies(graph: StackGraph, *, policies: Sequence[Policy] | None = None,
                 policy_config: Mapping[str, Any] | None = None,
                 stack_config: Mapping[str, Any] | None = None,
                 stack_tags: Mapping[str, str] | None = None,
                 waivers: Sequence[str] = ()) -> Report:
    """Evaluate `policies` (default: the whole pack) against an evaluated stack."""
    if policies is None:
        from policy.pack import ALL_POLICIES

        policies = ALL_POLICIES
    resolved = resolve_policies(policies, policy_config)
    context = contextvars.Context()
    return context.run(_run, graph, resolved, dict(stack_config or {}), dict(stack_tags or {}),
                       tuple(waivers))


def forked_policy_run(graph: StackGraph, *, policy_config: Mapping[str, Any] | None = None,
                      stack_config: Mapping[str, Any] | None = None) -> ForkedCall[Report]:
    """`run_policies` (2 s of one core for a stack) in a forked child while this process goes
    on (the local run materialises the stack meanwhile); `.result()` waits for the report."""
    from policy.pack import ALL_POLICIES  # noqa: F401 (imported here, once, before the fork)

    return ForkedCall(lambda: run_policies(graph, policy_config=policy_config, stack_config=stack_config),
                      name="policy-check")


def check_program(program_dir: Path | str, stack: str, *,
                  policy_config: Mapping[str, Any] | None = None,
                  preview: bool = False, waivers: Sequence[str] = ()) -> Report:
    """Evaluate a Pulumi Python program's stack (as `pulumi up`, or as `pulumi preview` of a
    first deployment) and run the pack on it. As `up`, whatever the offline evaluation cannot
    know stays unknown (not None), so a policy that needs it is reported "not judged"."""
    spec = harness.load_program_stack(program_dir, stack)
    graph = harness.evaluate_program(program_dir, stack, preview=preview, unknown_uncomputed=True)
    return run_policies(graph, policy_config=policy_config, stack_config=spec.config,
                        waivers=waivers)


def pack_version() -> str:
    doc = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    return str(doc.get("version", "0.0.1"))


def format_report(report: Report) -> str:
    from policy.pack import PACK_NAME

    lines = ["Policies:"]
    mark = "❌" if report.mandatory else ("⚠️" if report.violations else "✅")
    lines.append(f"    {mark} {PACK_NAME}@v{pack_version()} (local: policy)")
    order = {EnforcementLevel.MANDATORY: 0, EnforcementLevel.ADVISORY: 1}
    for v in sorted(report.violations, key=lambda v: (order.get(v.level, 2), v.policy, v.urn)):
        where = ""
        if v.urn:
            parts = v.urn.split("::")
            where = f"  ({parts[2].split('$')[-1]}: {parts[3]})" if len(parts) >= 4 else f"  ({v.urn})"
        lines.append(f"        - [{v.level.value}]  {v.policy}{where}")
        if v.urn:
            lines.append(f"          {v.urn}")
        for text in v.message.splitlines():
            lines.append(f"          {text}")
    judged_mandatory = sum(1 for v in report.mandatory if v.judged)
    judged_advisory = sum(1 for v in report.advisory if v.judged)
    when = "at preview" if report.preview else "offline"
    lines.append(f"Summary: stack {report.stack}{' (preview)' if report.preview else ''}: "
                 f"{judged_mandatory} mandatory, {judged_advisory} advisory violation(s), "
                 f"{len(report.not_judged)} not judged {when}; {report.policies} policies "
                 f"over {report.resources} resources")
    return "\n".join(lines)


def violation_lines(report: Report, level: EnforcementLevel | None = None) -> str:
    """One line per violation, `policy  type::name  first message line`: what to fix, where."""
    lines = []
    for v in sorted(report.violations, key=lambda v: (v.policy, v.urn)):
        if level is not None and v.level != level:
            continue
        where = "::".join(v.urn.split("::")[-2:]) if v.urn else "(stack)"
        detail = v.message.splitlines()[-1] if "\n" in v.message else v.message
        lines.append(f"{v.level.value:9} {v.policy:45} {where}  {detail}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--program", default=str(PROJECT_DIR), help="Pulumi program directory")
    parser.add_argument("--config", help="policy pack config JSON (the CLI's --policy-pack-config)")
    parser.add_argument("--preview", action="store_true",
                        help="evaluate as `pulumi preview` of a first deployment (computed "
                             "outputs unknown) instead of as `pulumi up`")
    parser.add_argument("--waive-unjudged", action="append", default=[], metavar="POLICY[:NAME]",
                        help="accept that POLICY (on every resource, or on the resource with "
                             "logical name NAME) cannot be judged offline because an input is "
                             "unknown; without it, such a mandatory policy fails the run")
    options = parser.parse_args(argv)
    try:
        policy_config = json.loads(Path(options.config).read_text()) if options.config else None
        report = check_program(options.program, options.stack, policy_config=policy_config,
                               preview=options.preview, waivers=options.waive_unjudged)
    except (PolicyConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the program or a policy raised: the engine would fail too
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    settings = Path(options.program) / "policy" / "config" / f"{options.stack}.json"
    if options.config is None and settings.is_file():
        # As `pulumi preview` without --policy-pack-config: the pack's defaults, not the stack's.
        print(f"note: no --config: the pack ran with its default settings, not this stack's "
              f"(--config {settings})", file=sys.stderr)
    return 1 if report.mandatory else 0


if __name__ == "__main__":
    sys.exit(main())


def check_props_plain(props: Any) -> Any:
    """Engine proxies back to plain data (to re-serialize what a policy was given); unknown
    values stay the engine's sentinels instead of raising."""
    return serialize_properties(props)
