"""Our own stacks pass the pack with their policy configs: zero mandatory violations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from tools.policy_check import run_policies, violation_lines
from tools.harness import load_program_stack

POLICY_CONFIG_DIR = Path(__file__).resolve().parents[2] / "policy" / "config"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_has_no_mandatory_violations(stack, request, project_dir):
    """As CI runs it (`python -m tools.policy_check`): whatever offline evaluation cannot know
    stays unknown, so 0 mandatory also means every mandatory guardrail judged every input."""
    from tools.policy_check import check_program

    graph = request.getfixturevalue(f"{stack}_graph")
    config = json.loads((POLICY_CONFIG_DIR / f"{stack}.json").read_text())
    report = check_program(project_dir, stack, policy_config=config)
    assert report.resources == len(graph.resources) > 0
    # On failure: one line per violation, "level policy type::name message", to fix quickly.
    assert not report.mandatory, "\n" + violation_lines(report, EnforcementLevel.MANDATORY)
    assert not report.not_judged, "\n" + violation_lines(report)
    assert all(v.level == EnforcementLevel.ADVISORY for v in report.violations)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_advisory_violation_is_justified_in_the_docs(stack, request, project_dir):
    """docs/policy.md "Advisories on our stacks" names each advisory our stacks trip, and why."""
    graph = request.getfixturevalue(f"{stack}_graph")
    config = json.loads((POLICY_CONFIG_DIR / f"{stack}.json").read_text())
    report = run_policies(graph, policy_config=config,
                          stack_config=load_program_stack(project_dir, stack).config)
    section = DOCS.read_text().split("\n## Advisories on our stacks\n", 1)[1].split("\n## ", 1)[0]
    unjustified = sorted({v.policy for v in report.advisory} -
                         {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")})
    assert unjustified == [], "\n" + violation_lines(report, EnforcementLevel.ADVISORY)


def test_dev_passes_because_of_its_config_not_by_accident(dev_graph, project_dir):
    """Without policy/config/dev.json, the default one-year log floor rejects dev's 30 days."""
    spec = load_program_stack(project_dir, "dev")
    report = run_policies(dev_graph, stack_config=spec.config)
    assert "logs-retention-minimum" in report.policy_names(EnforcementLevel.MANDATORY)


def test_runner_ids_are_the_ids_the_program_saw(dev_graph):
    """Stack policies read `id` from the runner's outputs; it must equal the id the harness
    handed the program (the JITR rule's SQL embeds the CA's id)."""
    from tools.policy_check import outputs_of

    rules = dev_graph.of_type("aws:iot/topicRule:TopicRule")
    cas = dev_graph.of_type("aws:iot/caCertificate:CaCertificate")
    assert cas and rules
    sqls = " ".join(str(r.inputs.get("sql")) for r in rules)
    for ca in cas:
        assert f"$aws/events/certificates/registered/{outputs_of(ca)['id']}'" in sqls
