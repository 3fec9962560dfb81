"""A device on its setup network (the SoftAP pattern): it takes the hand-over file the installer
sends, checks it as a device must (its format, that the key matches the claim certificate,
that the claim has not expired, that it was issued for the region whose endpoint it names),
then provisions itself with the claim through the emulated fleet-provisioning MQTT API of
that region: CreateKeysAndCertificate, then RegisterThing with its own serial (never the one
in the file), as the client id `<prefix><serial>` the claim policy and the hook require.

It answers CORS and Private Network Access preflights for the site's origin only, as a
device that wants to be reachable from an https page must.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tools.local.emulation.fleet_provisioning import AccessDenied, FleetProvisioning, Rejected
from tools.local.installer_web.servers import LocalServer, QuietHandler

PATH = "/provision"
FORMAT = "iot-multi-region/claim-handover"


class BadHandover(Exception):
    pass


@dataclass
class Outcome:
    serial: str
    region: str
    thing: str | None = None
    certificate_id: str | None = None
    error: str | None = None


@dataclass
class SimulatedDevice:
    fleet: FleetProvisioning
    provisioning_endpoints: dict[str, str]  # region -> its iot:Data-ATS address
    allowed_origin: str = ""
    serial: str = "SN-DEVICE"
    outcomes: list[Outcome] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    _server: LocalServer | None = None
    _done: threading.Condition = field(default_factory=threading.Condition)

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"{self._server.url}{PATH}"

    def start(self) -> str:
        device = self

        class Handler(QuietHandler):
            def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib name)
                device._preflight(self)

            def do_POST(self) -> None:  # noqa: N802
                device._post(self)

        self._server = LocalServer(Handler, "simulated-device")
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def wait_for_outcome(self, count: int, timeout: float) -> list[Outcome]:
        with self._done:
            self._done.wait_for(lambda: len(self.outcomes) >= count, timeout)
            return list(self.outcomes)

    def _cors(self, request: BaseHTTPRequestHandler) -> dict[str, str]:
        origin = request.headers.get("Origin")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} \
            if origin and origin == self.allowed_origin else {}

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any] | None,
               headers: dict[str, str]) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _preflight(self, request: BaseHTTPRequestHandler) -> None:
        headers = self._cors(request)
        if headers:
            headers.update({"Access-Control-Allow-Methods": "POST",
                            "Access-Control-Allow-Headers": "content-type",
                            "Access-Control-Max-Age": "60"})
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
        self._reply(request, 204 if headers else 403, None, headers)

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        headers = self._cors(request)
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        try:
            if request.path != PATH:
                raise BadHandover(f"no {request.path} here")
            bundle = self.check(json.loads(body))
        except (BadHandover, ValueError, KeyError, TypeError) as problem:
            self._reply(request, 400, {"error": str(problem)}, headers)
            return
        self.received.append(bundle)
        threading.Thread(target=self._provision, args=(bundle, self.serial),
                         name="simulated-device-provisioning", daemon=True).start()
        self._reply(request, 202, {"accepted": True, "serial": self.serial}, headers)

    def check(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if bundle.get("format") != FORMAT or bundle.get("version") != 1:
            raise BadHandover("not a claim hand-over file (format/version)")
        certificate = x509.load_pem_x509_certificate(str(bundle["certificatePem"]).encode())
        key = serialization.load_pem_private_key(str(bundle["privateKey"]).encode(), password=None)
        ours = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise BadHandover("the private key does not belong to the claim certificate")
        if certificate.fingerprint(hashes.SHA256()).hex() != bundle.get("certificateId"):
            raise BadHandover("certificateId is not the claim certificate's")
        expires = dt.datetime.fromisoformat(str(bundle["expiresAt"]).replace("Z", "+00:00"))
        if expires <= dt.datetime.now(dt.timezone.utc):
            raise BadHandover("the claim has expired")
        region = str(bundle.get("region"))
        if self.provisioning_endpoints.get(region) != bundle.get("endpoint"):
            raise BadHandover(f"endpoint {bundle.get('endpoint')} is not {region}'s AWS IoT endpoint")
        if "BEGIN CERTIFICATE" not in str(bundle.get("rootCaPem")):
            raise BadHandover("no root CA to check the endpoint's server certificate")
        return bundle

    def _provision(self, bundle: dict[str, Any], serial: str) -> None:
        outcome = Outcome(serial, str(bundle["region"]))
        try:
            emulator = self.fleet[outcome.region]
            client_id = f"{bundle['clientIdPrefix']}{serial}"
            created = emulator.create_keys_and_certificate(bundle["certificateId"], client_id)
            accepted = emulator.register_thing(bundle["certificateId"], client_id,
                                               created["certificateOwnershipToken"],
                                               {"SerialNumber": serial})
            outcome.thing, outcome.certificate_id = accepted["thingName"], created["certificateId"]
        except (AccessDenied, Rejected, KeyError) as problem:
            outcome.error = f"{type(problem).__name__}: {problem}"
        with self._done:
            self.outcomes.append(outcome)
            self._done.notify_all()
