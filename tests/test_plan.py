"""The offline plan command and the newcomer's path through it: readable per-region tree,
summary and JSON forms, and one clear error line (never a traceback) for every bad input."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.packaging import contracts_only_layer
from tests.support.snapshots import TWENTY_REGION_OVERRIDES, TWENTY_REGIONS
from tools import plan
from tools.harness import GLOBAL, StackGraph, evaluate_program
from tools.plan import LAYER_WARNING, build_plan, main, plan_document, render_plan, render_summary

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def evaluations() -> dict[tuple[Any, ...], StackGraph]:
    return {}  # dropped with the module's last test


@pytest.fixture(autouse=True)
def one_evaluation_per_stack_and_settings(monkeypatch: pytest.MonkeyPatch,
                                          evaluations: dict[tuple[Any, ...], StackGraph]) -> None:
    """The plan command's tests share the evaluation of a stack with the same files, settings
    and layer (2-3 s each): evaluating it again would test Pulumi's determinism, not the plan.
    A failed evaluation is not kept."""
    def evaluate_once(program: Path | str, stack: str, **kwargs: Any) -> StackGraph:
        files = [Path(program) / name for name in ("Pulumi.yaml", f"Pulumi.{stack}.yaml")]
        key = (str(Path(program).resolve()), stack, json.dumps(kwargs, sort_keys=True, default=str),
               tuple(f.read_text() if f.is_file() else None for f in files),
               os.environ.get("IOTMR_LAMBDA_LAYER_ZIP"))
        if key not in evaluations:
            evaluations[key] = evaluate_program(program, stack, **kwargs)
        return evaluations[key]
    monkeypatch.setattr(plan, "evaluate_program", evaluate_once)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def sections(out: str) -> dict[str, list[str]]:
    """Section title -> its lines, from the tree form."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and ": " in line and "resource(s)" in line:
            current = found.setdefault(line.split(":")[0], [])
        elif line.startswith("Plan: ") or line.startswith("Outputs:"):
            current = None
        elif current is not None and line.strip():
            current.append(line.strip())
    return found


def test_plan_lists_each_region_and_labels_itself_offline() -> None:
    code, out, err = run("prod")
    assert code == 0, err
    assert "no Pulumi CLI, no provider, no cloud" in out
    assert list(sections(out)) == ["eu-west-1 (primary)", "ap-southeast-2", "us-east-1",
                                   "global (serves every region)"]
    assert "replicas: us-east-1, ap-southeast-2" in out
    summary = [line for line in out.splitlines() if line.startswith("Plan: ")]
    assert len(summary) == 1
    planned = sum(1 for line in out.splitlines() if line.lstrip().startswith("+ "))
    assert summary[0].startswith(f"Plan: {planned} to create in 3 region(s): ")


def test_each_region_section_holds_its_own_iam_and_route53_resources() -> None:
    code, out, err = run("dev")
    assert code == 0, err
    found = sections(out)
    for region, other in (("eu-west-1", "us-west-2"), ("us-west-2", "eu-west-1")):
        title = next(t for t in found if t.startswith(region))
        roles = [line for line in found[title] if "aws:iam/role:Role" in line]
        checks = [line for line in found[title] if "aws:route53/healthCheck:HealthCheck" in line]
        assert roles and checks
        assert all(f"region-{region}-" in line for line in roles + checks)
        assert not any(f"region-{other}-" in line for line in found[title])
    # Only what serves every region stays global: ACM's one validation record per domain (the
    # device domain's and the CVM's provisioning domain's), and the installer web app's
    # CloudFront distribution and its names, and the evacuation operators' IAM policy (IAM is
    # global; it names every region's controls).
    global_lines = [line for line in found["global (serves every region)"] if line.startswith("+")]
    site = [line for line in global_lines if "  installer-web-" in line]
    assert sorted(line for line in global_lines if line not in site) == [
        "+ aws:iam/policy:Policy  evacuation-operator  (iam: global service)",
        "+ aws:route53/record:Record  cvm-global-acm-validation  (route53: global service)",
        "+ aws:route53/record:Record  device-domain-acm-validation  (route53: global service)"]
    assert site and all("(cloudfront: global service)" in line or "(route53: global service)" in line
                        for line in site)


def test_json_plan_counts_match_its_resources_and_the_summary() -> None:
    code, out, err = run("dev", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["offline"] is True and document["stack"] == "dev"
    sections_ = document["sections"]
    # us-east-1 holds only the installer site's CloudFront certificate.
    assert list(sections_) == ["eu-west-1", "us-east-1", "us-west-2", GLOBAL]
    assert {r["type"] for r in sections_["us-east-1"]["resources"]} == {
        "aws:acm/certificate:Certificate", "aws:acm/certificateValidation:CertificateValidation"}
    for section in sections_.values():
        assert section["count"] == len(section["resources"]) == sum(section["byComponent"].values())
    assert document["total"] == sum(s["count"] for s in sections_.values())
    roles = [r for r in sections_["us-west-2"]["resources"] if r["type"] == "aws:iam/role:Role"]
    assert roles and all(r["globalService"] for r in roles)
    assert all(r["urn"].startswith("urn:pulumi:dev::iot-multi-region::") for r in roles)
    assert document["outputs"]["deviceDomain"] == "iot.dev.example.com"


def test_summary_at_twenty_regions_is_a_table_and_one_short_line(
        twenty_region_graph: StackGraph) -> None:
    out = io.StringIO()
    render_plan(twenty_region_graph, out, summary_only=True)
    lines = out.getvalue().splitlines()
    primary = TWENTY_REGION_OVERRIDES["primaryRegion"]
    header = next(line for line in lines if line.startswith("region "))
    assert header.split()[-1] == "total" and "DeviceEdge" in header
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 1:]
            if line and not line.startswith("Plan:")}
    assert set(TWENTY_REGIONS) <= set(rows)
    assert rows[primary][1] == "(primary)"
    [summary] = [line for line in lines if line.startswith("Plan: ")]
    assert len(summary) < 160
    assert f"in {primary} (primary)" in summary
    assert "each of the other 19 regions" in summary
    total = int(summary.split()[1])
    assert int(rows["total"][-1]) == total == len(twenty_region_graph.custom_resources())
    assert "+ aws:" not in out.getvalue()  # the summary lists no resources


