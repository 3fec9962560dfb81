"""The operators' evacuation policy: only the stack's controls may be flipped."""

from __future__ import annotations

import json
from typing import Any

from components.edge.evacuation import RegionEvacuation, evacuation_operator_policy
from tests.support.stacks import configured_regions
from tools.harness import StackGraph


def test_only_the_controls_may_be_updated_and_only_this_stack_s_clients_disconnected() -> None:
    regions = [RegionEvacuation("eu-west-1", ["c1"], ["h1"], "arn:aws:dynamodb:eu-west-1:1:table/inv",
                                "arn:aws:kms:eu-west-1:1:key/k", "app-dev-device"),
               RegionEvacuation("us-west-2", ["c2", "c3"], ["h2"], "arn:aws:dynamodb:us-west-2:1:table/inv",
                                "arn:aws:kms:us-west-2:1:key/k", "app-dev-device")]
    statements = {s["Sid"]: s for s in json.loads(evacuation_operator_policy("aws", "1", regions))["Statement"]}
    assert statements["FlipEvacuationControls"]["Action"] == ["route53:UpdateHealthCheck"]
    assert statements["FlipEvacuationControls"]["Resource"] == [
        "arn:aws:route53:::healthcheck/c1", "arn:aws:route53:::healthcheck/c2", "arn:aws:route53:::healthcheck/c3"]
    assert "arn:aws:route53:::healthcheck/h1" in statements["ReadRegionHealth"]["Resource"]
    assert statements["MoveConnectedDevices"]["Resource"] == [
        "arn:aws:iot:eu-west-1:1:client/*", "arn:aws:iot:us-west-2:1:client/*"]
    updating = [s for s in statements.values() if any("Update" in a or "Delete" in a for a in s["Action"])]
    assert {s["Sid"] for s in updating} == {"FlipEvacuationControls", "MoveConnectedDevices"}
    assert all(s["Resource"] != ["*"] for s in updating)


def _statements(graph: StackGraph) -> dict[str, dict[str, Any]]:
    [policy] = [p for p in graph.of_type("aws:iam/policy:Policy") if p.name == "evacuation-operator"]
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


def test_the_policy_decrypts_with_the_key_the_inventory_is_encrypted_with(dev_graph: StackGraph) -> None:
    # The tables use their own multi-region key, not the region's CMK for logs and queues:
    # a Scan with the wrong key is refused by KMS on AWS (the emulation does not check KMS).
    [inventory] = [t for t in dev_graph.of_type("aws:dynamodb/table:Table") if "inventory" in t.name]
    table_keys = {inventory.inputs["serverSideEncryption"]["kmsKeyArn"],
                  *(r["kmsKeyArn"] for r in inventory.inputs["replicas"])}
    statements = _statements(dev_graph)
    decrypting = {key for sid, s in statements.items() if sid.startswith("DecryptInventory")
                  for key in s["Resource"]}
    assert decrypting == table_keys and len(table_keys) == len(configured_regions("dev"))


def test_the_restore_s_backfill_may_repair_through_what_reconcile_uses(dev_graph: StackGraph) -> None:
    statements = _statements(dev_graph)
    machines = [m for m in dev_graph.of_type("aws:sfn/stateMachine:StateMachine") if m.name.endswith("-replication-machine")]
    assert statements["RepairThroughReplicationMachines"]["Action"] == ["states:StartSyncExecution"]
    assert statements["RepairThroughReplicationMachines"]["Resource"] == sorted(
        str(m.outputs["arn"]) for m in machines) and len(machines) == len(configured_regions("dev"))
    # The device state is converged as the function does it: only shadow# records.
    for i, _ in enumerate(configured_regions("dev")):
        records = statements[f"ShadowRecords{i}"]
        assert records["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["shadow#*"]


def test_backfill_statements_only_for_regions_running_the_capabilities() -> None:
    regions = [RegionEvacuation("eu-west-1", ["c1"], ["h1"], "arn:aws:dynamodb:eu-west-1:1:table/inv",
                                "arn:aws:kms:eu-west-1:1:key/k", "app-dev-device",
                                replication_machine_arn="arn:aws:states:eu-west-1:1:stateMachine:m",
                                device_data_table_arn="arn:aws:dynamodb:eu-west-1:1:table/data"),
               RegionEvacuation("us-west-2", ["c2"], ["h2"], "arn:aws:dynamodb:us-west-2:1:table/inv",
                                "arn:aws:kms:us-west-2:1:key/k", "app-dev-device")]
    document = json.loads(evacuation_operator_policy("aws", "1", regions))["Statement"]
    sids = [s["Sid"] for s in document]
    assert len(sids) == len(set(sids))  # IAM refuses a policy with a repeated Sid
    statements = {s["Sid"]: s for s in document}
    assert statements["RepairThroughReplicationMachines"]["Resource"] == ["arn:aws:states:eu-west-1:1:stateMachine:m"]
    shadow_resources = [s["Resource"] for sid, s in statements.items() if sid.startswith("ThisRegionsShadows")]
    assert shadow_resources == ["arn:aws:iot:eu-west-1:1:thing/*"]
