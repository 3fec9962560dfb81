"""The offline runner sees what the engine sees: invokes answered as the provider answers
them, StackReference and resource reads that do not crash, preview unknowns, and the pack's
entry point importable the way the Pulumi CLI runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from tools import policy_check as check
from tools.harness import UNKNOWN, ProgramFailed, evaluate

ROOT = Path(__file__).resolve().parents[2]


def _one(graph, type_):
    [resource] = graph.of_type(type_)
    return resource


def test_get_policy_document_renders_like_the_provider():
    def program():
        document = aws.iam.get_policy_document(
            policy_id="p1",
            source_policy_documents=[json.dumps({"Statement": [
                {"Sid": "Keep", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"},
                {"Sid": "Replace", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})],
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    sid="Replace", actions=["s3:GetObject", "s3:PutObject"],
                    resources=["arn:aws:s3:::b/&{aws:username}/*"],
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="*", identifiers=["*"])],
                    conditions=[
                        aws.iam.GetPolicyDocumentStatementConditionArgs(
                            test="StringEquals", variable="aws:PrincipalOrgID", values=["o-a1b2c3d4e5"]),
                        aws.iam.GetPolicyDocumentStatementConditionArgs(
                            test="StringEquals", variable="aws:PrincipalOrgID", values=["o-f6g7h8i9j0"])]),
                aws.iam.GetPolicyDocumentStatementArgs(
                    effect="Deny", actions=["s3:*"], resources=["*"],
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="AWS", identifiers=["*"])],
                    conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(
                        test="Bool", variable="aws:SecureTransport", values=["false"])])])
        aws.s3.BucketPolicy("p", region="eu-west-1", bucket="b", policy=document.json)
        aws.s3.BucketPolicy("m", region="eu-west-1", bucket="b", policy=document.minified_json)

    graph = evaluate(program)
    pretty, minified = (r.inputs["policy"] for r in graph.of_type("aws:s3/bucketPolicy:BucketPolicy"))
    assert json.loads(pretty) == json.loads(minified) and "\n" in pretty and "\n" not in minified
    document = json.loads(minified)
    assert document["Version"] == "2012-10-17" and document["Id"] == "p1"
    keep, replaced, deny = document["Statement"]
    assert keep["Sid"] == "Keep"
    assert replaced == {
        "Sid": "Replace", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
        "Resource": "arn:aws:s3:::b/${aws:username}/*", "Principal": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-f6g7h8i9j0", "o-a1b2c3d4e5"]}}}
    assert deny["Principal"] == {"AWS": "*"} and deny["Effect"] == "Deny" and "Sid" not in deny


def test_policies_built_with_invokes_are_judged():
    def program():
        public = aws.iam.get_policy_document(statements=[aws.iam.GetPolicyDocumentStatementArgs(
            actions=["sqs:SendMessage"], resources=["*"],
            principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="AWS", identifiers=["*"])])])
        aws.sqs.QueuePolicy("public", region="eu-west-1", queue_url="u", policy=public.json)
        admin = aws.iam.get_policy_output(name="AdministratorAccess")
        aws.iam.RolePolicyAttachment("admin", role="r", policy_arn=admin.arn)
        aws.iam.RolePolicy("copy", role="r", policy=admin.policy)

    report = check.run_policies(evaluate(program))
    fired = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in report.mandatory}
    assert {("sqs-no-public-policy", "public"), ("iam-no-admin-managed-policies", "admin"),
            ("iam-no-full-admin", "copy")} <= fired


def test_get_policy_of_an_unknown_policy_fails_like_the_provider():
    def program():
        aws.iam.get_policy(name="SomethingNobodyKnows")

    with pytest.raises(ProgramFailed, match="no IAM policy found"):
        evaluate(program)


def test_caller_identity_and_partition_are_realistic():
    def program():
        identity = aws.get_caller_identity()
        partition = aws.get_partition()
        aws.sqs.Queue("q", region="eu-west-1", name=f"{identity.account_id}-{partition.partition}")

    assert _one(evaluate(program), "aws:sqs/queue:Queue").inputs["name"] == "123456789012-aws"


def test_stack_references_and_reads_do_not_crash_the_runner():
    def program():
        other = pulumi.StackReference("acme/shared/prod")
        aws.sqs.Queue("q", region="eu-west-1", name=other.get_output("queueName").apply(lambda n: n or "fallback"),
                      tags={"from": other.name})
        existing = aws.kms.Key.get("existing", "1234abcd-12ab-34cd-56ef-1234567890ab")
        aws.sqs.Queue("r", region="eu-west-1", name="r", kms_master_key_id=existing.id)

    graph = evaluate(program)
    queue = next(r for r in graph.resources if r.name == "q")
    assert queue.inputs["name"] == "fallback" and queue.inputs["tags"] == {"from": "acme/shared/prod"}
    reader = next(r for r in graph.resources if r.name == "r")
    assert reader.inputs["kmsMasterKeyId"] == "1234abcd-12ab-34cd-56ef-1234567890ab"
    report = check.run_policies(graph)
    assert report.resources == 2  # reads are not registrations


def test_preview_models_computed_outputs_as_unknown():
    def program():
        key = aws.kms.Key("k", region="eu-west-1", enable_key_rotation=True)
        aws.sqs.Queue("q", region="eu-west-1", name="q", kms_master_key_id=key.arn,
                      tags={"fixed": "yes", "derived": key.key_id})
        aws.cloudwatch.LogGroup("g", region="eu-west-1", name="g",
                                kms_key_id=key.arn.apply(lambda arn: f"{arn}"), retention_in_days=30)

    preview = evaluate(program, preview=True)
    assert preview.preview
    queue = _one(preview, "aws:sqs/queue:Queue")
    assert queue.inputs["kmsMasterKeyId"] == UNKNOWN
    assert queue.inputs["tags"] == {"fixed": "yes", "derived": UNKNOWN}  # nested unknowns stay nested
    assert _one(preview, "aws:cloudwatch/logGroup:LogGroup").inputs["kmsKeyId"] == UNKNOWN  # applies too
    key = _one(preview, "aws:kms/key:Key")
    assert key.id == UNKNOWN and key.outputs["arn"] == UNKNOWN and key.outputs["enableKeyRotation"] is True
    up = evaluate(program)
    assert _one(up, "aws:sqs/queue:Queue").inputs["kmsMasterKeyId"].startswith("arn:aws:kms:eu-west-1:")


def test_a_crashing_policy_fails_the_run_naming_policy_and_resource():
    from pulumi_policy import ResourceValidationPolicy

    def boom(args, report_violation):
        raise KeyError("surprise")

    def program():
        aws.sqs.Queue("q", region="eu-west-1", name="q")

    crashing = ResourceValidationPolicy(name="crashes", description="always raises", validate=boom)
    expected = "policy crashes failed on urn:pulumi:test::project::aws:sqs/queue:Queue::q: KeyError"
    with pytest.raises(check.PolicyFailed, match=re.escape(expected)):
        check.run_policies(evaluate(program), policies=[crashing])


def test_pack_entry_point_imports_from_a_fresh_interpreter_in_the_policy_directory():
    """What `pulumi preview --policy-pack policy` does: run policy/__main__.py with cwd=policy
    in its own process. PolicyPack (which would serve forever) is replaced by a recorder."""
    script = """
