"""The stack's shape under recording mocks: regions, global tables, tags, exports.

(Determinism and "nothing changed" are the snapshot's job: tests/test_snapshot.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.snapshots import TWENTY_REGIONS
from tests.support.stacks import configured_regions
from tools.harness import GLOBAL, StackGraph


def graphs(request: pytest.FixtureRequest) -> list[tuple[StackGraph, list[str]]]:
    twenty = request.getfixturevalue("twenty_region_graph")
    return [
        (request.getfixturevalue("dev_graph"), configured_regions("dev")),
        (request.getfixturevalue("prod_graph"), configured_regions("prod")),
        (twenty, list(TWENTY_REGIONS)),
    ]


def regional_component_region(graph: StackGraph, resource: Any) -> str | None:
    """The region named by the nearest `region-<name>` ancestor component, if any."""
    for ancestor in graph.ancestors(resource):
        if ancestor.type == "iotmr:regional:RegionalStack":
            return ancestor.name.removeprefix("region-")
    return None


@pytest.mark.parametrize("which", ["dev", "prod", "twenty"])
def test_every_resource_lands_in_a_configured_region(request: pytest.FixtureRequest, which: str) -> None:
    graph, regions = dict(zip(["dev", "prod", "twenty"], graphs(request)))[which]
    custom = graph.custom_resources()
    assert custom
    for resource in custom:
        if resource.module in ("iam", "route53", "cloudfront"):
            assert resource.region == GLOBAL
            assert "region" not in resource.inputs, resource.urn
            continue
        if resource.module == "acm" and resource.region == "us-east-1" and \
                resource.urn.split("::")[2].startswith("iotmr:installer_web:InstallerWeb$"):
            continue  # CloudFront takes its certificates from us-east-1 only
        assert resource.region in regions, f"{resource.urn} has no explicit configured region"
        home = regional_component_region(graph, resource)
        if home is not None:
            assert resource.region == home, f"{resource.urn} lands in {resource.region}, not {home}"
    regional_components = graph.of_type("iotmr:regional:RegionalStack")
    assert sorted(c.name.removeprefix("region-") for c in regional_components) == sorted(regions)
    for component in regional_components:
        assert graph.children(component), f"{component.name} declares nothing"


@pytest.mark.parametrize("which", ["dev", "prod", "twenty"])
def test_global_tables_replicate_to_every_other_region(request: pytest.FixtureRequest, which: str) -> None:
    graph, regions = dict(zip(["dev", "prod", "twenty"], graphs(request)))[which]
    tables = graph.of_type("aws:dynamodb/table:Table")
    assert len(tables) == 3
    keys = {str(k.region): k for k in graph.of_type("aws:kms/replicaKey:ReplicaKey")}
    primary_keys = [k for k in graph.of_type("aws:kms/key:Key") if k.inputs.get("multiRegion")]
    assert len(primary_keys) == 1
    primary = primary_keys[0].region
    assert sorted(keys) == sorted(set(regions) - {primary})
    for table in tables:
        inputs = table.inputs
        assert table.region == primary
        assert inputs["streamEnabled"] is True
        assert inputs["streamViewType"] == "NEW_AND_OLD_IMAGES"
        assert inputs["pointInTimeRecovery"]["enabled"] is True
        assert inputs["billingMode"] == "PAY_PER_REQUEST"
        assert inputs["serverSideEncryption"]["enabled"] is True
        assert ":kms:" in inputs["serverSideEncryption"]["kmsKeyArn"]
        assert f":{primary}:" in inputs["serverSideEncryption"]["kmsKeyArn"]
        replicas = inputs.get("replicas") or []
        assert sorted(r["regionName"] for r in replicas) == sorted(set(regions) - {primary})
        for replica in replicas:
            assert replica["pointInTimeRecovery"] is True
            assert f":kms:{replica['regionName']}:" in replica["kmsKeyArn"]
            # the replica key shares the primary's key id (multi-region key)
            assert replica["kmsKeyArn"].rsplit("/", 1)[1].startswith("mrk-")


def test_keys_rotate_and_tables_are_protected_in_prod(prod_graph: StackGraph, dev_graph: StackGraph) -> None:
    for key in prod_graph.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True
    for table in prod_graph.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["deletionProtectionEnabled"] is True
        assert all(r["deletionProtectionEnabled"] for r in table.inputs["replicas"])
    for table in dev_graph.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["deletionProtectionEnabled"] is False


def test_inventory_schema(dev_graph: StackGraph) -> None:
    inventory = dev_graph.named("tables-device-inventory")
    assert inventory.inputs["hashKey"] == "thingName"
    assert "rangeKey" not in inventory.inputs
    assert inventory.inputs["attributes"] == [{"name": "thingName", "type": "S"}]


def test_key_policies_grant_no_wildcard_principal(dev_graph: StackGraph) -> None:
    # A key whose policy names a resource made after it (the installer site's key names its
    # distribution) gets it from an aws.kms.KeyPolicy.
    separate = {p.inputs["keyId"]: p.inputs["policy"] for p in dev_graph.of_type("aws:kms/keyPolicy:KeyPolicy")}
    for key in dev_graph.of_type("aws:kms/key:Key") + dev_graph.of_type("aws:kms/replicaKey:ReplicaKey"):
        policy = json.loads(key.inputs.get("policy") or separate[key.outputs["keyId"]])
        for statement in policy["Statement"]:
            principal = statement["Principal"]
            assert principal != "*" and principal.get("AWS") != "*", key.urn


@pytest.mark.parametrize("which", ["dev_graph", "prod_graph"])
def test_logs_may_use_a_key_for_the_stacks_log_groups_only(request: pytest.FixtureRequest, which: str) -> None:
    """Each log group encrypted with a key is one its policy lets CloudWatch Logs serve, and
    another log group of the account is not (any `log-group:*` let anyone holding
    logs:AssociateKmsKey put theirs under our key)."""
    from policy.semantics.globs import matches

    graph: StackGraph = request.getfixturevalue(which)
    keys = {k.outputs["arn"]: json.loads(k.inputs["policy"]) for k in graph.of_type("aws:kms/key:Key")
            if "CloudWatchLogsEncryptsOurLogGroups" in (k.inputs.get("policy") or "")}
    groups = [g for g in graph.of_type("aws:cloudwatch/logGroup:LogGroup") if g.inputs.get("kmsKeyId") in keys]
    assert groups
    for group in groups:
        [statement] = [s for s in keys[group.inputs["kmsKeyId"]]["Statement"]
                       if s.get("Sid") == "CloudWatchLogsEncryptsOurLogGroups"]
        allowed = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        arn = group.outputs["arn"].removesuffix(":*")
        assert any(matches(pattern, arn) for pattern in allowed), (arn, allowed)
        other = arn.rsplit(":log-group:", 1)[0] + ":log-group:/aws/lambda/someone-else"
        assert not any(matches(pattern, other) for pattern in allowed)


def test_exports_name_every_region(dev_graph: StackGraph) -> None:
    regions = configured_regions("dev")
    assert sorted(dev_graph.outputs["regions"]) == sorted(regions)
    for region, data in dev_graph.outputs["regions"].items():
        assert f":dynamodb:{region}:" in data["inventoryTableArn"]
        assert data["inventoryStreamArn"].startswith(data["inventoryTableArn"] + "/stream/")


def test_tags_reach_taggable_resources(dev_graph: StackGraph) -> None:
    for table in dev_graph.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["tags"]["environment"] == "dev"
        assert table.inputs["tags"]["owner"] == "iot-platform"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_caller_of_the_tables_may_use_their_key_here_only(
        stack: str, request: pytest.FixtureRequest) -> None:
    """The tables are encrypted with our CMK and its key policy delegates to IAM: a role
    that reads or writes a table needs kms:Decrypt (and Encrypt/GenerateDataKey to write)
    on *this region's* copy of the key, through DynamoDB only - or every call fails."""
    graph: StackGraph = request.getfixturevalue(f"{stack}_graph")
    key_arns = {r.region: r.outputs["arn"] for r in graph.resources
                if r.type in ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey")
                and "tables" in r.name}
    table_actions = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                     "dynamodb:BatchGetItem", "dynamodb:Query")
    callers = 0
    for policy in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        touched = {r.split(":")[3] for s in statements
                   for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
                   if a in table_actions
                   for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
                   if ":table/" in r}
        for region in touched:
            callers += 1
            grants = [s for s in statements if s.get("Resource") == key_arns[region]]
            assert grants, f"{policy.name} uses the tables in {region} without their key"
            for grant in grants:
                assert grant["Condition"]["StringEquals"]["kms:ViaService"] == \
                    f"dynamodb.{region}.amazonaws.com", policy.name
    assert callers >= 3 * len(key_arns)  # JITR, CVM, fleet hook and recorder per region
