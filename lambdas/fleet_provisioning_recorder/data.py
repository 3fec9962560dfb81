"""AWS access of the recorder: AWS IoT (read only) and the two tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.inventory import TABLE_KEY, InventoryItem, plain_put_request

from .logic import Claim, Committed


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

    def attach_exclusively(self, claim: Claim) -> bool:
        """AttachThingPrincipal with EXCLUSIVE_THING on the attachment the template made: AWS
        IoT refuses it (InvalidRequestException) while the certificate is attached to any
        other thing, and afterwards refuses any other attachment."""
        arn = self.client.describe_certificate(
            certificateId=claim.certificate_id)["certificateDescription"]["certificateArn"]
        try:
            self.client.attach_thing_principal(thingName=claim.serial, principal=arn,
                                               thingPrincipalType="EXCLUSIVE_THING")
        except ClientError as err:
            if _code(err) == "InvalidRequestException":
                return False
            raise
        return True

    def evict(self, claim: Claim) -> None:
        """Deactivate first (unusable at once), then detach; idempotent for replays."""
        try:
            arn = self.client.describe_certificate(
                certificateId=claim.certificate_id)["certificateDescription"]["certificateArn"]
            self.client.update_certificate(certificateId=claim.certificate_id,
                                           newStatus="INACTIVE")
            self.client.detach_thing_principal(thingName=claim.serial, principal=arn)
        except ClientError as err:
            if _code(err) not in ("ResourceNotFoundException", "CertificateStateException"):
                raise  # REVOKED already (final) or gone: nothing left to end


@dataclass
class DynamoInventory:
    table: Any  # boto3 DynamoDB Table resource of this region's inventory replica
    provisioning_table: str  # name of this region's provisioning replica (the allow-list)

    def get(self, thing_name: str) -> InventoryItem | None:
        """The item, checked against the contract (ContractViolation: the record fails and
        is retried, then dead-lettered: a broken item is never built upon)."""
        item = self.table.get_item(Key={TABLE_KEY: thing_name}, ConsistentRead=True).get("Item")
        return InventoryItem.from_plain(item) if item else None

    def put(self, item: InventoryItem, replaces: InventoryItem | None, claim: Claim,
            now: dt.datetime) -> str:
        """TransactWriteItems (both tables are this region's replicas): the inventory item
        over the version read, the entry CLAIMED -> PROVISIONED by this certificate, and the
        certificate's record naming this serial. Any condition failing writes nothing."""
        transaction = [
            {"Put": {"TableName": self.table.name, **plain_put_request(item, replaces=replaces)}},
            {"Update": {"TableName": self.provisioning_table, **_settle(claim, State.PROVISIONED,
                                                                       now)}},
            {"ConditionCheck": {
                "TableName": self.provisioning_table,
                "Key": allow_list.certificate_key(claim.certificate_id),
                "ConditionExpression": "#kind = :kind AND #serial = :serial",
                "ExpressionAttributeNames": {"#kind": Attr.KIND, "#serial": Attr.SERIAL_NUMBER},
                "ExpressionAttributeValues": {":kind": allow_list.CERTIFICATE_KIND,
                                              ":serial": claim.serial}}},
        ]
        try:
            self.table.meta.client.transact_write_items(TransactItems=transaction)
        except ClientError as err:
            if _code(err) != "TransactionCanceledException":
                raise
            reasons = [str(r.get("Code", "None"))
                       for r in err.response.get("CancellationReasons", [])]
            if len(reasons) == 3 and reasons[0] == "ConditionalCheckFailed" \
                    and reasons[1:] == ["None", "None"]:
                return Committed.ITEM_CHANGED
            if "ConditionalCheckFailed" in reasons[1:]:
                return Committed.STALE_CLAIM
            raise  # a conflict with another transaction: the record is retried
        return Committed.WRITTEN


def _settle(claim: Claim, state: str, now: dt.datetime) -> dict[str, Any]:
    """UpdateItem arguments (resource API types): the entry from this claim to `state`."""
    return {
        "Key": allow_list.key(claim.serial),
        "UpdateExpression": "SET #state = :state, #settledAt = :now, #cert = :cert",
        "ConditionExpression": "#state = :claimed AND #claimCert = :cert",
        "ExpressionAttributeNames": {"#state": Attr.STATE, "#settledAt": Attr.SETTLED_AT,
                                     "#cert": Attr.CERTIFICATE_ID,
                                     "#claimCert": Attr.CLAIM_CERTIFICATE_ID},
        "ExpressionAttributeValues": {":state": state, ":now": allow_list.timestamp(now),
                                      ":claimed": State.CLAIMED, ":cert": claim.certificate_id}}


@dataclass
class DynamoAllowList:
    table: Any  # boto3 DynamoDB Table resource of this region's provisioning replica

    def holder(self, serial: str) -> str | None:
        entry = self.table.get_item(Key=allow_list.key(serial), ConsistentRead=True).get("Item")
        if not entry or entry.get(Attr.KIND) != allow_list.KIND:
            return None
        holder = entry.get(Attr.CLAIM_CERTIFICATE_ID)
        return str(holder) if holder else None

    def settle(self, claim: Claim, state: str, now: dt.datetime) -> None:
        try:
            self.table.update_item(**_settle(claim, state, now))
        except ClientError as err:
            if _code(err) != "ConditionalCheckFailedException":
                raise  # else: settled already (a replayed record) or re-claimed since
