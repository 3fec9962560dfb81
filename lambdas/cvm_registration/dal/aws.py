"""boto3 implementations of the ports. Every botocore error becomes `AwsFailure` (operation
and code only) or the specific refusal the flow asked for (`ClaimRefused`, `CommitRefused`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts import inventory
from lambdas.contracts import cvm_device
from lambdas.contracts.cvm_device import Attr
from lambdas.contracts.inventory import ContractViolation, InventoryItem, Issuer, Onboarding

from ..logic.tokens import SaltBook, SaltBookError
from .ports import (
    CERTIFICATE_REVOKED,
    CLAIMED,
    REGISTERED,
    UNREGISTERED,
    AwsFailure,
    Certificate,
    Claim,
    ClaimRefused,
    CommitRefused,
    DeviceRecord,
    NewInventoryVersion,
)

# Short timeouts, few retries: a device waits for the answer; the flow undoes and says 503
# rather than outliving the function timeout.
BOTO_CONFIG = BotoConfig(connect_timeout=2, read_timeout=5,
                         retries={"mode": "standard", "max_attempts": 3})

T = TypeVar("T")
Item = dict[str, Any]
_LOG = logging.getLogger(__name__)


def call(operation: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ClientError as error:
        raise AwsFailure(operation, str(error.response.get("Error", {}).get("Code"))) from None
    except BotoCoreError as error:
        raise AwsFailure(operation, type(error).__name__) from None


# TransactWriteItems' ClientRequestToken: 1 to 36 characters (DynamoDB refuses a longer one
# with a ValidationException; moto does not check).
REQUEST_TOKEN_MAX = 36


def request_token(purpose: str, unique: str) -> str:
    """A ClientRequestToken DynamoDB accepts, the same for the same `purpose` and `unique`."""
    return f"{purpose}-{hashlib.sha256(unique.encode()).hexdigest()}"[:REQUEST_TOKEN_MAX]


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- DynamoDB attribute values --------------------------------------------------------------

def record_from_item(item: Item) -> DeviceRecord:
    def number(name: str) -> int | None:
        text = cvm_device.value(item, name)
        return int(text) if text is not None else None

    return DeviceRecord(
        device_uid=cvm_device.value(item, Attr.DEVICE_UID) or "",
        batch=cvm_device.value(item, Attr.BATCH),
        salt_version=number(Attr.SALT_VERSION),
        device_uid_2=cvm_device.value(item, Attr.DEVICE_UID_2),
        # Stored as a DynamoDB BOOL; anything else (the seed's "1" strings) is not enabled.
        enabled=cvm_device.value(item, Attr.ENABLED) is True,
        state=cvm_device.value(item, Attr.STATE) or UNREGISTERED,
        claim_id=cvm_device.value(item, Attr.CLAIM_ID),
        claimed_at_ms=number(Attr.CLAIMED_AT),
        attempts=number(Attr.ATTEMPTS) or 0,
        thing_name=cvm_device.value(item, Attr.THING_NAME),
        certificate_id=cvm_device.value(item, Attr.CERTIFICATE_ID),
        reopened_from=cvm_device.value(item, Attr.REOPENED_FROM),
        previous_certificate_id=cvm_device.value(item, Attr.PREVIOUS_CERTIFICATE_ID),
    )


def claim_request(table: str, inventory_table: str, thing_name: str,
                  claim: Claim) -> list[dict[str, Any]]:
    """The conditional claim, one transaction of two items:

    * the record: known, enabled, of the batch and salt version the token proved, with the
      second identifier it was imported with, and unregistered, or held by a claim so old its
      invocation is dead (a claim of another region only after `foreign_stale_before_ms`:
      a region never takes over a claim it cannot see the outcome of within replication);
    * the inventory item of the thing: none, or neither ACTIVE nor REVOKED. Items replicate
      one by one, so in a region where the device's item has arrived before its record, the
      record still reads UNREGISTERED: this check refuses there and the refusal writes
      nothing (issue 20).
    """
    second = ("#uid2 = :uid2" if claim.device_uid_2 is not None
              else "attribute_not_exists(#uid2)")
    values: dict[str, Any] = {
        ":claimed": {"S": CLAIMED}, ":unregistered": {"S": UNREGISTERED},
        ":claim": {"S": claim.claim_id}, ":now": {"N": str(claim.now_ms)},
        ":stale": {"N": str(claim.stale_before_ms)},
        ":foreignStale": {"N": str(claim.foreign_stale_before_ms)},
        ":region": {"S": claim.region},
        ":batch": {"S": claim.salt.batch}, ":version": {"N": str(claim.salt.version)},
        ":true": {"BOOL": True}, ":one": {"N": "1"},
    }
    if claim.device_uid_2 is not None:
        values[":uid2"] = {"S": claim.device_uid_2}
    update = ("SET #state = :claimed, #claim = :claim, #claimedAt = :now, "
              "#claimRegion = :region ADD #attempts :one")
    condition = ("attribute_exists(#uid) AND #batch = :batch AND #version = :version "
                 "AND #enabled = :true AND (#state = :unregistered OR "
                 "(#state = :claimed AND ((#claimRegion = :region AND #claimedAt < :stale) "
                 "OR #claimedAt < :foreignStale))) AND " + second)
    record = {
        "TableName": table,
        "Key": cvm_device.key(claim.device_uid),
        **cvm_device.expressions(update, condition),
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    item = {
        "TableName": inventory_table,
        "Key": {inventory.TABLE_KEY: {"S": thing_name}},
        "ConditionExpression": ("attribute_not_exists(#thing) OR "
                                "(#status <> :active AND #status <> :revoked)"),
        "ExpressionAttributeNames": {"#thing": inventory.TABLE_KEY,
                                     "#status": inventory.Attr.STATUS},
        "ExpressionAttributeValues": {":active": {"S": inventory.Status.ACTIVE},
                                      ":revoked": {"S": inventory.Status.REVOKED}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    return [{"ConditionCheck": item}, {"Update": record}]


def inventory_write(table: str, version: NewInventoryVersion) -> dict[str, Any]:
    """The inventory item (lambdas/contracts/inventory.py) as a transaction `Put`: the first
    version (only if no item exists) or the next version of the item read (only if it is
    still the version read)."""
    cert = version.certificate
    previous = version.previous
    fields = {"certificate_id": cert.certificate_id, "certificate_pem": cert.pem,
              "issuer": Issuer.AMAZON, "onboarding": Onboarding.CVM,
              "not_after": version.not_after}
    if previous is None:
        item = InventoryItem.first(thing_name=version.thing_name, region=version.writer_region,
                                   updated_at=version.updated_at, **fields)
    else:
        item = previous.changed(writer_region=version.writer_region,
                                updated_at=version.updated_at, status=inventory.Status.ACTIVE,
                                revoke=version.revoke, **fields)
    return {"Put": inventory.put_request(table, item, replaces=previous)}


class DynamoDeviceTables:
    def __init__(self, client: Any, *, provisioning_table: str, inventory_table: str) -> None:
        self._ddb = client
        self._records = provisioning_table
        self._inventory = inventory_table

    def claim(self, thing_name: str, claim: Claim) -> DeviceRecord:
        """The claimed record as written (read back consistently: a transaction returns no
        attributes), or ClaimRefused with the record as it was."""
        try:
            self._ddb.transact_write_items(
                TransactItems=claim_request(self._records, self._inventory, thing_name, claim),
                ClientRequestToken=request_token("claim", claim.claim_id))
        except ClientError as error:
            if _code(error) == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons", [])
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    old: Any = reasons[1].get("Item") if len(reasons) > 1 else None
                    record = record_from_item(old) if old else None
                    held = reasons[0].get("Code") == "ConditionalCheckFailed"
                    claimable = len(reasons) > 1 and reasons[1].get("Code") in (None, "None")
                    raise ClaimRefused(record, inventory=held, claimable=claimable,
                                       item=self._item_or_none(reasons[0].get("Item"))
                                       if held else None) from None
            raise AwsFailure("TransactWriteItems(claim)", _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure("TransactWriteItems(claim)", type(error).__name__) from None
        record = self.read_record(claim.device_uid)
        if record is None or record.claim_id != claim.claim_id:
            raise AwsFailure("GetItem(record)", "ClaimNotVisible")
        return record

    def release(self, device_uid: str, claim_id: str) -> bool:
        """Give the record back (only while it is still our claim): False when it was not
        ours (any more)."""
        update = "SET #state = :unregistered REMOVE #claim, #claimedAt, #claimRegion"
        # Only our claim, and only while claimed: a revocation (or anything an operator wrote
        # meanwhile) is never turned back into UNREGISTERED.
        condition = "#claim = :claim AND #state = :claimed"
        try:
            self._ddb.update_item(
                TableName=self._records, Key=cvm_device.key(device_uid),
                **cvm_device.expressions(update, condition),
                ExpressionAttributeValues={":unregistered": {"S": UNREGISTERED},
                                           ":claim": {"S": claim_id}, ":claimed": {"S": CLAIMED}})
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False  # no longer ours: nothing to give back
            raise AwsFailure("UpdateItem(release)", _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure("UpdateItem(release)", type(error).__name__) from None
        return True

    def read_record(self, device_uid: str) -> DeviceRecord | None:
        answer = call("GetItem(record)", lambda: self._ddb.get_item(
            TableName=self._records, Key=cvm_device.key(device_uid), ConsistentRead=True))
        return record_from_item(answer["Item"]) if "Item" in answer else None

    def read_inventory(self, thing_name: str) -> InventoryItem | None:
        """The item, checked against its contract: a broken item is never built upon (the
        flow answers 503 and undoes; the error code names the contract)."""
        answer = call("GetItem(inventory)", lambda: self._ddb.get_item(
            TableName=self._inventory, Key={inventory.TABLE_KEY: {"S": thing_name}},
            ConsistentRead=True))
        if "Item" not in answer:
            return None
        try:
            return InventoryItem.from_attribute_values(answer["Item"])
        except ContractViolation as broken:
            # For the operator (names the thing and the attributes, never a value of a key).
            _LOG.error("%s", broken)
            raise AwsFailure("GetItem(inventory)", "InventoryContractViolation") from None

    @staticmethod
    def _item_or_none(values: Any) -> InventoryItem | None:
        if not values:
            return None
        try:
            return InventoryItem.from_attribute_values(values)
        except ContractViolation as broken:
            _LOG.error("%s", broken)
            return None

    def commit_registration(self, claim: Claim, version: NewInventoryVersion) -> None:
        """One transaction: the inventory item and the record marked REGISTERED (only while
        the claim is still ours). Either both are written or neither."""
        update = ("SET #state = :registered, #thing = :thing, #certificateId = :certificateId, "
                  "#registeredAt = :at, #registeredRegion = :region "
                  "REMOVE #claim, #claimedAt, #claimRegion, #reopened")
        # Legal only from our claim of an enabled record: an operator's revoke or disable
        # while we were issuing wins, whatever the claim id says.
        condition = "#claim = :claim AND #state = :claimed AND #enabled = :true"
        record = {"Update": {
            "TableName": self._records, "Key": cvm_device.key(claim.device_uid),
            **cvm_device.expressions(update, condition),
            "ExpressionAttributeValues": {
                ":registered": {"S": REGISTERED}, ":thing": {"S": version.thing_name},
                ":certificateId": {"S": version.certificate.certificate_id},
                ":at": {"S": version.updated_at}, ":region": {"S": claim.region},
                ":claim": {"S": claim.claim_id}, ":claimed": {"S": CLAIMED},
                ":true": {"BOOL": True}}}}
        # The token makes the SDK's own retries of a commit whose answer was lost
        # idempotent (TransactWriteItems, ClientRequestToken: 10 minutes).
        self._transact("TransactWriteItems(register)",
                       [inventory_write(self._inventory, version), record],
                       token=request_token("commit", claim.claim_id))

    def commit_rotation(self, device_uid: str, version: NewInventoryVersion) -> None:
        if version.previous is None:
            raise ValueError("a rotation changes an existing inventory item")
        update = "SET #certificateId = :new, #previous = :old, #rotatedAt = :at"
        # Legal only for the registered, enabled device whose certificate we verified.
        condition = "#state = :registered AND #enabled = :true AND #certificateId = :old"
        record = {"Update": {
            "TableName": self._records, "Key": cvm_device.key(device_uid),
            **cvm_device.expressions(update, condition),
            "ExpressionAttributeValues": {
                ":new": {"S": version.certificate.certificate_id},
                ":old": {"S": version.previous.certificate_id},
                ":at": {"S": version.updated_at}, ":registered": {"S": REGISTERED},
                ":true": {"BOOL": True}}}}
        # The token makes the SDK's own retries idempotent (as the registration's commit). Of
        # this commit, not of the request: a device's retry of the same request issues
        # another certificate, and the same token with other items within 10 minutes is
        # IdempotentParameterMismatchException.
        self._transact("TransactWriteItems(rotate)",
                       [inventory_write(self._inventory, version), record],
                       token=request_token("rotate", f"{device_uid}\n"
                                           f"{version.certificate.certificate_id}"))

    def _transact(self, operation: str, items: list[dict[str, Any]],
                  token: str | None = None) -> None:
        try:
            if token is None:
                self._ddb.transact_write_items(TransactItems=items)
            else:
                self._ddb.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except ClientError as error:
            if _code(error) == "TransactionCanceledException":
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                failed = [code == "ConditionalCheckFailed" for code in reasons]
                if any(failed):
                    raise CommitRefused(inventory=bool(failed[:1] and failed[0]),
                                        record=len(failed) > 1 and failed[1]) from None
            raise AwsFailure(operation, _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure(operation, type(error).__name__) from None


# --- Secrets Manager ---------------------------------------------------------------------------

class SecretSalts:
    """The batch salts, cached for `ttl` seconds; a miss may refresh at most every
    `min_refresh_interval` seconds (so guesses cannot turn into a flood of reads). When a
    refresh fails, the cached salts keep serving."""

    def __init__(self, client: Any, secret_id: str, *, ttl: float = 300.0,
                 min_refresh_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._secret_id = secret_id
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._clock = clock
        self._book: SaltBook | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _fetch(self) -> SaltBook:
        try:
            answer = self._client.get_secret_value(SecretId=self._secret_id)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return SaltBook({})  # no batch imported yet
            raise AwsFailure("GetSecretValue", _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure("GetSecretValue", type(error).__name__) from None
        try:
            return SaltBook.from_secret(answer.get("SecretString") or "")
        except SaltBookError:
            raise AwsFailure("GetSecretValue", "MalformedSalts") from None

    def _load(self, max_age: float) -> SaltBook:
        with self._lock:
            now = self._clock()
            if self._book is not None and now - self._fetched_at < max_age:
                return self._book
            try:
                self._book = self._fetch()
            except AwsFailure:
                if self._book is None:
                    raise
            self._fetched_at = now
            return self._book

    def book(self) -> SaltBook:
        return self._load(self._ttl)

    def refreshed(self) -> SaltBook:
        return self._load(self._min_refresh)


# --- AWS IoT -------------------------------------------------------------------------------------

class IotRegistry:
    """AWS IoT calls. Deleting a certificate right after detaching it may meet
    `DeleteConflictException`: "This call is asynchronous. It might take several seconds for
    the detachment to propagate" (DetachThingPrincipal, AWS IoT API reference). Deletes are
    retried with backoff for `propagation_seconds`, never past what the invocation has
    left (`time_left`, set per invocation from the Lambda context) minus `reserve_seconds`
    to answer."""

    def __init__(self, client: Any, *, propagation_seconds: float = 10.0,
                 first_delay: float = 0.25, reserve_seconds: float = 2.0,
                 time_left: Callable[[], float] = lambda: float("inf"),
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._iot = client
        self._propagation = propagation_seconds
        self._first_delay = first_delay
        self._reserve = reserve_seconds
        self._sleep = sleep
        self._clock = clock
        self._time_left = time_left

    def _retrying(self, operation: str, action: Callable[[], None],
                  retry_codes: tuple[str, ...]) -> None:
        """`action` until it succeeds or the resource is gone; `retry_codes` are retried with
        doubling delays (at most 2 s) within the propagation budget and the time left."""
        started = self._clock()
        delay = self._first_delay
        while True:
            try:
                action()
                return
            except ClientError as error:
                code = _code(error)
                if code == "ResourceNotFoundException":
                    return
                budget = min(self._propagation - (self._clock() - started),
                             self._time_left() - self._reserve)
                if code not in retry_codes or budget < delay:
                    raise AwsFailure(operation, code) from None
            except BotoCoreError as error:
                raise AwsFailure(operation, type(error).__name__) from None
            self._sleep(delay)
            delay = min(delay * 2, 2.0)

    def create_thing(self, thing_name: str, attributes: Mapping[str, str]) -> bool:
        try:
            self._iot.create_thing(thingName=thing_name,
                                   attributePayload={"attributes": dict(attributes)})
        except ClientError as error:
            if _code(error) == "ResourceAlreadyExistsException":
                return False
            raise AwsFailure("CreateThing", _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure("CreateThing", type(error).__name__) from None
        return True

    def create_certificate_from_csr(self, csr_pem: str) -> Certificate:
        # Inactive until the flow activates it just before its commit: the SDK retries a
        # request whose answer was lost, and AWS issues a new certificate for every call
        # with the same CSR, so the certificate of a lost answer is an orphan nobody can use.
        answer = call("CreateCertificateFromCsr", lambda: self._iot.create_certificate_from_csr(
            certificateSigningRequest=csr_pem, setAsActive=False))
        return Certificate(answer["certificateId"], answer["certificateArn"],
                           answer["certificatePem"])

    def create_keys_and_certificate(self) -> Certificate:
        answer = call("CreateKeysAndCertificate",
                      lambda: self._iot.create_keys_and_certificate(setAsActive=False))
        return Certificate(answer["certificateId"], answer["certificateArn"],
                           answer["certificatePem"], answer["keyPair"]["PublicKey"],
                           answer["keyPair"]["PrivateKey"])

    def attach_thing_principal(self, thing_name: str, certificate_arn: str) -> None:
        # EXCLUSIVE_THING: the certificate can never be attached to a second thing.
        call("AttachThingPrincipal", lambda: self._iot.attach_thing_principal(
            thingName=thing_name, principal=certificate_arn,
            thingPrincipalType="EXCLUSIVE_THING"))

    def attach_policy(self, policy_name: str, certificate_arn: str) -> None:
        call("AttachPolicy", lambda: self._iot.attach_policy(policyName=policy_name,
                                                             target=certificate_arn))

    def detach_policy(self, policy_name: str, certificate_arn: str) -> None:
        try:
            self._iot.detach_policy(policyName=policy_name, target=certificate_arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise AwsFailure("DetachPolicy", _code(error)) from None

    def list_thing_principals(self, thing_name: str) -> list[str]:
        answer = call("ListThingPrincipals",
                      lambda: self._iot.list_thing_principals(thingName=thing_name))
        return list(answer.get("principals", []))

    def detach_thing_principal(self, thing_name: str, certificate_arn: str) -> None:
        try:
            self._iot.detach_thing_principal(thingName=thing_name, principal=certificate_arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise AwsFailure("DetachThingPrincipal", _code(error)) from None

    def certificate_pem(self, certificate_id: str) -> str | None:
        try:
            answer = self._iot.describe_certificate(certificateId=certificate_id)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return None
            raise AwsFailure("DescribeCertificate", _code(error)) from None
        except BotoCoreError as error:
            raise AwsFailure("DescribeCertificate", type(error).__name__) from None
        return str(answer["certificateDescription"]["certificatePem"])

    def set_certificate_status(self, certificate_id: str, status: str) -> None:
        def update() -> None:
            try:
                self._iot.update_certificate(certificateId=certificate_id, newStatus=status)
            except ClientError as error:
                # REVOKED is final, and AWS may refuse to set it again (undocumented; the
                # emulation refuses, the less permissive reading): already revoked is done.
                if status != CERTIFICATE_REVOKED or _code(error) != "CertificateStateException":
                    raise
        call("UpdateCertificate", update)

    def delete_certificate(self, certificate_id: str) -> None:
        """forceDelete: also when a policy is still attached (our explicit detach failed)."""
        self._retrying("DeleteCertificate", lambda: self._iot.delete_certificate(
            certificateId=certificate_id, forceDelete=True), ("DeleteConflictException",))

    def delete_thing(self, thing_name: str) -> None:
        self._retrying("DeleteThing", lambda: self._iot.delete_thing(thingName=thing_name),
                       ("InvalidRequestException", "ThingStillAttached",
                        "VersionConflictException"))
