"""The offline runner: rejects the insecure fixture for the right reasons, resolves config like
the CLI, and reports exactly what pulumi_policy's own analyzer servicer reports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from tools.policy_sdk import AnalyzerServicer as _PolicyAnalyzerServicer

from tools import policy_check as check
from policy.pack import ALL_POLICIES, PACK_NAME
from tools.harness import RecordedResource, StackGraph, evaluate_program, load_program_stack

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "insecure_program"
FIXTURE_CONFIG = json.loads((FIXTURE / "policy-config.json").read_text())

EXPECTED_MANDATORY = {
    "iot-policy-no-wildcard-action", "iot-policy-no-wildcard-resource", "iot-policy-device-isolation",
    "iot-connect-bound-to-thing", "iot-deny-no-mqtt-wildcards", "iot-claim-policy-fleet-provisioning-only",
    "iot-ca-sni-only", "iot-ca-auto-registration-needs-jitr", "iot-domain-configuration-tls12",
    "iot-topic-rule-error-action", "iot-logging-enabled-every-region",
    "dynamodb-pitr-enabled", "dynamodb-cmk-encryption", "dynamodb-global-table-all-regions",
    "dynamodb-deletion-protection-prod",
    "iam-no-full-admin", "iam-no-wildcard-actions", "iam-no-privilege-escalation", "iam-no-kms-decrypt-all-keys",
    "iam-no-admin-managed-policies", "iam-policy-valid", "iam-trust-policy-scoped",
    "lambda-tracing-active", "lambda-supported-runtime", "lambda-async-failure-destination",
    "lambda-permission-scoped", "lambda-no-secrets-in-env", "lambda-environment-cmk",
    "stepfunctions-logging-all", "stepfunctions-execution-data-decision", "stepfunctions-tracing",
    "apigateway-method-authorization", "apigateway-regional-endpoint", "apigateway-waf-associated",
    "apigateway-request-validation", "apigateway-access-logging", "apigateway-throttling",
    "apigateway-tls12-custom-domain",
    "cognito-no-unauthenticated-identities", "cognito-mfa-required", "cognito-password-policy",
    "cognito-threat-protection", "cognito-admin-only-sign-up",
    "kms-key-rotation", "kms-no-wildcard-principal", "logs-retention-minimum", "logs-kms-encryption",
    "sqs-cmk-encryption", "sqs-ssl-only", "route53-latency-records-health-checked",
    "allowed-regions", "required-tags", "aws-home-account-declared",
}
EXPECTED_ADVISORY = {"apigateway-xray-tracing", "lambda-reserved-concurrency", "sqs-dead-letters-kept"}


@pytest.fixture(scope="module")
def fixture_report() -> check.Report:
    return check.check_program(FIXTURE, "test", policy_config=FIXTURE_CONFIG)


def test_insecure_fixture_fails_with_the_expected_policies(fixture_report):
    assert fixture_report.policy_names(EnforcementLevel.MANDATORY) == EXPECTED_MANDATORY
    assert fixture_report.policy_names(EnforcementLevel.ADVISORY) == EXPECTED_ADVISORY


def test_violations_point_at_the_offending_resources(fixture_report):
    by_policy: dict[str, set[str]] = {}
    for v in fixture_report.violations:
        by_policy.setdefault(v.policy, set()).add(v.urn.rsplit("::", 1)[-1] if v.urn else "")
    assert by_policy["iot-ca-sni-only"] == {"ca"}
    assert by_policy["lambda-supported-runtime"] == {"handler"}
    assert by_policy["allowed-regions"] == {"table", "stray-key"}  # replica in ap-southeast-2; key in sa-east-1
    assert by_policy["iot-logging-enabled-every-region"] == {"logging", ""}  # DISABLED + regions without any
    logging = [v.message for v in fixture_report.violations if v.policy == "iot-logging-enabled-every-region"]
    assert any("DISABLED in eu-west-1" in m for m in logging)
    assert any("LoggingOptions in sa-east-1" in m for m in logging)  # the stray key's region
    assert not any("us-west-2" in m for m in logging)  # nothing regional lands there


def test_cli_exit_codes_and_output(capsys):
    assert check.main(["--stack", "test", "--program", str(FIXTURE),
                       "--config", str(FIXTURE / "policy-config.json")]) == 1
    out = capsys.readouterr().out
    assert f"{PACK_NAME}@v" in out
    assert "- [mandatory]  iot-policy-no-wildcard-action  (aws:iot/policy:Policy: device)" in out
    assert out.strip().splitlines()[-1].startswith("Summary: stack test: ")


def test_everything_advisory_exits_zero(tmp_path, capsys):
    config = tmp_path / "all-advisory.json"
    config.write_text(json.dumps({"all": "advisory"}))
    assert check.main(["--stack", "test", "--program", str(FIXTURE), "--config", str(config)]) == 0
    assert "0 mandatory" in capsys.readouterr().out


@pytest.mark.parametrize("bad_config", [
    {"no-such-policy": "mandatory"},
    {"logs-retention-minimum": {"minRetentionDays": "thirty"}},
    {"logs-retention-minimum": {"minimumDays": 30}},
    {"iot-ca-sni-only": "sometimes"},
    {"iot-ca-sni-only": {"threshold": 1}},
    [],
    "mandatory",
])
def test_bad_policy_config_is_refused(bad_config, tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(bad_config))
    assert check.main(["--stack", "test", "--program", str(FIXTURE), "--config", str(config)]) == 2
    assert "error:" in capsys.readouterr().err


def test_missing_stack_is_an_error(capsys):
    assert check.main(["--stack", "nope", "--program", str(FIXTURE)]) == 2
    assert "Pulumi.nope.yaml" in capsys.readouterr().err


def test_config_resolution_matches_the_cli_rules():
    resolved = {r.policy.name: r for r in check.resolve_policies(ALL_POLICIES, {
        "all": "advisory", "iot-ca-sni-only": "disabled",
        "logs-retention-minimum": {"enforcementLevel": "mandatory", "minRetentionDays": 90},
    })}
    assert resolved["iot-ca-sni-only"].level == EnforcementLevel.DISABLED
    assert resolved["logs-retention-minimum"].level == EnforcementLevel.MANDATORY
    assert resolved["logs-retention-minimum"].config == {"minRetentionDays": 90}
    assert resolved["kms-key-rotation"].level == EnforcementLevel.ADVISORY
    defaults = {r.policy.name: r for r in check.resolve_policies(ALL_POLICIES, None)}
    assert defaults["required-tags"].config == {"requiredTags": ["owner", "environment"]}
    assert defaults["lambda-reserved-concurrency"].level == EnforcementLevel.ADVISORY


def test_disabled_policies_do_not_run():
    graph = evaluate_program(FIXTURE, "test")
    report = check.run_policies(graph, policy_config={"iot-ca-sni-only": "disabled"})
    assert "iot-ca-sni-only" not in report.policy_names()
    assert "iot-policy-no-wildcard-action" in report.policy_names()


def test_stack_resources_carry_parent_provider_and_dependencies():
    graph = evaluate_program(FIXTURE, "test")
    spec = load_program_stack(FIXTURE, "test")
    resources = check.stack_resources(graph, check._Providers(graph, spec.config))
    by_name = {r.name: r for r in resources}
    assert by_name["insecure-fixture-test"].resource_type == "pulumi:pulumi:Stack"
    policy = by_name["everything"]
    assert policy.parent is by_name["insecure-fixture-test"]
    assert policy.property_dependencies["role"] == [by_name["admin"]]
    assert by_name["admin"] in by_name["handler"].dependencies
    assert by_name["handler"].provider is not None and by_name["handler"].provider.props["region"] == "eu-west-1"
    assert by_name["admin"].props["arn"] == "arn:aws:iam::123456789012:role/insecure-admin"  # outputs
    assert by_name["ca"].props["id"].startswith("ca-")


# --- the runner agrees with pulumi_policy's own analyzer -----------------------------------------

def _struct(values) -> struct_pb2.Struct:
    from tools.policy_sdk import serialize_properties

    s = struct_pb2.Struct()
    s.update(serialize_properties(check._jsonable(values)))
    return s


def _provider_proto(provider):
    return proto.AnalyzerProviderResource(type=provider.resource_type, urn=provider.urn, name=provider.name,
                                          properties=_struct(check.check_props_plain(provider.props)))


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_runner_reports_what_the_analyzer_servicer_reports(preview):
    """Same diagnostics as pulumi_policy's own analyzer servicer fed the same requests,
    including its "can't run policy ... during preview" answers for unknown values."""
    graph = evaluate_program(FIXTURE, "test", preview=preview)
    spec = load_program_stack(FIXTURE, "test")
    runner_report = check.run_policies(graph, policy_config=FIXTURE_CONFIG, stack_config=spec.config)
    assert bool(runner_report.not_judged) is preview
    resolved = check.resolve_policies(ALL_POLICIES, FIXTURE_CONFIG)
    servicer = _PolicyAnalyzerServicer(PACK_NAME, check.pack_version(), list(ALL_POLICIES),
                                       EnforcementLevel.MANDATORY)
    levels = {EnforcementLevel.ADVISORY: proto.ADVISORY, EnforcementLevel.MANDATORY: proto.MANDATORY,
              EnforcementLevel.DISABLED: proto.DISABLED}
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={
        r.policy.name: proto.PolicyConfig(enforcementLevel=levels[r.level], properties=_struct(r.config))
        for r in resolved}), None)
    providers = check._Providers(graph, spec.config)
    diagnostics = []
    for r in graph.resources:
        provider = providers.for_resource(r)
        request = proto.AnalyzeRequest(
            type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name,
            options=proto.AnalyzerResourceOptions(parent=r.parent_urn or ""))
        if provider is not None:
            request.provider.CopyFrom(_provider_proto(provider))
        # The engine attributes a resource policy's diagnostics to the analyzed resource.
        diagnostics += [(d.policyName, d.urn or r.urn, d.message, d.enforcementLevel)
                        for d in servicer.Analyze(request, None).diagnostics]
    stack = check.stack_resources(graph, providers)
    stack_request = proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(
            type=p.resource_type, properties=_struct(check.check_props_plain(p.props)), urn=p.urn, name=p.name,
            parent=p.parent.urn if p.parent else "", dependencies=[d.urn for d in p.dependencies],
            options=proto.AnalyzerResourceOptions(parent=p.parent.urn if p.parent else ""),
            **({"provider": _provider_proto(p.provider)} if p.provider else {}))
        for p in stack])
    diagnostics += [(d.policyName, d.urn, d.message, d.enforcementLevel)
                    for d in servicer.AnalyzeStack(stack_request, None).diagnostics]
    from_servicer = sorted(diagnostics)
    from_runner = sorted((v.policy, v.urn, v.message, levels[v.level]) for v in runner_report.violations)
    assert from_runner == from_servicer


def test_a_crashing_policy_fails_the_run_naming_policy_and_resource():
    from pulumi_policy import ResourceValidationPolicy

    def boom(args, report_violation):
        raise KeyError("surprise")

    crashing = ResourceValidationPolicy(name="crashes", description="always raises", validate=boom)
    graph = evaluate_program(FIXTURE, "test")
    with pytest.raises(check.PolicyFailed, match=r"policy crashes failed on urn:pulumi:test::insecure-fixture::"):
        check.run_policies(graph, policies=[crashing])


def test_module_entry_point_runs_as_a_process():
    """`python -m tools.policy_check` as the README runs it (its verdict on our stacks is
    check_program's: tests/policy/test_our_stacks.py); the small fixture program keeps the
    process's evaluation to a second."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "tools.policy_check", "--stack", "test", "--program",
                             str(FIXTURE), "--config", str(FIXTURE / "policy-config.json")],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr  # the fixture's mandatory violations
    assert result.stdout.strip().splitlines()[-1].startswith("Summary: stack test: ")
    assert "Traceback" not in result.stderr


