"""Committed snapshots of the resource graph, and of the URNs of stateful resources.

The resource-graph snapshot (`tests/snapshots/<stack>.json`) records every resource of the
dev, prod and a 20-region stack: type, name, URN, parent, region and a digest of its
inputs. A refactor that is meant to change nothing must leave it identical.

The stateful-URN list (`tests/snapshots/stateful-urns.json`) holds the URNs of what
`pulumi up` must never replace: tables, KMS keys, CA registrations, domain configurations,
device policies. It only grows: a URN that disappears (a renamed or moved resource) fails
the test until it gets an `aliases` entry, or is forgotten on purpose (`--forget-stateful`).

Regenerate after an intended change (the lead, after merging a capability):

    venv/bin/python -m tests.support.snapshots
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from components.packaging import file_sha256_base64
from tools.harness import (
    StackGraph,
    built_layer,
    built_web_bundle,
    evaluate_program,
    offline_layer_stand_in,
    offline_web_bundle_stand_in,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
SNAPSHOT_DIR = PROJECT_DIR / "tests" / "snapshots"
STATEFUL_FILE = SNAPSHOT_DIR / "stateful-urns.json"
UPDATE_COMMAND = "venv/bin/python -m tests.support.snapshots"

# Written out, not derived from botocore, so a botocore upgrade cannot change the stack.
# Twenty IoT Core regions that also offer EventBridge Pipes (replication needs it: the
# config refuses ap-southeast-5 and il-central-1 with replication on).
TWENTY_REGIONS: tuple[str, ...] = (
    "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1",
    "ap-southeast-2", "ca-central-1", "eu-central-1", "eu-north-1", "eu-south-1",
    "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "me-central-1", "me-south-1",
    "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
)
TWENTY_REGION_OVERRIDES: dict[str, Any] = {"regions": list(TWENTY_REGIONS),
                                            "primaryRegion": "eu-west-1"}

# Resources whose replacement loses data or breaks devices: their URNs must never change.
STATEFUL_TYPES: frozenset[str] = frozenset({
    "aws:dynamodb/table:Table",
    "aws:kms/key:Key",
    "aws:kms/replicaKey:ReplicaKey",
    "aws:iot/caCertificate:CaCertificate",
    "aws:iot/domainConfiguration:DomainConfiguration",
    "aws:iot/policy:Policy",
    # Installers' accounts, their identities, and the batch salts device tokens derive from.
    "aws:cognito/userPool:UserPool",
    "aws:cognito/identityPool:IdentityPool",
    "aws:secretsmanager/secret:Secret",
    # Confirmed email subscriptions live on the topic: a new topic must be confirmed again.
    "aws:sns/topic:Topic",
    # An account singleton: replaced, it would be deleted (all checks off) and re-created.
    "aws-native:iot:AccountAuditConfiguration",
})

# name -> how to evaluate it
STACKS: dict[str, Callable[[], StackGraph]] = {
    "dev": lambda: evaluate_program(PROJECT_DIR, "dev"),
    "prod": lambda: evaluate_program(PROJECT_DIR, "prod"),
    "twenty-regions": lambda: evaluate_program(PROJECT_DIR, "dev",
                                               config_overrides=TWENTY_REGION_OVERRIDES),
}


def _machine_values() -> dict[str, str]:
    """Values that depend on this machine, not on the program: the clone's directory, the
    temp directory, and the dependencies layer (built here or the stand-in) and its hash."""
    layer = built_layer(PROJECT_DIR) or offline_layer_stand_in()
    web = built_web_bundle(PROJECT_DIR) or offline_web_bundle_stand_in()
    web_files = {hashlib.sha256(path.read_bytes()).hexdigest(): f"<web-hash:{path.name}>"
                 for path in sorted(web.rglob("*")) if path.is_file()}
    return {str(layer): "<layer>", file_sha256_base64(layer): "<layer-hash>", str(web): "<web>",
            **web_files, str(PROJECT_DIR): "<project>", tempfile.gettempdir(): "<tmp>"}


def _portable(value: Any, machine: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for actual, placeholder in machine.items():
            value = value.replace(actual, placeholder)
        return value
    if isinstance(value, Mapping):
        return {k: _portable(v, machine) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, machine) for v in value]
    return value


def inputs_digest(inputs: Mapping[str, Any], machine: Mapping[str, str]) -> str:
    canonical = json.dumps(_portable(inputs, machine), sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def graph_snapshot(graph: StackGraph) -> list[dict[str, Any]]:
    """One entry per resource, sorted by URN."""
    machine = _machine_values()
    return [
        {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent_urn,
         "region": r.region, "inputs": inputs_digest(r.inputs, machine)}
        for r in sorted(graph.resources, key=lambda r: r.urn)
    ]


def stateful_urns(graph: StackGraph) -> dict[str, str]:
    """URN -> type of every stateful resource."""
    return {r.urn: r.type for r in graph.resources if r.type in STATEFUL_TYPES}


def _qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def answered_urns(graph: StackGraph) -> dict[str, str]:
    """URN -> type of every URN the stack answers to in `pulumi up`: each resource's URN,
    its own aliases, and the aliases it inherits from aliased ancestors (the engine derives
    a child's old URN from its parent's alias, with the parent's name prefix swapped)."""
    by_urn = graph.by_urn()
    memo: dict[str, tuple[str, ...]] = {}

    def all_urns(urn: str) -> tuple[str, ...]:
        if urn in memo:
            return memo[urn]
        resource = by_urn[urn]
        found = [resource.urn, *resource.aliases]
        parent = by_urn.get(resource.parent_urn or "")
        if parent is not None:
            for parent_alias in all_urns(parent.urn)[1:]:
                parent_alias_name = parent_alias.rsplit("::", 1)[1]
                name = resource.name
                if name.startswith(parent.name):
                    name = parent_alias_name + name[len(parent.name):]
                stack, project = parent_alias.split("::")[0].split(":")[2], parent_alias.split("::")[1]
                found.append(f"urn:pulumi:{stack}::{project}::{_qualified_type(parent_alias)}"
                             f"${resource.type}::{name}")
        memo[urn] = tuple(dict.fromkeys(found))
        return memo[urn]

    return {u: r.type for r in graph.resources for u in all_urns(r.urn)}


def snapshot_path(stack: str) -> Path:
    return SNAPSHOT_DIR / f"{stack}.json"


def read_snapshot(stack: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(snapshot_path(stack).read_text())
    return data


def read_stateful() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(STATEFUL_FILE.read_text())
    return data


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def update(*, forget_stateful: bool = False) -> list[str]:
    """Rewrite every snapshot; stateful URNs are only added unless `forget_stateful`."""
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    stateful = {} if forget_stateful or not STATEFUL_FILE.is_file() else read_stateful()
    report = []
    for stack, evaluate in STACKS.items():
        graph = evaluate()
        _write_json(snapshot_path(stack), graph_snapshot(graph))
        kept = stateful.get(stack, {})
        stateful[stack] = {**kept, **stateful_urns(graph)}
        report.append(f"{snapshot_path(stack).relative_to(PROJECT_DIR)}: "
                      f"{len(graph.resources)} resources, {len(stateful[stack])} stateful")
    _write_json(STATEFUL_FILE, stateful)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.snapshots",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forget-stateful", action="store_true",
                        help="rebuild the stateful-URN list from scratch (only when a stateful "
                             "resource is meant to be replaced or deleted)")
    args = parser.parse_args(argv)
    for line in update(forget_stateful=args.forget_stateful):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
