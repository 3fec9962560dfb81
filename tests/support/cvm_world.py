"""A moto account for the CVM: tables, salts secret, device policy, the function's environment,
and the seams where moto is kinder than AWS, made faithful while the world is open.

AWS IoT's registry rules (REVOKED is final, EXCLUSIVE_THING, CreateThing with another
configuration fails) come from tests/support/faithful_iot.py; the CVM adds:

* CreateCertificateFromCsr: moto signs a certificate for a *fresh* RSA key and throws the
  CSR's key away. AWS certifies the CSR's public key (that is the point of the CSR path), so
  we issue from the CSR's key and subject, signed by a stand-in Amazon issuer
  (`faithful_csr_issuance`, in tools/local/faithful_iot.py: the local run needs it too).
* DynamoDB conditional writes: moto checks a condition and writes in two Python steps, so two
  threads can both pass it. AWS serialises writes per item; one lock makes moto atomic too
  (the 50-concurrent-requests test would otherwise test moto's race, not ours).
* DynamoDB transactions: moto backs up every table a transaction touches (a deep copy of all
  its items) to roll back; its time grows with the table, which AWS's does not. We back up the
  touched items only and restore them on a cancelled transaction (same outcome, constant
  cost), so a benchmark measures our code, not the size of a test table.
* Faults: `FaultPlan` hooks botocore's `before-call` event of the function's session and makes
  the chosen call raise an AWS error; it also counts calls (the benchmark uses the same hook).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from lambdas.contracts.environment import CvmRegistrationEnvironment
from lambdas.cvm_registration import app as cvm_app
from lambdas.cvm_registration.config import Config
from tests.support.faithful_iot import faithful_iot
from tests.support.sfn_adapter import FakeLambdaContext
from tools.local.faithful_iot import faithful_csr_issuance

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PROVISIONING_TABLE = "iotmr-test-cvm-provisioning"
INVENTORY_TABLE = "iotmr-test-device-inventory"
SECRET_NAME = "iotmr-test/cvm/batch-salts"
DEVICE_POLICY = "iotmr-test-device"
DEVICE_ENDPOINT = "iot.test.example.com"
SEED_SALT = "YOUR_SECRET_SALT"  # the seed's example salt: its DEVICE001 token is known

# --- atomic DynamoDB writes -------------------------------------------------------------------

_DYNAMODB_LOCK = threading.RLock()
_ATOMIC_METHODS = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items",
                   "transact_get_items")


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend

    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _DYNAMODB_LOCK:
                return original(*args, **kwargs)
        return run

    with ExitStack() as stack:
        for name in _ATOMIC_METHODS:
            stack.enter_context(mock.patch.object(
                DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name))))
        yield


class _NoTableCopy:
    """Stands in for the `copy` module inside moto's transaction (table backups skipped)."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value


