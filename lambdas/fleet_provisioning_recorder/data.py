"""AWS access of the recorder: AWS IoT (read only) and the two tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .logic import CLAIMED, KEY_PREFIX, Claim, Write, iso


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@dataclass
class IotRegistry:
    client: Any  # botocore IoT client

    def provisioned(self, claim: Claim) -> bool:
        try:
            description = self.client.describe_certificate(
                certificateId=claim.certificate_id)["certificateDescription"]
            if description.get("status") != "ACTIVE":
                return False
            principals = self.client.list_thing_principals(thingName=claim.serial)["principals"]
        except ClientError as err:
            if _code(err) == "ResourceNotFoundException":
                return False  # no certificate or no thing yet
            raise
        return description.get("certificateArn") in principals


@dataclass
class DynamoInventory:
    table: Any  # boto3 DynamoDB Table resource of this region's inventory replica

    def get(self, thing_name: str) -> Mapping[str, Any] | None:
        item = self.table.get_item(Key={"thingName": thing_name}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def put(self, write: Write) -> bool:
        assert write.item is not None
        if write.kind == "CREATE":
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(thingName)"}
        elif write.kind == "REVIVE":
            condition = {
                "ConditionExpression": "version = :expected AND #status = :deleted",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":expected": write.expected_version,
                                              ":deleted": "DELETED"},
            }
        else:
            raise ValueError(f"nothing to put for {write.kind}")
        try:
            self.table.put_item(Item=dict(write.item), **condition)
        except ClientError as err:
            if _code(err) == "ConditionalCheckFailedException":
                return False
            raise
        return True


@dataclass
class DynamoAllowList:
    table: Any  # boto3 DynamoDB Table resource of this region's provisioning replica

    def settle(self, claim: Claim, state: str, now: dt.datetime) -> None:
        try:
            self.table.update_item(
                Key={"deviceUid": f"{KEY_PREFIX}{claim.serial}"},
                UpdateExpression="SET #state = :state, settledAt = :now, certificateId = :cert",
                ConditionExpression="#state = :claimed AND claimCertificateId = :cert",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":state": state, ":now": iso(now),
                                           ":claimed": CLAIMED, ":cert": claim.certificate_id})
        except ClientError as err:
            if _code(err) != "ConditionalCheckFailedException":
                raise  # else: settled already (a replayed record) or re-claimed since
