"""CSRs, certificates and rotation signatures (cryptography only, no AWS)."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from lambdas.contracts.inventory import timestamp

from .errors import BadField

# Key types AWS IoT issues certificates for (CreateCertificateFromCsr).
EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
RSA_MIN_BITS, RSA_MAX_BITS = 2048, 4096
# The signing algorithms AWS IoT supports for certificates (X.509 client certificates):
# SHA256/384/512 WITHRSA and ECDSA-WITH-SHA256/384/512 (DSA is not a key type we accept).
SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def public_key_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def checked_csr(pem: str) -> x509.CertificateSigningRequest:
    """A CSR AWS IoT will sign: PEM, self-signature valid (the device holds the key), and a
    key type IoT accepts. Raises BadField('csr') otherwise."""
    if "-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise BadField("csr", "must be a PEM certificate signing request")
    text = pem.strip()
    if text.count("-----BEGIN") != 1 or not text.startswith("-----BEGIN CERTIFICATE REQUEST-----") \
            or not text.endswith("-----END CERTIFICATE REQUEST-----"):
        # AWS does not say what it does with text around the block: refused here, the less
        # permissive reading, rather than a 503 the device would retry for ever.
        raise BadField("csr", "must be exactly one PEM certificate signing request, nothing around it")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
        key = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadField("csr", "is not a readable PEM certificate signing request") from None
    if not valid:
        raise BadField("csr", "signature does not verify (it must be signed by its own key)")
    if not isinstance(csr.signature_hash_algorithm, SIGNATURE_HASHES) \
            or isinstance(csr.signature_algorithm_parameters, padding.PSS):
        raise BadField("csr", "must be signed with SHA-256, SHA-384 or SHA-512 (RSA PKCS#1 v1.5 "
                              "or ECDSA)")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, EC_CURVES):
            raise BadField("csr", "EC keys must use P-256, P-384 or P-521")
    elif isinstance(key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise BadField("csr", f"RSA keys must have {RSA_MIN_BITS}-{RSA_MAX_BITS} bits")
    else:
        raise BadField("csr", "key must be EC or RSA")
    return csr


def csr_public_key_der(csr: x509.CertificateSigningRequest) -> bytes:
    return public_key_der(csr.public_key())


def certificate_public_key_der(certificate_pem: str) -> bytes:
    return public_key_der(x509.load_pem_x509_certificate(certificate_pem.encode()).public_key())


def not_after(certificate_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    return timestamp(cert.not_valid_after_utc)


def rotation_message(device_uid: str, timestamp: int, csr_pem: str) -> bytes:
    """What a device signs with its current key to ask for a new certificate."""
    digest = hashlib.sha256(csr_pem.encode()).hexdigest()
    return f"cvm-rotation\n{device_uid}\n{timestamp}\n{digest}".encode()


def signature_verifies(certificate_pem: str, message: bytes, signature_b64: str) -> bool:
    """True when the key of `certificate_pem` signed `message` (ECDSA or RSA PKCS#1 v1.5,
    SHA-256)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        return False
    return True