def test_summary_json_has_counts_but_no_resources() -> None:
    code, out, _ = run("prod", "--summary", "--json")
    assert code == 0
    document = json.loads(out)
    assert all("resources" not in s for s in document["sections"].values())
    assert document["sections"]["us-east-1"]["byComponent"]["DeviceEdge"] > 0


def test_plan_warns_when_the_lambda_layer_is_not_built(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.delenv("IOTMR_LAMBDA_LAYER_ZIP", raising=False)
    code, _, err = run("dev", "--summary")
    built = (PROJECT_DIR / "build" / "lambda" / "dependencies-layer.zip").is_file()
    assert code == 0
    assert (f"warning: {LAYER_WARNING}" in err) is (not built)
    layer = tmp_path / "layer.zip"
    layer.write_bytes(contracts_only_layer())
    monkeypatch.setenv("IOTMR_LAMBDA_LAYER_ZIP", str(layer))
    code, _, err = run("dev", "--summary")
    assert code == 0 and "warning:" not in err


def test_plan_reports_every_config_problem_and_plans_nothing() -> None:
    code, out, err = run("dev", "--set", 'regions=["eu-west-1","eu-wst-2"]', "--set", "hostedZoneId=bad")
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert any(line.startswith("error: iot-multi-region:regions:") and "eu-west-2" in line for line in lines)
    assert any(line.startswith("error: iot-multi-region:hostedZoneId:") for line in lines)
    assert lines[-1] == "error: nothing was planned"
    assert "Traceback" not in err


# --- malformed stack files: one line naming the file and the fix --------------------------

@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A copy of the program's stack files; its code and certificates linked, not copied."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    for name in ("__main__.py", "certs"):
        (tmp_path / name).symlink_to(PROJECT_DIR / name)
    return tmp_path


def plan_error(program: Path, stack_text: str | None, *extra: str) -> str:
    if stack_text is not None:
        (program / "Pulumi.dev.yaml").write_text(stack_text)
    code, out, err = run("dev", "--program", str(program), *extra)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: {program / 'Pulumi.dev.yaml'}")
    return line


def test_bad_yaml_names_the_line(program: Path) -> None:
    line = plan_error(program, "config:\n  iot-multi-region:appName: [iotmr\n")
    assert "not valid YAML at line 3" in line and "fix the file" in line


def test_a_list_at_the_top_says_a_mapping_is_expected(program: Path) -> None:
    line = plan_error(program, "- iot-multi-region:appName: iotmr\n")
    assert "holds a list at the top level" in line and "`config:`" in line


def test_config_that_is_not_a_mapping(program: Path) -> None:
    line = plan_error(program, "config: appName=iotmr\n")
    assert "`config:` holds str 'appName=iotmr', not a mapping" in line


def test_a_secure_value_offline_says_how_to_stand_in_for_it(program: Path) -> None:
    text = (PROJECT_DIR / "Pulumi.dev.yaml").read_text().replace(
        "iot-multi-region:hostedZoneId: Z0123456789DEVEXAMPLE",
        "iot-multi-region:hostedZoneId:\n    secure: AAABAHh0dGVzdA==")
    line = plan_error(program, text)
    assert "iot-multi-region:hostedZoneId is an encrypted (secure) value" in line
    assert "--set hostedZoneId=<value>" in line
    # ... and the stand-in works.
    code, _, err = run("dev", "--program", str(program), "--summary",
                       "--set", "hostedZoneId=Z0123456789DEVEXAMPLE")
    assert code == 0, err


def test_unknown_stack_says_how_to_create_the_stack_file() -> None:
    code, _, err = run("staging")
    assert code == 2
    [line] = err.strip().splitlines()
    assert "Pulumi.staging.yaml not found" in line
    assert "copy Pulumi.dev.yaml to Pulumi.staging.yaml" in line
    assert "pulumi stack init staging" in line
    assert "existing stacks: dev, prod" in line


def test_the_plan_does_not_depend_on_registration_order(dev_graph: StackGraph) -> None:
    """The SDK registers resources asynchronously, so their order varies between runs; the
    plan (tree, summary table, JSON) must not: plans are diffed."""
    shuffled = dataclasses.replace(dev_graph, resources=list(reversed(dev_graph.resources)))
    assert shuffled.resources != dev_graph.resources

    def everything(graph: StackGraph) -> tuple[str, str, str]:
        tree, table = io.StringIO(), io.StringIO()
        render_plan(graph, tree)
        render_summary(build_plan(graph), table)
        document = json.dumps(plan_document(build_plan(graph), summary_only=False, warnings=[]))
        return tree.getvalue(), table.getvalue(), document

    assert everything(shuffled) == everything(dev_graph)
