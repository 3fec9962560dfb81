"""DynamoDB access for the hook, bounded by a deadline.

AWS IoT gives a pre-provisioning hook 5 seconds, cold start included ("Pre-provisioning
hooks", AWS IoT developer guide); a hook that has not answered by then fails the request.
So every call here has short socket timeouts, botocore's own retries are off, and we retry
at most once, and only when the time left still covers a whole attempt. When the budget is
spent the store raises `StoreUnavailable` and the hook denies — inside the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts import inventory
from lambdas.contracts.fleet_allow_list import Attr, State

from .logic import Claim, Records, StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 0.4
READ_TIMEOUT_SECONDS = 0.8
# Worst case of one attempt; an attempt starts only if at least this much time is left.
ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS + 0.1
MAX_ATTEMPTS = 2

# Short timeouts, no hidden retries (their back-off sleeps would blow the budget).
CLIENT_CONFIG = Config(connect_timeout=CONNECT_TIMEOUT_SECONDS,
                       read_timeout=READ_TIMEOUT_SECONDS,
                       retries={"total_max_attempts": 1, "mode": "standard"},
                       tcp_keepalive=True)

_RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
})
_NETWORK_ERRORS = (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError,
                   ConnectionClosedError)

T = TypeVar("T")


class Deadline:
    """Monotonic time left for this invocation's table work."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()


def bounded(deadline: Deadline, call: Callable[[], T]) -> T:
    """`call()` with at most MAX_ATTEMPTS attempts, each only if a whole one still fits."""
    last: Exception | None = None
    for _ in range(MAX_ATTEMPTS):
        if deadline.remaining() < ATTEMPT_SECONDS:
            break
        try:
            return call()
        except _NETWORK_ERRORS as err:
            last = err
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in _RETRYABLE_CODES:
                raise
            last = err
    raise StoreUnavailable(f"no answer within the budget: {last!r}")


_DESERIALIZER = TypeDeserializer()


def _certificate_key(certificate_id: str) -> str:
    return allow_list.certificate_key(certificate_id)[allow_list.TABLE_KEY]


def _claim_key(claim_certificate_id: str) -> str:
    return allow_list.claim_key(claim_certificate_id)[allow_list.TABLE_KEY]


def _held(item: Mapping[str, Any] | None) -> str | None:
    return None if item is None else str(item.get(Attr.SERIAL_NUMBER, ""))


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value map) as plain Python values."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


