"""AWS access of the recorder: AWS IoT (read only) and the two tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.inventory import TABLE_KEY, InventoryItem, plain_put_request

from .logic import Claim


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

    def get(self, thing_name: str) -> InventoryItem | None:
        """The item, checked against the contract (ContractViolation: the record fails and
        is retried, then dead-lettered: a broken item is never built upon)."""
        item = self.table.get_item(Key={TABLE_KEY: thing_name}, ConsistentRead=True).get("Item")
        return InventoryItem.from_plain(item) if item else None

    def put(self, item: InventoryItem, replaces: InventoryItem | None) -> bool:
        try:
            self.table.put_item(**plain_put_request(item, replaces=replaces))
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
                Key=allow_list.key(claim.serial),
                UpdateExpression="SET #state = :state, #settledAt = :now, #cert = :cert",
                ConditionExpression="#state = :claimed AND #claimCert = :cert",
                ExpressionAttributeNames={"#state": Attr.STATE, "#settledAt": Attr.SETTLED_AT,
                                          "#cert": Attr.CERTIFICATE_ID,
                                          "#claimCert": Attr.CLAIM_CERTIFICATE_ID},
                ExpressionAttributeValues={":state": state, ":now": allow_list.timestamp(now),
                                           ":claimed": State.CLAIMED,
                                           ":cert": claim.certificate_id})
        except ClientError as err:
            if _code(err) != "ConditionalCheckFailedException":
                raise  # else: settled already (a replayed record) or re-claimed since
