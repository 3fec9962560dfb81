"""The run's own PKI: a root CA and an intermediate that becomes the stack's CA.

Built with tools.pki's library functions, in memory (keys never touch disk). The stack is
evaluated with the intermediate as `caCertificatePem`, so the device certificates the
journeys issue are really trusted by what the stack declares.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from tools import pki

ROOT_CN = "Local Run Root CA"
INTERMEDIATE_CN = "Local Run Device Issuing CA"


@dataclass(frozen=True)
class Device:
    thing_name: str
    key: pki.PrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return pki.pem_certs(self.certificate).decode()


@dataclass(frozen=True)
class LocalPki:
    root: pki.CertifiedKey
    intermediate: pki.CertifiedKey

    @property
    def intermediate_pem(self) -> str:
        return pki.pem_certs(self.intermediate.cert).decode()

    @property
    def root_pem(self) -> str:
        return pki.pem_certs(self.root.cert).decode()

    def device(self, thing_name: str) -> Device:
        """The device path: the device makes its key and CSR; our intermediate signs it."""
        request = pki.create_device_csr(thing_name)
        certificate = pki.sign_device_csr(self.intermediate, request.csr,
                                          expected_thing_name=thing_name)
        return Device(thing_name, request.key, certificate)


def bootstrap() -> LocalPki:
    root = pki.create_root_ca(ROOT_CN, organization="iot-multi-region local run")
    intermediate = pki.create_intermediate_ca(root, INTERMEDIATE_CN,
                                              organization="iot-multi-region local run")
    return LocalPki(root, intermediate)