@dataclass
class DynamoAllowList:
    """The allow-list (provisioning table, `fleet#` items) and the inventory of one region."""

    client: Any  # botocore DynamoDB client built with CLIENT_CONFIG
    provisioning_table: str
    inventory_table: str
    region: str
    deadline: Deadline

    def read(self, serial: str, certificate_id: str, claim_certificate_id: str) -> Records:
        """The entry, the serials the certificate and the claim certificate already hold and
        the device, in one round trip (BatchGetItem over two tables), strongly consistent.
        The inventory item is checked against its contract (ContractViolation), the
        certificates' records against theirs (`Records.holding_problems`)."""
        entry_key = allow_list.entry_key(serial)
        holding_keys = (_certificate_key(certificate_id), _claim_key(claim_certificate_id))
        request = {
            self.provisioning_table: {
                "Keys": [{allow_list.TABLE_KEY: {"S": key}} for key in (entry_key, *holding_keys)],
                "ConsistentRead": True},
            self.inventory_table: {"Keys": [{inventory.TABLE_KEY: {"S": serial}}],
                                   "ConsistentRead": True},
        }
        response = bounded(self.deadline, lambda: self.client.batch_get_item(RequestItems=request))
        if response.get("UnprocessedKeys"):
            raise StoreUnavailable("the table left keys unprocessed (throttled)")
        found = response.get("Responses", {})
        items = {str(i[allow_list.TABLE_KEY]): i
                 for i in map(_plain, found.get(self.provisioning_table, []))}
        devices = [inventory.InventoryItem.from_attribute_values(i)
                   for i in found.get(self.inventory_table, [])]
        certificate, claim = (items.get(key) for key in holding_keys)
        problems = tuple(f"{item[allow_list.TABLE_KEY]}: {problem}"
                         for item in (certificate, claim) if item is not None
                         for problem in allow_list.holding_problems(item))
        return Records(allow_list=items.get(entry_key),
                       inventory=devices[0] if devices else None,
                       certificate_serial=_held(certificate), claim_serial=_held(claim),
                       holding_problems=problems)

    def claim(self, claim: Claim) -> bool:
        """One transaction: the inventory still has no live device under the serial, the
        allow-list entry still permits this claim, and neither the certificate nor the claim
        certificate holds another serial; then it records the claim and that both hold this
        serial."""
        transaction = [
            {"ConditionCheck": {
                "TableName": self.inventory_table,
                "Key": {inventory.TABLE_KEY: {"S": claim.serial}},
                "ConditionExpression": "attribute_not_exists(#key) OR #status = :deleted",
                "ExpressionAttributeNames": {"#key": inventory.TABLE_KEY,
                                             "#status": inventory.Attr.STATUS},
                "ExpressionAttributeValues": {":deleted": {"S": inventory.Status.DELETED}},
            }},
            {"Update": {
                "TableName": self.provisioning_table,
                "Key": {allow_list.TABLE_KEY: {"S": allow_list.entry_key(claim.serial)}},
                "UpdateExpression": (
                    "SET #state = :claimed, #cert = :cert, #pem = :pem, #client = :client, "
                    "#claimedAt = :now, #region = :region"),
                "ConditionExpression": (
                    "#kind = :kind AND #enabled = :true AND (attribute_not_exists(#state) "
                    "OR #state = :allowed OR (#state = :claimed AND "
                    "(#cert = :cert OR (#claimedAt < :stale AND #region = :region))))"),
                "ExpressionAttributeNames": {
                    "#state": Attr.STATE, "#kind": Attr.KIND, "#enabled": Attr.ENABLED,
                    "#cert": Attr.CLAIM_CERTIFICATE_ID, "#pem": Attr.CLAIM_CERTIFICATE_PEM,
                    "#client": Attr.CLAIM_CLIENT_ID, "#claimedAt": Attr.CLAIMED_AT,
                    "#region": Attr.CLAIM_REGION},
                "ExpressionAttributeValues": {
                    ":claimed": {"S": State.CLAIMED}, ":allowed": {"S": State.ALLOWED},
                    ":kind": {"S": allow_list.KIND}, ":true": {"BOOL": True},
                    ":cert": {"S": claim.certificate_id}, ":pem": {"S": claim.certificate_pem},
                    ":client": {"S": claim.client_id},
                    ":now": {"S": allow_list.timestamp(claim.claimed_at)},
                    ":stale": {"S": allow_list.timestamp(claim.stale_before)},
                    ":region": {"S": self.region},
                },
            }},
            _holding(self.provisioning_table, _certificate_key(claim.certificate_id),
                     allow_list.CERTIFICATE_KIND, claim),
            _holding(self.provisioning_table, _claim_key(claim.claim_certificate_id),
                     allow_list.CLAIM_KIND, claim),
        ]
        try:
            bounded(self.deadline, lambda: self.client.transact_write_items(
                TransactItems=transaction))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False  # a condition failed: someone else changed the entry or device
            raise StoreUnavailable(f"claim write failed: {err!r}") from None
        return True


def _holding(table: str, key: str, kind: str, claim: Claim) -> dict[str, Any]:
    """A transaction item: the record `key` (a certificate's or a claim certificate's) holds
    the claim's serial, only if it holds none yet or this one (holding_problems states it)."""
    return {"Update": {
        "TableName": table,
        "Key": {allow_list.TABLE_KEY: {"S": key}},
        "UpdateExpression": "SET #kind = :kind, #serial = :serial, #claimedAt = :now",
        "ConditionExpression": "attribute_not_exists(#key) OR #serial = :serial",
        "ExpressionAttributeNames": {"#key": allow_list.TABLE_KEY, "#kind": Attr.KIND,
                                     "#serial": Attr.SERIAL_NUMBER,
                                     "#claimedAt": Attr.CLAIMED_AT},
        "ExpressionAttributeValues": {
            ":kind": {"S": kind},
            ":serial": {"S": claim.serial},
            ":now": {"S": allow_list.timestamp(claim.claimed_at)}},
    }}


@dataclass
class IotRegistry:
    """AWS IoT's registry of this region, read only when a stale claim made in this region
    would be replaced (ListThingPrincipals, then DescribeCertificate), within the same
    deadline; another region's claim is never passed on here (logic.check)."""

    client: Any  # botocore IoT client built with CLIENT_CONFIG
    deadline: Deadline

    def holds_device(self, serial: str, certificate_id: str) -> bool:
        try:
            principals = bounded(self.deadline, lambda: self.client.list_thing_principals(
                thingName=serial)).get("principals", [])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise StoreUnavailable(f"registry read failed: {err!r}") from None
            principals = []  # no thing: the template never created it
        if principals:
            return True
        try:
            description = bounded(self.deadline, lambda: self.client.describe_certificate(
                certificateId=certificate_id))["certificateDescription"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False  # AWS IoT deleted the never-provisioned certificate
            raise StoreUnavailable(f"registry read failed: {err!r}") from None
        return description.get("status") == "ACTIVE"  # the template activated it