def test_a_check_in_a_child_answers_as_in_process_even_if_the_child_dies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log_group = "aws:cloudwatch/logGroup:LogGroup"  # no KMS key, no retention: violations
    graph = StackGraph("proj", "test", [RecordedResource(
        log_group, "logs", f"urn:pulumi:test::proj::{log_group}::logs", {"name": "logs"}, None, True, None)])
    here = check.run_policies(graph)
    verdict = lambda found: sorted((v.policy, v.level, v.urn) for v in found.violations)  # noqa: E731
    assert here.mandatory

    beside = check.forked_policy_run(graph)
    assert beside.pid not in (None, os.getpid())  # a child, while this process goes on
    assert verdict(beside.result()) == verdict(here) and beside.pid is None

    parent = os.getpid()
    real = check.run_policies

    def dies_in_the_child(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            os._exit(1)  # killed, out of memory: no answer
        return real(*args, **kwargs)

    monkeypatch.setattr(check, "run_policies", dies_in_the_child)
    orphaned = check.forked_policy_run(graph)
    assert orphaned.pid is not None
    assert verdict(orphaned.result()) == verdict(here)  # checked here instead


def test_a_run_without_the_stacks_settings_says_where_they_are(tmp_path, capsys):
    """As `pulumi preview` without --policy-pack-config, the defaults apply; a stack with
    settings in policy/config/<stack>.json is told so (its newcomer saw only violations)."""
    program = tmp_path / "program"
    shutil.copytree(FIXTURE, program)
    settings = program / "policy" / "config" / "test.json"
    settings.parent.mkdir(parents=True)
    shutil.copy(FIXTURE / "policy-config.json", settings)

    check.main(["--stack", "test", "--program", str(program)])
    assert f"note: no --config: the pack ran with its default settings, not this stack's (--config {settings})" \
        in capsys.readouterr().err
    check.main(["--stack", "test", "--program", str(program), "--config", str(settings)])
    assert "note:" not in capsys.readouterr().err
