"""A device on its setup network (the SoftAP pattern): it takes the hand-over file the installer
sends, checks it as a device must (`check_handover`: its format, that the key matches the
claim certificate, that the claim has not expired, that it was issued for the region whose
endpoint it names), then provisions itself with the claim through the fleet-provisioning
emulation of that region: CreateKeysAndCertificate, then RegisterThing with its own serial
(never the one in the file), as the client id `<prefix><serial>` the hook requires.

It answers CORS and Private Network Access preflights for the site's origin only, as a
device that wants to be reachable from an https page must.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tools.local.emulation.fleet_provisioning import FleetProvisioning, Rejected
from tools.local.emulation.policy import AccessDenied
from tools.local.http_servers import LocalServer, reply

PATH = "/provision"
FORMAT = "iot-multi-region/claim-handover"


class BadHandover(Exception):
    pass


def check_handover(bundle: Mapping[str, Any], endpoints: Mapping[str, str]) -> dt.datetime:
    """What a device needs from the file; returns the claim's expiry, raises BadHandover."""
    if bundle.get("format") != FORMAT or bundle.get("version") != 1:
        raise BadHandover("not a claim hand-over file (format/version)")
    certificate = x509.load_pem_x509_certificate(str(bundle["certificatePem"]).encode())
    key = serialization.load_pem_private_key(str(bundle["privateKey"]).encode(), password=None)
    public = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*public) != key.public_key().public_bytes(*public):
        raise BadHandover("the private key does not belong to the claim certificate")
    if certificate.fingerprint(hashes.SHA256()).hex() != bundle.get("certificateId"):
        raise BadHandover("certificateId is not the claim certificate's")
    expires = dt.datetime.fromisoformat(str(bundle["expiresAt"]).replace("Z", "+00:00"))
    if expires <= dt.datetime.now(dt.timezone.utc):
        raise BadHandover("the claim has expired")
    if endpoints.get(str(bundle.get("region"))) != bundle.get("endpoint"):
        raise BadHandover(f"endpoint {bundle.get('endpoint')} is not {bundle.get('region')}'s AWS IoT endpoint")
    if not x509.load_pem_x509_certificates(str(bundle.get("rootCaPem")).encode()):
        raise BadHandover("no root CA to check the endpoint's server certificate")
    return expires


@dataclass
class Outcome:
    serial: str
    region: str
    thing: str | None = None
    certificate_id: str | None = None
    certificate_pem: str | None = None
    error: str | None = None


@dataclass
class SimulatedDevice:
    fleet: FleetProvisioning
    endpoints: dict[str, str]  # region -> its iot:Data-ATS address
    allowed_origin: str = ""
    serial: str = "SN-DEVICE"
    outcomes: list[Outcome] = field(default_factory=list)
    _done: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._server = LocalServer("simulated-device", self._handle, ("OPTIONS", "POST"))
        self.address = f"{self._server.url}{PATH}"

    def stop(self) -> None:
        self._server.stop()

    def wait_for_outcome(self, count: int, timeout: float) -> list[Outcome]:
        with self._done:
            self._done.wait_for(lambda: len(self.outcomes) >= count, timeout)
            return list(self.outcomes)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": "application/json"}
        if request.headers.get("Origin") == self.allowed_origin:
            headers.update({"Access-Control-Allow-Origin": self.allowed_origin, "Vary": "Origin"})
        if request.command == "OPTIONS":
            if len(headers) > 1:
                headers.update({"Access-Control-Allow-Methods": "POST", "Access-Control-Max-Age": "60",
                                "Access-Control-Allow-Headers": "content-type"})
                if request.headers.get("Access-Control-Request-Private-Network") == "true":
                    headers["Access-Control-Allow-Private-Network"] = "true"
            return reply(request, 204 if len(headers) > 1 else 403, b"", headers)
        try:
            if request.path != PATH:
                raise BadHandover(f"no {request.path} here")
            bundle = json.loads(request.rfile.read(int(request.headers.get("Content-Length") or 0)))
            check_handover(bundle, self.endpoints)
        except (BadHandover, ValueError, KeyError, TypeError) as problem:
            return reply(request, 400, json.dumps({"error": str(problem)}).encode(), headers)
        threading.Thread(target=self._provision, args=(bundle, self.serial), name="simulated-device-provisioning",
                         daemon=True).start()
        reply(request, 202, json.dumps({"accepted": True, "serial": self.serial}).encode(), headers)

    def _provision(self, bundle: dict[str, Any], serial: str) -> None:
        outcome = Outcome(serial, str(bundle["region"]))
        try:
            template, claim = self.fleet[outcome.region], bundle["certificateId"]
            created = template.create_keys_and_certificate(claim)
            accepted = template.register_thing(claim, f"{bundle['clientIdPrefix']}{serial}",
                                               created["certificateOwnershipToken"], {"SerialNumber": serial})
            outcome.thing, outcome.certificate_id = accepted["thingName"], created["certificateId"]
            outcome.certificate_pem = created["certificatePem"]
        except (AccessDenied, Rejected, KeyError) as problem:
            outcome.error = f"{type(problem).__name__}: {problem}"
        with self._done:
            self.outcomes.append(outcome)
            self._done.notify_all()
