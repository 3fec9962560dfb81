"""AWS access of the shadow replication: the device-data table (shadow records only), this
region's Device Shadow service, the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.contracts.organisation import SORT_KEY as ORGANISATION_SORT_KEY
from lambdas.contracts.organisation import (
    APPLIED_PREFIX,
    AppliedLog,
    LocalOrganisation,
    OrganisationRecord,
)
from lambdas.contracts.shadows import Attr, ShadowRecord, partition_key, sort_key, update_request

from .logic import LocalShadow, VersionConflict


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@dataclass
class DynamoShadowTable:
    table: Any  # boto3 dynamodb Table (resource API)

    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None:
        item = self.table.get_item(
            Key={Attr.PK: partition_key(thing_name), Attr.SK: sort_key(shadow_name)},
            ConsistentRead=True).get("Item")
        return None if item is None else ShadowRecord.from_plain(item)

    def put(self, record: ShadowRecord, expected_version: int | None) -> bool:
        return conditional_put(self.table, record.to_plain(), expected_version)


def conditional_put(table: Any, item: Mapping[str, Any], expected_version: int | None) -> bool:
    """PutItem if the item's version is still the one read (None: absent); False if not."""
    condition = ({"ConditionExpression": "attribute_not_exists(#pk)",
                  "ExpressionAttributeNames": {"#pk": Attr.PK}}
                 if expected_version is None else
                 {"ConditionExpression": "#v = :read",
                  "ExpressionAttributeNames": {"#v": Attr.VERSION},
                  "ExpressionAttributeValues": {":read": expected_version}})
    try:
        table.put_item(Item=dict(item), **condition)
    except ClientError as err:
        if _code(err) == "ConditionalCheckFailedException":
            return False
        raise
    return True


@dataclass
class DynamoOrganisationTable:
    table: Any  # boto3 dynamodb Table (resource API)

    def get(self, thing_name: str) -> OrganisationRecord | None:
        item = self.table.get_item(
            Key={Attr.PK: partition_key(thing_name), Attr.SK: ORGANISATION_SORT_KEY},
            ConsistentRead=True).get("Item")
        return None if item is None else OrganisationRecord.from_plain(item)

    def put(self, record: OrganisationRecord, expected_version: int | None) -> bool:
        return conditional_put(self.table, record.to_plain(), expected_version)


@dataclass
class DynamoAppliedLog:
    """This region's applied log of one thing (`sk` = `applied#<region>`)."""

    table: Any  # boto3 dynamodb Table (resource API)
    region: str

    def get(self, thing_name: str) -> AppliedLog:
        item = self.table.get_item(
            Key={Attr.PK: partition_key(thing_name), Attr.SK: APPLIED_PREFIX + self.region},
            ConsistentRead=True).get("Item")
        return AppliedLog(thing_name, self.region) if item is None \
            else AppliedLog.from_plain(item, thing_name, self.region)

    def put(self, log: AppliedLog) -> bool:
        """Write `log` if the item is still the version it was read at (one less)."""
        return conditional_put(self.table, log.to_plain(),
                               None if log.version == 1 else log.version - 1)


@dataclass
class IotRegistry:
    """This region's registry (the iot control-plane client)."""

    client: Any

    def describe(self, thing_name: str) -> LocalOrganisation | None:
        try:
            thing = self.client.describe_thing(thingName=thing_name)
        except ClientError as err:
            if _code(err) == "ResourceNotFoundException":
                return None
            raise
        groups: set[str] = set()
        kwargs: dict[str, Any] = {"thingName": thing_name}
        while True:
            page = self.client.list_thing_groups_for_thing(**kwargs)
            groups.update(g["groupName"] for g in page.get("thingGroups", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        return LocalOrganisation(attributes=dict(thing.get("attributes") or {}),
                                 thing_type=thing.get("thingTypeName") or "",
                                 groups=frozenset(groups))

    def describe_thing(self, thing_name: str, attributes: Mapping[str, str], thing_type: str,
                       had_type: bool) -> None:
        # One call (attributes replaced, merge false, with the type): the registry publishes
        # one `updated` event equal to the record, which the capture drops (no echo); the
        # attribute quota holds for the result (3 without a type, 50 with one).
        kwargs: dict[str, Any] = {"thingName": thing_name, "attributePayload": {
            "attributes": dict(attributes), "merge": False}}
        if thing_type:
            kwargs["thingTypeName"] = thing_type
        elif had_type:
            kwargs["removeThingType"] = True
        self.client.update_thing(**kwargs)

    def join(self, thing_name: str, group: str) -> None:
        self.client.add_thing_to_thing_group(thingName=thing_name, thingGroupName=group)

    def leave(self, thing_name: str, group: str) -> None:
        self.client.remove_thing_from_thing_group(thingName=thing_name, thingGroupName=group)


def _shadow_name(shadow_name: str) -> dict[str, str]:
    return {"shadowName": shadow_name} if shadow_name else {}


@dataclass
class IotShadows:
    client: Any  # botocore iot-data client on this region's data endpoint

    def get(self, thing_name: str, shadow_name: str) -> LocalShadow | None:
        try:
            response = self.client.get_thing_shadow(thingName=thing_name,
                                                    **_shadow_name(shadow_name))
        except ClientError as err:
            if _code(err) == "ResourceNotFoundException":
                return None
            raise
        document = json.loads(response["payload"].read())
        state = document.get("state") or {}
        return LocalShadow(state={k: v for k, v in state.items()
                                  if k in ("desired", "reported")},
                           version=int(document.get("version", 0)))

    def update(self, thing_name: str, shadow_name: str, state: Mapping[str, Any],
               expected_version: int | None, client_token: str) -> None:
        payload = update_request(state, client_token, expected_version)
        try:
            self.client.update_thing_shadow(thingName=thing_name, payload=payload,
                                            **_shadow_name(shadow_name))
        except ClientError as err:
            if _code(err) == "ConflictException":
                raise VersionConflict(f"{thing_name}/{shadow_name or 'classic'}") from None
            raise

    def delete(self, thing_name: str, shadow_name: str) -> bool:
        try:
            self.client.delete_thing_shadow(thingName=thing_name, **_shadow_name(shadow_name))
        except ClientError as err:
            if _code(err) == "ResourceNotFoundException":
                return False
            raise
        return True


@dataclass
class DeadLetters:
    client: Any  # botocore SQS client
    queue_url: str

    def send(self, reason: str, payload: Any) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(
            {"reason": reason, "payload": payload}, default=str, sort_keys=True))
