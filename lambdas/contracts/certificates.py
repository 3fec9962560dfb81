"""AWS IoT's certificate id, derived from the certificate itself: the one derivation every
writer and reader of a certificate id uses (the inventory contract refuses an item whose
`certificateId` is not the id of its `certificatePem`; quarantine and repairs act on the
derived id).

AWS IoT names a certificate by the SHA-256 of its DER encoding, 64 lowercase hex digits,
the same in every region and account: that is why a certificate registered with
RegisterCertificateWithoutCA in another region keeps its id ("Multi-account registration",
AWS IoT developer guide; `certificateId`: "Fixed length of 64", CertificateDescription API
reference). `cryptography` ships in the functions' dependencies layer; imported lazily so
the contracts stay cheap to import where no certificate is parsed.
"""

from __future__ import annotations

import hashlib


class CertificatePemError(ValueError):
    """Not one PEM X.509 certificate."""


def certificate_id(pem: str) -> str:
    """The id AWS IoT gives the certificate in `pem` (CertificatePemError if it is none)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, AttributeError) as err:
        raise CertificatePemError(f"not a PEM X.509 certificate: {err}") from None
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def id_mismatch(certificate_id_claimed: str, pem: str) -> str | None:
    """Why `certificate_id_claimed` is not the id of `pem`, or None when it is."""
    try:
        derived = certificate_id(pem)
    except CertificatePemError as err:
        return str(err)
    if certificate_id_claimed != derived:
        return (f"{certificate_id_claimed!r} is not the id of the certificate in the PEM "
                f"({derived}: SHA-256 of its DER)")
    return None
