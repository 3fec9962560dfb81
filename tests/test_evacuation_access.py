"""The operators' evacuation policy: only the stack's controls may be flipped."""

from __future__ import annotations

import json

from components.edge.evacuation import RegionEvacuation, evacuation_operator_policy


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
