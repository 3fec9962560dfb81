"""The pack as the CLI loads it: PulumiPolicy.yaml, __main__.py wiring, names, schemas."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import yaml
from pulumi_policy import EnforcementLevel, Policy
from tools.policy_sdk import AnalyzerServicer as _PolicyAnalyzerServicer

import policy.guardrails
from policy.guardrails._common import ANCHORS
from policy.pack import ALL_POLICIES, PACK_NAME

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def test_pulumi_policy_yaml_is_a_python_pack():
    doc = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"]["name"] == "python"
    assert doc["version"] and doc["description"]
    assert (POLICY_DIR / "requirements.txt").is_file()


def test_main_only_builds_the_pack_from_policy_pack():
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "policy.pack"]
    assert [alias.name for n in imports for alias in n.names] == ["build_pack"]
    calls = [n.value.func.id for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and isinstance(n.value.func, ast.Name)]
    assert calls == ["build_pack"]


def test_all_policies_are_unique_and_at_least_seventy():
    names = [p.name for p in ALL_POLICIES]
    assert len(names) >= 70
    assert len(names) == len(set(names))
    assert all(isinstance(p, Policy) for p in ALL_POLICIES)


def test_every_guardrail_module_is_assembled():
    assembled = {id(p) for p in ALL_POLICIES}
    modules = [m.name for m in pkgutil.iter_modules(policy.guardrails.__path__) if not m.name.startswith("_")]
    assert len(modules) >= 12
    for name in modules:
        module = importlib.import_module(f"policy.guardrails.{name}")
        assert module.POLICIES, name
        assert all(id(p) in assembled for p in module.POLICIES), name


def test_every_policy_names_its_anchors():
    for p in ALL_POLICIES:
        assert ANCHORS.get(p.name), p.name
        assert "(anchors: " in p.description and all(a in p.description for a in ANCHORS[p.name])


def test_advisory_policies_are_the_intended_ones():
    advisory = {p.name for p in ALL_POLICIES if p.enforcement_level == EnforcementLevel.ADVISORY}
    assert advisory == {"dynamodb-deletion-protection-dev", "iam-no-star-resource-for-arn-actions",
                        "iam-service-trust-confused-deputy", "lambda-reserved-concurrency",
                        "apigateway-xray-tracing", "cognito-client-prevent-user-existence-errors",
                        "pipes-cmk-encryption", "sqs-dead-letters-kept", "wafv2-logging", "wafv2-metrics"}


def test_analyzer_accepts_the_pack_metadata():
    """What `PolicyPack` hands the engine (GetAnalyzerInfo), built without starting the server."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "2.0.0", list(ALL_POLICIES), EnforcementLevel.MANDATORY)
    info = servicer.GetAnalyzerInfo(None, None)
    assert [p.name for p in info.policies] == [p.name for p in ALL_POLICIES]
    schemas = {p.name: p.configSchema for p in info.policies}
    assert schemas["logs-retention-minimum"].properties["minRetentionDays"]["default"] == 365
    assert "allowedRegions" in schemas["allowed-regions"].properties


def test_docs_table_is_the_pack():
    """docs/policy.md: guardrail -> level -> anchors -> what it judges -> known limits, rendered
    from the pack itself, one row per policy."""
    from policy.limits import KNOWN_LIMITS, render_table

    assert set(KNOWN_LIMITS) == {p.name for p in ALL_POLICIES}
    table = render_table()
    assert table in DOCS.read_text()
    for p in ALL_POLICIES:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{p.name}` |"))
        assert p.enforcement_level is not None
        assert f"| {p.enforcement_level.value} |" in row and all(a in row for a in ANCHORS[p.name])


def test_every_guardrail_module_imports_shared_facts_not_copies():
    """TLS policy names, device-policy variables and global modules live in components/facts.py."""
    from components import facts

    copies = [facts.DEFAULT_TLS_SECURITY_POLICY, "iot:Connection.Thing.IsAttached"]
    for path in (POLICY_DIR / "guardrails").glob("*.py"):
        text = path.read_text()
        for literal in copies:
            assert literal not in text, (path.name, literal)
        assert "frozenset({\"iam\", \"route53\"" not in text, path.name


def test_guardrails_and_their_semantics_import_no_tool():
    """The pack runs in its own virtualenv under the Pulumi CLI: `policy/` never imports
    `tools/` (the offline engine, tools/policy_check.py, imports the pack, not the reverse)."""
    import re

    pattern = re.compile(r"^\s*(from|import) tools(\.|\s|$)", re.MULTILINE)
    offenders = [str(p.relative_to(POLICY_DIR)) for p in POLICY_DIR.rglob("*.py")
                 if "venv" not in p.parts and pattern.search(p.read_text())]
    assert offenders == []
