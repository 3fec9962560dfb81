"""Offline plan: what a stack would create, per region and per component.

    python -m tools.plan dev [--summary] [--json] [--program DIR] [--set key=value ...]

Evaluates the program under the recording mocks of `tools.harness`: no Pulumi CLI, no
provider plugin, no AWS call. It is a preview of the resource graph, not of a diff against
deployed state (everything is shown as a create).

Each region's section also holds the global resources (IAM roles, Route53 health checks and
records) that belong to that region's components; only what serves every region (e.g. ACM's
one validation record) stays in the `global` section.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tools.harness import (
    GLOBAL,
    ProgramFailed,
    RecordedResource,
    StackFileError,
    StackGraph,
    built_layer,
    evaluate_program,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
LAYER_WARNING = ("the Lambda dependencies layer is not built yet: this plan used a "
                 "stand-in holding only the shared contracts, and `pulumi up` refuses to run without it; build it with "
                 "`python -m tools.package_lambda`")


@dataclass(frozen=True)
class PlannedResource:
    resource: RecordedResource
    section: str  # a region, or GLOBAL
    component: str  # short type name of the component it belongs to, e.g. DeviceEdge

    @property
    def is_global_service(self) -> bool:
        return self.resource.region == GLOBAL


@dataclass(frozen=True)
class Plan:
    graph: StackGraph
    primary: str | None
    sections: list[str]  # regions, primary first, then GLOBAL if anything stays global
    resources: list[PlannedResource]  # custom resources only
    children: dict[str | None, list[RecordedResource]]

    def in_section(self, section: str) -> list[PlannedResource]:
        return [p for p in self.resources if p.section == section]

    def by_component(self, section: str) -> Counter[str]:
        return Counter(p.component for p in self.in_section(section))

    @property
    def components(self) -> list[str]:
        """Component names, sorted ("(stack)" last): registration order varies from run to run
        (the SDK registers asynchronously), and plans are diffed."""
        used = {p.component for p in self.resources}
        return sorted(used - {"(stack)"}) + (["(stack)"] if "(stack)" in used else [])

    @property
    def component_count(self) -> int:
        return sum(1 for r in self.graph.resources if not r.custom)


def _component_name(resource: RecordedResource) -> str:
    return resource.type.rsplit(":", 1)[-1]


def build_plan(graph: StackGraph) -> Plan:
    by_urn = graph.by_urn()
    children: dict[str | None, list[RecordedResource]] = defaultdict(list)
    for resource in graph.resources:
        parent = resource.parent_urn if resource.parent_urn in by_urn else None
        children[parent].append(resource)
    for siblings in children.values():
        siblings.sort(key=lambda r: (r.custom, r.type, r.name))

    regions_below: dict[str, set[str]] = {}

    def collect(resource: RecordedResource) -> set[str]:
        found = {resource.region} if resource.custom and resource.region not in (None, GLOBAL) \
            else set()
        for child in children.get(resource.urn, []):
            found |= collect(child)
        regions_below[resource.urn] = {r for r in found if r}
        return regions_below[resource.urn]

    for root in children[None]:
        collect(root)

    def section_of(resource: RecordedResource) -> str:
        if resource.region not in (None, GLOBAL):
            return str(resource.region)
        # A global resource belongs to the region of the nearest component that has
        # regional resources, when that is exactly one region (an IAM role of region X's
        # JITR pipeline); otherwise it serves every region.
        for ancestor in graph.ancestors(resource):
            regions = regions_below.get(ancestor.urn, set())
            if regions:
                return next(iter(regions)) if len(regions) == 1 else GLOBAL
        return GLOBAL

    def component_of(resource: RecordedResource) -> str:
        parent = by_urn.get(resource.parent_urn or "")
        return _component_name(parent) if parent is not None else "(stack)"

    # By URN, not registration order: the same program gives the same plan on every run.
    planned = sorted((PlannedResource(r, section_of(r), component_of(r))
                      for r in graph.custom_resources()), key=lambda p: p.resource.urn)
    primary = graph.outputs.get("primaryRegion")
    regions = sorted({p.section for p in planned if p.section != GLOBAL},
                     key=lambda r: (r != primary, r))
    sections = regions + ([GLOBAL] if any(p.section == GLOBAL for p in planned) else [])
    return Plan(graph, primary if isinstance(primary, str) else None, sections, planned,
                dict(children))


def _label(resource: RecordedResource) -> str:
    replicas = resource.inputs.get("replicas") if resource.type == "aws:dynamodb/table:Table" else None
    suffix = f"  [global table, replicas: {', '.join(r['regionName'] for r in replicas)}]" \
        if replicas else ""
    if resource.custom and resource.region == GLOBAL:
        suffix += f"  ({resource.module}: global service)"
    if resource.type.startswith("aws-native:"):
        # No `region` argument: the explicit provider decides (None = the default provider).
        suffix += f"  (Cloud Control, via the {resource.region or 'DEFAULT'} aws-native provider)"
    return f"{resource.type}  {resource.name}{suffix}"


def _title(plan: Plan, section: str) -> str:
    if section == GLOBAL:
        return "global (serves every region)"
    return f"{section} (primary)" if section == plan.primary else section


def summary_line(plan: Plan) -> str:
    """One line, readable at 20 regions: per region only when there are a few."""
    total = len(plan.resources)
    regions = [s for s in plan.sections if s != GLOBAL]
    counts = {s: len(plan.in_section(s)) for s in plan.sections}
    parts: list[str] = []
    if len(regions) <= 3:
        parts += [f"{counts[r]} in {_title(plan, r)}" for r in regions]
    else:
        others = [counts[r] for r in regions if r != plan.primary]
        if plan.primary in counts:
            parts.append(f"{counts[plan.primary]} in {plan.primary} (primary)")
        low, high = min(others), max(others)
        each = str(low) if low == high else f"{low}-{high}"
        parts.append(f"{each} in each of the other {len(others)} regions")
    if GLOBAL in counts:
        parts.append(f"{counts[GLOBAL]} global")
    return (f"Plan: {total} to create in {len(regions)} region(s): {', '.join(parts)}; "
            f"{plan.component_count} component(s) group them.")


def render_tree(plan: Plan, out: TextIO) -> None:
    def walk(resource: RecordedResource, depth: int, wanted: set[str]) -> None:
        if resource.urn not in wanted:
            return
        marker = "+" if resource.custom else "@"
        print(f"{'    ' * depth}{marker} {_label(resource)}", file=out)
        for child in plan.children.get(resource.urn, []):
            walk(child, depth + 1, wanted)

    for section in plan.sections:
        members = plan.in_section(section)
        global_count = sum(1 for p in members if p.is_global_service)
        detail = f", {global_count} of them IAM/Route53" if global_count and section != GLOBAL else ""
        print(f"\n{_title(plan, section)}: {len(members)} resource(s){detail}", file=out)
        # The members and every component above them.
        wanted = {p.resource.urn for p in members}
        for member in members:
            wanted |= {a.urn for a in plan.graph.ancestors(member.resource)}
        for root in sorted(plan.children.get(None, []), key=_label):
            walk(root, 1, wanted)


def render_summary(plan: Plan, out: TextIO) -> None:
    """Counts per region (rows) and component (columns)."""
    components = plan.components
    header = ["region", *components, "total"]
    rows = []
    for section in plan.sections:
        counts = plan.by_component(section)
        rows.append([_title(plan, section), *[str(counts[c] or "-") for c in components],
                     str(sum(counts.values()))])
    totals = Counter(p.component for p in plan.resources)
    rows.append(["total", *[str(totals[c]) for c in components], str(len(plan.resources))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        print("  ".join(cells).rstrip(), file=out)


def plan_document(plan: Plan, *, summary_only: bool, warnings: list[str]) -> dict[str, Any]:
    """The plan as JSON-able data (`--json`)."""
    sections: dict[str, Any] = {}
    for section in plan.sections:
        members = plan.in_section(section)
        entry: dict[str, Any] = {
            "count": len(members),
            "byComponent": dict(sorted(plan.by_component(section).items())),
        }
        if not summary_only:
            entry["resources"] = [
                {"type": p.resource.type, "name": p.resource.name, "urn": p.resource.urn,
                 "component": p.component, "globalService": p.is_global_service}
                for p in members]
        sections[section] = entry
    return {
        "project": plan.graph.project,
        "stack": plan.graph.stack,
        "offline": True,
        "primaryRegion": plan.primary,
        "total": len(plan.resources),
        "components": plan.component_count,
        "sections": sections,
        "summary": summary_line(plan),
        "warnings": warnings,
        "outputs": plan.graph.outputs,
    }


def render_plan(graph: StackGraph, out: TextIO, *, summary_only: bool = False) -> None:
    plan = build_plan(graph)
    print(f"Offline plan for stack '{graph.stack}' of project '{graph.project}'", file=out)
    print("(evaluated under Pulumi mocks: no Pulumi CLI, no provider, no cloud; "
          "every resource is shown as a create)", file=out)
    if summary_only:
        print(file=out)
        render_summary(plan, out)
    else:
        render_tree(plan, out)
    print(f"\n{summary_line(plan)}", file=out)
    if graph.outputs and not summary_only:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", help="stack name, e.g. dev or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--summary", action="store_true",
                        help="print only the counts per region and component")
    parser.add_argument("--json", action="store_true",
                        help="print the plan as JSON (with --summary: counts only)")
    parser.add_argument("--program", default=str(PROJECT_DIR),
                        help="Pulumi program directory (default: this project)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a stack config key for this plan; lists and maps as "
                             "JSON, e.g. --set 'regions=[\"eu-west-1\",\"us-east-1\"]'")
    return parser


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        graph = evaluate_program(args.program, args.stack, config_overrides=_parse_set(args.overrides))
    except StackFileError as error:
        print(f"error: {error}", file=err)
        return 2
    except ProgramFailed as failure:
        errors = [message for level, message in failure.graph.diagnostics if level == "ERROR"]
        for message in errors or [str(failure.error)]:
            print(f"error: {message}", file=err)
        print("error: nothing was planned", file=err)
        return 1
    warnings = [] if built_layer(args.program) else [LAYER_WARNING]
    if args.json:
        document = plan_document(build_plan(graph), summary_only=args.summary, warnings=warnings)
        print(json.dumps(document, indent=2, default=str), file=out)
    else:
        render_plan(graph, out, summary_only=args.summary)
    for warning in warnings:  # last, so it is what the reader sees
        print(f"warning: {warning}", file=err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
