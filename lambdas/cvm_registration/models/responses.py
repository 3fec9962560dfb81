"""Response bodies, in the seed's envelope so devices built for it parse them unchanged:
`{"statusCode": <int>, "status": "SUCCESS" | "ERROR", "payload": {...}}`.

Success payload: `endpoint`, `thing_name`, `certificates.device_certificate`,
`certificates.root_ca` (+ `certificate_id`), and `keyPair` only on the legacy path (the
device could not make its own key). Error payload: `message` (+ `field` for 400s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# One body for every refusal of an identity (unknown device, wrong token, wrong second
# identifier, disabled, revoked, bad rotation signature): no enumeration oracle.
REFUSED_MESSAGE = "registration refused"


@dataclass(frozen=True)
class Issued:
    thing_name: str
    certificate_id: str
    certificate_pem: str
    public_key_pem: str | None = None  # legacy path only
    private_key_pem: str | None = None  # legacy path only


def success_body(issued: Issued, *, endpoint: str, root_ca: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "endpoint": endpoint,
        "thing_name": issued.thing_name,
        "certificate_id": issued.certificate_id,
        "certificates": {"device_certificate": issued.certificate_pem, "root_ca": root_ca},
    }
    if issued.private_key_pem is not None:
        payload["keyPair"] = {"publicKey": issued.public_key_pem,
                              "privateKey": issued.private_key_pem}
    return {"statusCode": 200, "status": "SUCCESS", "payload": payload}


def error_body(status_code: int, message: str, field: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"message": message}
    if field is not None:
        payload["field"] = field
    return {"statusCode": status_code, "status": "ERROR", "payload": payload}
