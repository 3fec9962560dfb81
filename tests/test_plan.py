"""The offline plan command: readable per-region tree, clear errors, honest labelling."""

from __future__ import annotations

import io

from tools.plan import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_plan_lists_each_region_and_labels_itself_offline() -> None:
    code, out, err = run("prod")
    assert code == 0, err
    assert "no Pulumi CLI, no provider, no cloud" in out
    for region in ("eu-west-1 (primary)", "us-east-1", "ap-southeast-2"):
        assert f"\n{region}:" in out
    assert "replicas: us-east-1, ap-southeast-2" in out
    summary = [line for line in out.splitlines() if line.startswith("Plan: ")]
    assert len(summary) == 1
    planned = sum(1 for line in out.splitlines() if line.lstrip().startswith("+ "))
    assert summary[0].startswith(f"Plan: {planned} to create")


def test_plan_reports_every_config_problem_and_plans_nothing() -> None:
    code, out, err = run("dev", "--set", 'regions=["eu-west-1","eu-wst-2"]', "--set", "hostedZoneId=bad")
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert any(line.startswith("error: iot-multi-region:regions:") and "eu-west-2" in line for line in lines)
    assert any(line.startswith("error: iot-multi-region:hostedZoneId:") for line in lines)
    assert "Traceback" not in err


def test_plan_unknown_stack_is_a_clear_error() -> None:
    code, _, err = run("staging")
    assert code == 2
    assert "Pulumi.staging.yaml not found" in err
