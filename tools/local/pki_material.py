"""The run's own PKI: a root CA and an intermediate that becomes the stack's CA.

Built with tools.pki's library functions, in memory (keys never touch disk). The stack is
evaluated with the intermediate as its CA, so the device certificates the journeys issue are
really trusted by what the stack declares. The run is a CA rotation's overlap
(`stack_ca_config`): the intermediate is the `previous` CA (every journey's devices carry
it) and a second intermediate is `issuing` (the ca-rotation journey re-issues a device under
it), as components/edge/README.md, "Rotating our CA", describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509

from tools import pki

ROOT_CN = "Local Run Root CA"
INTERMEDIATE_CN = "Local Run Device Issuing CA"
NEXT_INTERMEDIATE_CN = "Local Run Device Issuing CA (next)"
# The CA names in the stack config of the run (`ca` keeps the first CA's resource names).
PREVIOUS_CA_NAME, NEXT_CA_NAME = "ca", "ca2"


@dataclass(frozen=True)
class Device:
    thing_name: str
    key: pki.PrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return pki.pem_certs(self.certificate).decode()

    @property
    def key_pem(self) -> str:
        return pki.pem_private_key(self.key).decode()


@dataclass(frozen=True)
class LocalPki:
    root: pki.CertifiedKey
    intermediate: pki.CertifiedKey
    next_intermediate: pki.CertifiedKey | None = None

    @property
    def intermediate_pem(self) -> str:
        return pki.pem_certs(self.intermediate.cert).decode()

    @property
    def root_pem(self) -> str:
        return pki.pem_certs(self.root.cert).decode()

    def device(self, thing_name: str, *, next_ca: bool = False) -> Device:
        """The device path: the device makes its key and CSR; our intermediate (or, for a
        re-issue during the rotation, the next one) signs it."""
        issuer = self.next_intermediate if next_ca else self.intermediate
        if issuer is None:
            raise ValueError("this PKI has no next intermediate")
        request = pki.create_device_csr(thing_name)
        certificate = pki.sign_device_csr(issuer, request.csr, expected_thing_name=thing_name)
        return Device(thing_name, request.key, certificate)

    def stack_ca_config(self) -> tuple[dict[str, Any], str]:
        """Config overrides that make the stack's CAs this PKI's, and why (for the report)."""
        if self.next_intermediate is None:
            return {"caCertificatePem": self.intermediate_pem}, "caCertificatePem: the run's intermediate"
        next_pem = pki.pem_certs(self.next_intermediate.cert).decode()
        return ({"caCertificates": [
            {"name": PREVIOUS_CA_NAME, "pem": self.intermediate_pem, "state": "previous"},
            {"name": NEXT_CA_NAME, "pem": next_pem, "state": "issuing"}]},
            "caCertificates: the run's intermediate as `previous`, a second one as `issuing` "
            "(a CA rotation's overlap, for the ca-rotation journey)")


def bootstrap() -> LocalPki:
    root = pki.create_root_ca(ROOT_CN, organization="iot-multi-region local run")
    intermediate = pki.create_intermediate_ca(root, INTERMEDIATE_CN,
                                              organization="iot-multi-region local run")
    next_intermediate = pki.create_intermediate_ca(root, NEXT_INTERMEDIATE_CN,
                                                   organization="iot-multi-region local run")
    return LocalPki(root, intermediate, next_intermediate)
