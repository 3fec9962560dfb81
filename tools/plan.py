"""Offline plan: what a stack would create, per region and per component.

    python -m tools.plan dev [--program DIR] [--set key=value ...]

Evaluates the program under the recording mocks of `tools.harness`: no Pulumi CLI, no
provider plugin, no AWS call. It is a preview of the resource graph, not of a diff against
deployed state (everything is shown as a create).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import TextIO

from tools.harness import GLOBAL, ProgramFailed, RecordedResource, StackGraph, evaluate_program

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _label(resource: RecordedResource) -> str:
    replicas = resource.inputs.get("replicas") if resource.type == "aws:dynamodb/table:Table" else None
    suffix = f"  [global table, replicas: {', '.join(r['regionName'] for r in replicas)}]" \
        if replicas else ""
    return f"{resource.type}  {resource.name}{suffix}"


def render_plan(graph: StackGraph, out: TextIO) -> None:
    children: dict[str | None, list[RecordedResource]] = defaultdict(list)
    for resource in graph.resources:
        children[resource.parent_urn].append(resource)
    for siblings in children.values():
        siblings.sort(key=lambda r: (r.custom, r.type, r.name))

    regions_below: dict[str, set[str]] = {}

    def collect(resource: RecordedResource) -> set[str]:
        found = {resource.region} if resource.custom and resource.region else set()
        for child in children.get(resource.urn, []):
            found |= collect(child)
        regions_below[resource.urn] = found
        return found

    roots = [r for r in graph.resources if r.parent_urn not in {x.urn for x in graph.resources}]
    for root in roots:
        collect(root)

    counts = Counter(r.region or "?" for r in graph.custom_resources())
    primary = graph.outputs.get("primaryRegion")
    sections = sorted((r for r in counts if r != GLOBAL), key=lambda r: (r != primary, r))
    if GLOBAL in counts:
        sections.insert(0, GLOBAL)

    print(f"Offline plan for stack '{graph.stack}' of project '{graph.project}'", file=out)
    print("(evaluated under Pulumi mocks: no Pulumi CLI, no provider, no cloud; "
          "every resource is shown as a create)", file=out)

    def walk(resource: RecordedResource, region: str, depth: int) -> None:
        if region not in regions_below.get(resource.urn, set()):
            return
        marker = "+" if resource.custom else "@"
        print(f"{'    ' * depth}{marker} {_label(resource)}", file=out)
        for child in children.get(resource.urn, []):
            walk(child, region, depth + 1)

    for region in sections:
        title = "global (IAM, Route53)" if region == GLOBAL else region
        if region == primary:
            title += " (primary)"
        print(f"\n{title}: {counts[region]} resource(s)", file=out)
        for root in sorted(roots, key=_label):
            walk(root, region, 1)

    total = sum(counts.values())
    parts = ", ".join(f"{counts[r]} {r}" for r in sections)
    print(f"\nPlan: {total} to create ({parts}); "
          f"{len(graph.resources) - total} component(s) group them.", file=out)
    if graph.outputs:
        print("\nOutputs:", file=out)
        print(json.dumps(graph.outputs, indent=2, sort_keys=True, default=str), file=out)


def _parse_set(pairs: list[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected key=value, e.g. --set regions='[\"eu-west-1\"]'")
        overrides[key] = value
    return overrides


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", help="stack name, e.g. dev or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--program", default=str(PROJECT_DIR), help="Pulumi program directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a stack config key for this plan")
    args = parser.parse_args(argv)
    try:
        graph = evaluate_program(args.program, args.stack, config_overrides=_parse_set(args.overrides))
    except FileNotFoundError as error:
        print(f"error: {error}", file=err)
        return 2
    except ProgramFailed as failure:
        errors = [message for level, message in failure.graph.diagnostics if level == "ERROR"]
        for message in errors or [str(failure.error)]:
            print(f"error: {message}", file=err)
        print(f"error: {failure.error} - nothing was planned", file=err)
        return 1
    render_plan(graph, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