import runpy, sys
import pulumi_policy

class Recorder:
    def __init__(self, name, policies, enforcement_level):
        import components.facts, policy.pack
        assert components.facts.__file__.startswith(sys.argv[1]), components.facts.__file__
        assert policy.pack.__file__.startswith(sys.argv[1]), policy.pack.__file__
        print(name, len(policies), len({p.name for p in policies}))

pulumi_policy.PolicyPack = Recorder
runpy.run_path("__main__.py", run_name="__main__")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    result = subprocess.run([sys.executable, "-c", script, str(ROOT)], cwd=ROOT / "policy", env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from policy.pack import ALL_POLICIES, PACK_NAME

    assert result.stdout.split() == [PACK_NAME, str(len(ALL_POLICIES)), str(len(ALL_POLICIES))]


def test_what_offline_cannot_know_fails_a_mandatory_policy_unless_waived():
    """As `up`: a stack reference's output is unknown offline, never None; the policies that
    need it are not judged, which fails the run at their level unless explicitly waived."""
    from .evasions import HOME, program_stack_reference_policy

    graph = evaluate(program_stack_reference_policy, unknown_uncomputed=True)
    [policy] = graph.of_type("aws:sqs/queuePolicy:QueuePolicy")
    assert policy.inputs["policy"] == UNKNOWN
    config = {"aws:allowedAccountIds": [HOME]}
    report = check.run_policies(graph, stack_config=config)
    unjudged = {v.policy for v in report.mandatory if not v.judged}
    assert {"sqs-no-public-policy"} <= unjudged
    assert "not judged offline" in check.format_report(report)
    waived = check.run_policies(graph, stack_config=config, waivers=["sqs-no-public-policy:from-shared"])
    assert "sqs-no-public-policy" not in {v.policy for v in waived.mandatory}
    assert any(v.policy == "sqs-no-public-policy" and "(waived)" in v.message for v in waived.advisory)


def test_alias_target_key_arn_is_computed():
    from .evasions import program_alias_target

    graph = evaluate(program_alias_target, unknown_uncomputed=True)
    [queue] = graph.of_type("aws:sqs/queue:Queue")
    assert queue.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:eu-west-1:123456789012:key/")


def test_managed_policy_snapshot_is_what_moto_ships_and_judged_by_document():
    from policy.semantics.managed_policies import AWS_MANAGED_POLICIES, managed_policy_document
    from tools import managed_policies

    assert len(AWS_MANAGED_POLICIES) > 1000
    assert managed_policy_document("arn:aws:iam::aws:policy/AWSIoTFullAccess")["Statement"][0]["Action"] == \
        ["iot:*", "iotjobsdata:*"]
    assert managed_policies.main(["--check"]) == 0, "refresh: python -m tools.managed_policies"
