"""The `shadowReplication` section of the stack config: the fleet's *declared* organisation,
the same in every region (components/shadow_replication/README.md, "Device organisation").

    iot-multi-region:shadowReplication:
      thingTypes:
        - name: gateway
          description: Field gateways        # optional
          searchableAttributes: [site]       # at most 3 (CreateThingType)
      thingGroups:
        - name: fleet
        - name: floor-1
          parent: fleet                      # declared earlier in the list
          policy:                            # optional IoT policy attached to the group
            Version: "2012-10-17"
            Statement:                       # resources relative to the region's IoT ARN
              - Effect: Allow                # (topic/..., topicfilter/...): the stack
                Action: [iot:Receive]        # writes arn:<partition>:iot:<region>:<account>:
                Resource: [topic/grp/iotmr/floor-1/*]

Why declared, not replicated: AWS IoT publishes no registry event when a policy is attached
to a group (registry events cover things, types, groups and memberships, not policies), and
a group or type must exist before a thing can join or use it. Declaring them in every region
makes group policies identical everywhere and lets the policy pack judge each one (least
privilege, device isolation) like the device policy. Memberships, attributes and a thing's
type are runtime data: those are replicated (lambdas/shadow_replication/organisation.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.context import ReportProblem
from lambdas.contracts.things import ATTRIBUTE_NAME_PATTERN, NAME_PATTERN

# CreateThingType / CreateThingGroup: names 1-128 of [a-zA-Z0-9:_-]; a thing type has at
# most 3 searchable attributes; descriptions up to 2028 characters of [\p{Graph}\x20]*.
MAX_SEARCHABLE_ATTRIBUTES = 3
MAX_DESCRIPTION = 2028
# Static thing groups: a hierarchy is at most 7 levels deep (AWS IoT Device Management
# quotas, "Maximum depth of a thing group hierarchy").
MAX_GROUP_DEPTH = 7
# What an IoT policy's resources name (AWS IoT Core policy actions and resources).
RELATIVE_KINDS = ("client", "topic", "topicfilter", "thing")


def regional_policy(policy: Mapping[str, Any], arn_prefix: str) -> dict[str, Any]:
    """The policy with each relative resource under `arn:<partition>:iot:<region>:<account>`."""
    statements = []
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        statements.append({**statement, "Resource": [f"{arn_prefix}:{r}" for r in resources]})
    return {**policy, "Statement": statements}


@dataclass(frozen=True)
class ThingTypeSpec:
    name: str
    description: str = ""
    searchable_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ThingGroupSpec:
    name: str
    parent: str | None = None
    description: str = ""
    policy: Mapping[str, Any] | None = None  # an IoT policy document attached to the group


@dataclass(frozen=True)
class FleetOrganisation:
    thing_types: tuple[ThingTypeSpec, ...] = ()
    thing_groups: tuple[ThingGroupSpec, ...] = field(default_factory=tuple)


def _description(value: Any, where: str, report: ReportProblem) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        report(where, f"must be text of at most {MAX_DESCRIPTION} characters")
        return ""
    return value


def _entries(raw: Mapping[str, Any], key: str, report: ReportProblem) -> list[Mapping[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        report(key, "must be a list of objects with a name")
        return []
    found = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping):
            report(f"{key}[{index}]", "must be an object with a name (or a name)")
            continue
        found.append(entry)
    return found


def _name(entry: Mapping[str, Any], where: str, seen: set[str], report: ReportProblem) -> str | None:
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        report(f"{where}.name", f"must be 1-128 of [a-zA-Z0-9:_-], got {name!r}")
        return None
    if name in seen:
        report(f"{where}.name", f"{name!r} is declared twice; keep one")
        return None
    seen.add(name)
    return name


def parse_settings(raw: Any, report: ReportProblem) -> FleetOrganisation:
    if raw is None:
        return FleetOrganisation()
    if not isinstance(raw, Mapping):
        report("", "must be an object with thingTypes and/or thingGroups")
        return FleetOrganisation()
    for unknown in sorted(set(raw) - {"thingTypes", "thingGroups"}):
        report(str(unknown), "is not a setting; use thingTypes or thingGroups")
    types: list[ThingTypeSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(_entries(raw, "thingTypes", report)):
        where = f"thingTypes[{index}]"
        for unknown in sorted(set(entry) - {"name", "description", "searchableAttributes"}):
            report(f"{where}.{unknown}", "is not a field; use name, description, "
                                         "searchableAttributes")
        name = _name(entry, where, seen, report)
        searchable = entry.get("searchableAttributes") or []
        if not isinstance(searchable, list) or len(searchable) > MAX_SEARCHABLE_ATTRIBUTES or \
                not all(isinstance(a, str) and ATTRIBUTE_NAME_PATTERN.fullmatch(a) for a in searchable):
            report(f"{where}.searchableAttributes",
                   f"must list at most {MAX_SEARCHABLE_ATTRIBUTES} attribute names of "
                   "[a-zA-Z0-9_.,@/:#-]")
            searchable = []
        description = _description(entry.get("description"), f"{where}.description", report)
        if name:
            types.append(ThingTypeSpec(name, description, tuple(searchable)))
    groups: list[ThingGroupSpec] = []
    depth: dict[str, int] = {}
    seen = set()
    for index, entry in enumerate(_entries(raw, "thingGroups", report)):
        where = f"thingGroups[{index}]"
        for unknown in sorted(set(entry) - {"name", "parent", "description", "policy"}):
            report(f"{where}.{unknown}", "is not a field; use name, parent, description, policy")
        name = _name(entry, where, seen, report)
        parent = entry.get("parent")
        if parent is not None and parent not in depth:
            report(f"{where}.parent", f"{parent!r} is not a group declared above this one; "
                                      "declare the parent first (a group's parent never changes)")
            parent = None
        level = depth[parent] + 1 if parent else 1
        if level > MAX_GROUP_DEPTH:
            report(f"{where}.parent", f"the hierarchy would be {level} deep; AWS IoT allows "
                                      f"{MAX_GROUP_DEPTH}")
        policy = entry.get("policy")
        if policy is not None and (not isinstance(policy, Mapping)
                                   or not isinstance(policy.get("Statement"), list)
                                   or policy.get("Version") != "2012-10-17"):
            report(f"{where}.policy", "must be an IoT policy document: Version '2012-10-17' "
                                      "and a Statement list")
            policy = None
        for number, statement in enumerate((policy or {}).get("Statement") or []):
            resources = statement.get("Resource") if isinstance(statement, Mapping) else None
            resources = [resources] if isinstance(resources, str) else resources
            if not isinstance(resources, list) or not resources or not all(
                    isinstance(r, str) and r.split("/", 1)[0] in RELATIVE_KINDS
                    for r in resources):
                report(f"{where}.policy.Statement[{number}].Resource",
                       f"must list resources relative to the region's IoT ARN, starting with "
                       f"one of {', '.join(RELATIVE_KINDS)} (the stack adds arn:...:iot:"
                       f"<region>:<account>: so the policy is the same in every region)")
                policy = None
        description = _description(entry.get("description"), f"{where}.description", report)
        if name:
            depth[name] = level
            groups.append(ThingGroupSpec(name, parent, description, policy))
    return FleetOrganisation(tuple(types), tuple(groups))