@contextmanager
def item_level_transaction_rollback() -> Iterator[None]:
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: list[tuple[Any, DynamoType, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.get_table(op["TableName"])
            if table.range_key_attr is not None:  # not needed by the CVM: keep moto's way
                return original(self, transact_items)
            attrs = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in attrs:
                return original(self, transact_items)
            hash_key = DynamoType(attrs[table.hash_key_attr])
            touched.append((table, hash_key, copy.deepcopy(table.items.get(hash_key))))
        with mock.patch.object(dynamodb_models, "copy", _NoTableCopy):
            try:
                original(self, transact_items)
            except Exception:
                for table, hash_key, before in reversed(touched):
                    if before is None:
                        table.items.pop(hash_key, None)
                    else:
                        table.items[hash_key] = before
                raise

    with mock.patch.object(DynamoDBBackend, "transact_write_items", transact_write_items):
        yield


# --- faults and call counting -----------------------------------------------------------------

@dataclass
class FaultPlan:
    """Counts the function's AWS calls; makes call number `fail_at` (1-based), or every call
    to `fail_operation`, raise `code`."""

    fail_at: int | None = None
    fail_operation: str | None = None
    code: str = "ServiceUnavailableException"
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append(model.name)
            number = len(self.calls)
        if number == self.fail_at or model.name == self.fail_operation:
            response: Any = {"Error": {"Code": self.code, "Message": "injected"},
                             "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(response, model.name)

    def session(self) -> boto3.session.Session:
        session = boto3.session.Session(region_name=REGION)
        session.events.register("before-call.*.*", self.hook)
        return session


# --- the world ----------------------------------------------------------------------------------

def token(salt: str, uid: str, uid2: str | None = None) -> str:
    """Written out here (not imported from the function) so tests check the formula itself."""
    identity = uid if uid2 is None else f"{uid}+{uid2}"
    return hashlib.sha256(f"{salt}//{identity}".encode()).hexdigest()


def function_environment(secret_arn: str, legacy_batches: tuple[str, ...]) -> dict[str, str]:
    declared = CvmRegistrationEnvironment[str](
        provisioning_table_name=PROVISIONING_TABLE, inventory_table_name=INVENTORY_TABLE,
        salts_secret_arn=secret_arn, device_policy_name=DEVICE_POLICY,
        device_endpoint=DEVICE_ENDPOINT, thing_name_prefix="",
        legacy_batches=",".join(legacy_batches), claim_stale_seconds="60").variables()
    return {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **declared,
            "POWERTOOLS_TRACE_DISABLED": "true"}


@dataclass
class CvmWorld:
    ddb: Any
    iot: Any
    secrets: Any
    secret_arn: str
    salts: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- arranging -----------------------------------------------------------------------
    def add_batch(self, batch: str, salt: str, version: int = 1) -> None:
        entry = self.salts.setdefault(batch, {"current": version, "salts": {}})
        entry["salts"][str(version)] = salt
        entry["current"] = max(version, entry["current"])
        self.secrets.put_secret_value(SecretId=self.secret_arn,
                                      SecretString=json.dumps({"batches": self.salts}))
        cvm_app.flows.cache_clear()  # a warm function would see it within its cache TTL

    def add_device(self, uid: str, batch: str, *, uid2: str | None = None, enabled: bool = True,
                   salt_version: int = 1) -> None:
        item: dict[str, Any] = {
            "deviceUid": {"S": uid}, "batch": {"S": batch},
            "saltVersion": {"N": str(salt_version)}, "enabled": {"BOOL": enabled},
            "registrationState": {"S": "UNREGISTERED"}}
        if uid2 is not None:
            item["deviceUid2"] = {"S": uid2}
        self.ddb.put_item(TableName=PROVISIONING_TABLE, Item=item)

    # --- observing -----------------------------------------------------------------------
    def record(self, uid: str) -> dict[str, Any]:
        return dict(self.ddb.get_item(TableName=PROVISIONING_TABLE,
                                      Key={"deviceUid": {"S": uid}}).get("Item", {}))

    def inventory(self, thing_name: str) -> dict[str, Any]:
        return dict(self.ddb.get_item(TableName=INVENTORY_TABLE,
                                      Key={"thingName": {"S": thing_name}}).get("Item", {}))

    def certificates(self) -> list[dict[str, Any]]:
        return list(self.iot.list_certificates()["certificates"])

    def things(self) -> list[str]:
        return [t["thingName"] for t in self.iot.list_things()["things"]]

    def thing_principals(self, thing_name: str) -> list[str]:
        return list(self.iot.list_thing_principals(thingName=thing_name)["principals"])

    def policy_targets(self) -> list[str]:
        return list(self.iot.list_targets_for_policy(policyName=DEVICE_POLICY)["targets"])


@contextmanager
def cvm_world(*, legacy_batches: tuple[str, ...] = ("LEGACY",)) -> Iterator[CvmWorld]:
    """moto with the CVM's tables, secret (CMK) and device policy, the function's environment
    set, and the function's cached clients dropped before and after."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}))
        stack.enter_context(mock_aws())
        stack.enter_context(faithful_iot())
        stack.enter_context(faithful_csr_issuance())
        stack.enter_context(item_level_transaction_rollback())
        stack.enter_context(atomic_dynamodb())
        ddb = boto3.client("dynamodb", region_name=REGION)
        for table, key in ((PROVISIONING_TABLE, "deviceUid"), (INVENTORY_TABLE, "thingName")):
            ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
        key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secret_arn = secrets.create_secret(Name=SECRET_NAME, KmsKeyId=key_id)["ARN"]
        iot = boto3.client("iot", region_name=REGION)
        iot.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                                                    "Resource": "*"}]}))
        stack.enter_context(mock.patch.dict(os.environ,
                                            function_environment(secret_arn, legacy_batches)))
        cvm_app.flows.cache_clear()
        stack.callback(cvm_app.flows.cache_clear)
        yield CvmWorld(ddb=ddb, iot=iot, secrets=secrets, secret_arn=secret_arn)


@contextmanager
def function_session(plan: FaultPlan) -> Iterator[cvm_app.Flows]:
    """The function's flows built on a session that `plan` watches (replaces `app.flows`)."""
    built = cvm_app.build_flows(Config.from_environment(), plan.session())
    with mock.patch.object(cvm_app, "flows", lambda: built):
        yield built


# --- requests ---------------------------------------------------------------------------------

def api_event(body: str | None, *, path: str = "/registration", base64_encoded: bool = False,
              method: str = "POST", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event as the stage delivers it."""
    request_id = str(uuid.uuid4())
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": headers if headers is not None else {"Content-Type": "application/json"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourcePath": path, "httpMethod": method, "stage": "v1", "path": f"/v1{path}",
            "requestId": request_id, "accountId": ACCOUNT, "apiId": "cvmapi",
            "identity": {"sourceIp": "192.0.2.10", "userAgent": "device/1.0"},
            "protocol": "HTTP/1.1", "requestTimeEpoch": 0, "domainName": "provision.example"},
        "body": body, "isBase64Encoded": base64_encoded,
    }


def new_csr(common_name: str = "device") -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


# The Lambda context every CVM handler test calls the function with.
CONTEXT = FakeLambdaContext("cvm", f"arn:aws:lambda:{REGION}:123456789012:function:cvm")
