"""The CVM's declared function in a world of the dev stack (one region, capability cvm): what
its tests arrange (batches in the salts secret, device records) and observe (registry,
inventory, record). The function runs in-process with its declared environment."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from lambdas.contracts import cvm_device
from tools import pki
from tools.harness import StackGraph
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.journeys import cvm
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

REGION = "eu-west-1"
SEED_SALT = "YOUR_SECRET_SALT"  # the seed's example salt: its DEVICE001 token is known
LEGACY = cvm.LEGACY_BATCH  # the legacy batch the run's config adds


def token(salt: str, uid: str, uid2: str | None = None) -> str:
    """Written out here (not imported from the function) so tests check the formula itself."""
    identity = uid if uid2 is None else f"{uid}+{uid2}"
    return hashlib.sha256(f"{salt}//{identity}".encode()).hexdigest()


def new_csr(common_name: str = "device") -> tuple[pki.PrivateKey, str]:
    """A device's key and CSR (P-256, CN only), as the project's PKI makes them."""
    made = pki.create_device_csr(common_name)
    return made.key, made.csr.public_bytes(serialization.Encoding.PEM).decode()


def api_event(body: str | None, *, path: str = "/registration", base64_encoded: bool = False,
              method: str = "POST", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event, for calls that bypass the gateway's validator."""
    return {"resource": path, "path": path, "httpMethod": method,
            "headers": headers if headers is not None else {"Content-Type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": method, "stage": "v1",
                               "path": f"/v1{path}", "requestId": str(uuid.uuid4()),
                               "accountId": "123456789012", "apiId": "cvmapi",
                               "identity": {"sourceIp": "192.0.2.10", "userAgent": "device/1.0"},
                               "protocol": "HTTP/1.1", "requestTimeEpoch": 0,
                               "domainName": "provision.example"},
            "body": body, "isBase64Encoded": base64_encoded}


@dataclass
class Cvm:
    world: World
    salts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def function(self) -> str:
        return str(cvm.function(self.world, REGION).outputs["name"])

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.world.state(cvm.function(self.world, REGION))["environment"]["variables"])

    @property
    def iot(self) -> Any:
        return self.world.client("iot", REGION)

    @property
    def ddb(self) -> Any:
        return self.world.client("dynamodb", REGION)

    def add_batch(self, batch: str, salt: str, version: int = 1) -> None:
        entry = self.salts.setdefault(batch, {"current": version, "salts": {}})
        entry["salts"][str(version)] = salt
        entry["current"] = max(version, entry["current"])
        self.world.client("secretsmanager", REGION).put_secret_value(
            SecretId=self.environment["SALTS_SECRET_ARN"], SecretString=json.dumps({"batches": self.salts}))
        self.world.emulation(LambdaRuntime).cold_start(self.function)  # a warm one caches salts

    def add_device(self, uid: str, batch: str, *, uid2: str | None = None, enabled: bool = True,
                   salt_version: int = 1) -> None:
        """The record an import writes (the contract's), without the manufacturer's CSV."""
        self.ddb.put_item(TableName=self.world.table(seen.PROVISIONING), Item=cvm_device.new_record(
            uid, batch, salt_version, "2026-01-01T00:00:00Z", uid2, enabled=enabled))

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(self.world.emulation(LambdaRuntime).invoke(self.function, event))

    def call(self, body: Any, **event: Any) -> tuple[int, dict[str, Any]]:
        """The function's answer to a request body (the gateway's validator bypassed)."""
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        answer = self.invoke(api_event(text, **event))
        return answer["statusCode"], json.loads(answer["body"])

    def record(self, key: str) -> dict[str, Any]:
        """The provisioning table's item under `key` (a device uid, or an allow-list key)."""
        return dict(self.ddb.get_item(TableName=self.world.table(seen.PROVISIONING),
                                      Key={cvm_device.TABLE_KEY: {"S": key}}).get("Item", {}))

    def inventory(self, thing_name: str) -> dict[str, Any]:
        return dict(self.ddb.get_item(TableName=self.world.table(seen.INVENTORY),
                                      Key={"thingName": {"S": thing_name}}).get("Item", {}))

    def certificates(self) -> list[dict[str, Any]]:
        return list(self.iot.list_certificates()["certificates"])

    def things(self) -> list[str]:
        return [t["thingName"] for t in self.iot.list_things()["things"]]

    def thing_principals(self, thing_name: str) -> list[str]:
        return list(self.iot.list_thing_principals(thingName=thing_name)["principals"])

    def policy_targets(self) -> list[str]:
        return list(self.iot.list_targets_for_policy(policyName=seen.device_policy(self.world, REGION))["targets"])

    def calls(self) -> list[str]:
        """The function's AWS calls so far, in order."""
        return [c.operation for c in self.world.calls.of(caller=f"lambda:{self.function}")]


@contextmanager
def cvm_world(graph: StackGraph, pki: LocalPki) -> Iterator[Cvm]:
    with open_world(graph, regions=[REGION], pki=pki, capabilities=["cvm"]) as world:
        yield Cvm(world)
