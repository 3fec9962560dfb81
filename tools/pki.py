"""Small PKI for AWS IoT Core: root CA, issuing (intermediate) CA, server and device certs.

Library functions are pure (no I/O) except the explicit load/write helpers, so they
can be tested with an injected ``not_before``. The CLI is ``python -m tools.pki``.

Chain layout::

    root CA (offline)  ->  intermediate CA (registered in AWS IoT, SNI_ONLY)
                               ->  device certs (clientAuth, CN = thing name)
                               ->  server cert for the custom domain (serverAuth)

`intermediate-ca` also writes `ca-chain.pem` (intermediate + root), the `--chain` that
`verify` checks device certificates against. Every command reads and checks its inputs
(CA expired? key matches? CSR's CN?) before it looks at its outputs, so the real problem is
reported first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union, cast, get_args

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from components.x509 import has_extended_key_usage, is_ca_certificate, is_self_signed
from lambdas.contracts.things import (
    THING_NAME_CHARACTERS,
    THING_NAME_MAX_LENGTH,
    thing_name_problem,
)

KeyType = Literal["ec-p256", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
# AWS IoT custom-domain server certificates must use one of these key types.
SERVER_KEY_TYPES: tuple[KeyType, ...] = ("rsa-2048", "ec-p256")
DEFAULT_KEY_TYPE: KeyType = "ec-p256"

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]

# Defaults in days. Server certs stay at 397 so they remain acceptable to TLS clients
# that enforce the CA/Browser Forum lifetime limit.
DEFAULT_ROOT_DAYS = 7305  # 20 years
DEFAULT_INTERMEDIATE_DAYS = 3652  # 10 years
DEFAULT_SERVER_DAYS = 397
DEFAULT_DEVICE_DAYS = 3652  # 10 years

# AWS IoT domain configurations accept a server certificate chain of at most 5 certs.
MAX_SERVER_CHAIN_DEPTH = 5

_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Keys end in ".key" so the repository's .gitignore ("*.key") keeps them out of git.
ROOT_KEY_FILE = "root-ca.key"
ROOT_CERT_FILE = "root-ca.cert.pem"
INTERMEDIATE_KEY_FILE = "intermediate-ca.key"
INTERMEDIATE_CERT_FILE = "intermediate-ca.cert.pem"
# Intermediate + root: what `verify --chain` needs to check a device certificate.
CA_CHAIN_FILE = "ca-chain.pem"
PULUMI_CA_CONFIG_KEY = "caCertificatePemFile"


class PkiError(Exception):
    """Bad input or environment; the message is one line naming the input and the fix."""


class ChainVerificationError(Exception):
    """The certificate does not chain to the given trust anchors (not an input error)."""


@dataclass(frozen=True)
class CertifiedKey:
    key: PrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class KeyAndCsr:
    key: PrivateKey
    csr: x509.CertificateSigningRequest


@dataclass(frozen=True)
class OutputFile:
    path: Path
    data: bytes
    private: bool = False


# --------------------------------------------------------------------------- helpers


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _normalize_time(value: dt.datetime | None) -> dt.datetime:
    # X.509 times have second precision; truncating keeps cert fields == inputs.
    ts = utc_now() if value is None else value
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return ts.astimezone(dt.timezone.utc).replace(microsecond=0)


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    sizes = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
    if key_type not in sizes:
        raise PkiError(f"unknown key type {key_type!r}; fix: use one of {', '.join(KEY_TYPES)}")
    return rsa.generate_private_key(public_exponent=65537, key_size=sizes[key_type])


def _public_key_der(owner: PrivateKey | x509.Certificate) -> bytes:
    return owner.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # Match the hash to the curve strength; webpki-style verifiers reject mismatches.
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
    return hashes.SHA256()


def _check_supported_public_key(key: object, what: str) -> PublicKey:
    # AWS IoT accepts RSA >= 2048 and EC P-256/P-384/P-521 for CA and device certs.
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        return key
    raise PkiError(
        f"{what}: unsupported key ({type(key).__name__}); "
        "fix: use RSA >= 2048 bits or EC P-256/P-384/P-521"
    )


def validate_thing_name(thing_name: str) -> str:
    problem = thing_name_problem(thing_name)
    if problem:
        raise PkiError(
            f"invalid thing name {thing_name!r}: it {problem}; fix: use 1-"
            f"{THING_NAME_MAX_LENGTH} of {THING_NAME_CHARACTERS} (AWS IoT thing names)"
        )
    return thing_name


def check_server_key_type(key_type: str) -> None:
    if key_type not in SERVER_KEY_TYPES:
        raise PkiError(
            f"server key type {key_type!r} is not accepted by AWS IoT custom domains; "
            f"fix: use --key-type {' or '.join(SERVER_KEY_TYPES)}"
        )


def validate_domain(domain: str) -> str:
    """Return the lower-cased domain or raise; wildcards/IDNs are rejected on purpose."""
    name = domain.lower()
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise PkiError(
            f"invalid domain {domain!r}; fix: pass a fully qualified ASCII host name "
            "such as iot.example.com (no wildcard, no trailing dot, punycode for IDNs)"
        )
    return name


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    # X.520 caps CN and O at 64 characters; cryptography would raise a bare ValueError.
    for label, value in (("--common-name", common_name), ("--organization", organization)):
        if value is not None and not 1 <= len(value) <= 64:
            raise PkiError(
                f"{label} must be 1..64 characters (got {len(value)}); fix: pass 1..64 characters"
            )
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        # Older CAs may lack SKI; derive it the standard way so AKI still links up.
        return x509.SubjectKeyIdentifier.from_public_key(cast(PublicKey, cert.public_key()))


def _issue(
    *,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: CertifiedKey | None,
    self_key: PrivateKey | None = None,
    not_before: dt.datetime | None,
    days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Sign a certificate; ``issuer=None`` means self-signed with ``self_key``."""
    if days < 1:
        raise PkiError(f"--days must be >= 1 (got {days}); fix: pass a positive number of days")
    start = _normalize_time(not_before)
    end = start + dt.timedelta(days=days)
    if issuer is not None:
        ca_end = issuer.cert.not_valid_after_utc
        if start >= ca_end:
            raise PkiError(
                f"issuing CA {issuer.cert.subject.rfc4514_string()} expired on {ca_end:%Y-%m-%d}; "
                "fix: create a new CA certificate"
            )
        # A leaf outliving its issuer would be unusable after the CA expires anyway.
        end = min(end, ca_end)
        signing_key = issuer.key
        issuer_name = issuer.cert.subject
    else:
        if self_key is None:
            raise ValueError("self-signed certificate needs self_key")
        signing_key = self_key
        issuer_name = subject

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer.cert))
        builder = builder.add_extension(aki, critical=False)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signing_key, _signature_hash(signing_key))


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _leaf_key_usage(key: PublicKey) -> x509.KeyUsage:
    # keyEncipherment only makes sense for RSA (TLS 1.2 RSA key transport).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_extensions(
    key: PublicKey, eku: x509.ObjectIdentifier
) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_leaf_key_usage(key), True),
        (x509.ExtendedKeyUsage([eku]), False),
    ]


# --------------------------------------------------------------------------- library API


def create_root_ca(
    common_name: str = "IoT Root CA",
    *,
    organization: str | None = None,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    days: int = DEFAULT_ROOT_DAYS,
    not_before: dt.datetime | None = None,
) -> CertifiedKey:
    key = generate_private_key(key_type)
    cert = _issue(
        subject=_name(common_name, organization),
        public_key=key.public_key(),
        issuer=None,
        self_key=key,
        not_before=not_before,
        days=days,
        # No pathlen on the root so a second issuing tier stays possible later.
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_CA_KEY_USAGE, True),
        ],
    )
    return CertifiedKey(key, cert)


def create_intermediate_ca(
    root: CertifiedKey,
    common_name: str = "IoT Device Issuing CA",
    *,
    organization: str | None = None,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    days: int = DEFAULT_INTERMEDIATE_DAYS,
    not_before: dt.datetime | None = None,
) -> CertifiedKey:
    key = generate_private_key(key_type)
    cert = _issue(
        subject=_name(common_name, organization),
        public_key=key.public_key(),
        issuer=root,
        not_before=not_before,
        days=days,
        # pathlen 0: this CA may only issue leaf (device/server) certificates.
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_CA_KEY_USAGE, True),
        ],
    )
    return CertifiedKey(key, cert)


def create_server_cert(
    ca: CertifiedKey,
    domain: str,
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    days: int = DEFAULT_SERVER_DAYS,
    not_before: dt.datetime | None = None,
) -> CertifiedKey:
    check_server_key_type(key_type)
    name = validate_domain(domain)
    key = generate_private_key(key_type)
    extensions = _leaf_extensions(key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH)
    extensions.append((x509.SubjectAlternativeName([x509.DNSName(name)]), False))
    cert = _issue(
        subject=_name(name),
        public_key=key.public_key(),
        issuer=ca,
        not_before=not_before,
        days=days,
        extensions=extensions,
    )
    return CertifiedKey(key, cert)


def create_device_cert(
    ca: CertifiedKey,
    thing_name: str,
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    days: int = DEFAULT_DEVICE_DAYS,
    not_before: dt.datetime | None = None,
) -> CertifiedKey:
    validate_thing_name(thing_name)
    key = generate_private_key(key_type)
    cert = _issue_device(ca, thing_name, key.public_key(), days=days, not_before=not_before)
    return CertifiedKey(key, cert)


def _issue_device(
    ca: CertifiedKey,
    thing_name: str,
    public_key: PublicKey,
    *,
    days: int,
    not_before: dt.datetime | None,
) -> x509.Certificate:
    return _issue(
        subject=_name(thing_name),
        public_key=public_key,
        issuer=ca,
        not_before=not_before,
        days=days,
        extensions=_leaf_extensions(public_key, ExtendedKeyUsageOID.CLIENT_AUTH),
    )


def create_device_csr(thing_name: str, *, key_type: KeyType = DEFAULT_KEY_TYPE) -> KeyAndCsr:
    validate_thing_name(thing_name)
    key = generate_private_key(key_type)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(thing_name))
        .sign(key, _signature_hash(key))
    )
    return KeyAndCsr(key, csr)


def csr_thing_name(csr: x509.CertificateSigningRequest) -> str:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise PkiError(
            f"CSR subject {csr.subject.rfc4514_string()!r} must have exactly one CN; "
            "fix: create the CSR with CN=<thing name> (see `device-csr`)"
        )
    value = cns[0].value
    return validate_thing_name(value if isinstance(value, str) else value.decode())


def sign_device_csr(
    ca: CertifiedKey,
    csr: x509.CertificateSigningRequest,
    *,
    expected_thing_name: str | None = None,
    days: int = DEFAULT_DEVICE_DAYS,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """Issue a device cert for a CSR. Requested extensions are ignored on purpose:
    a CSR must never be able to ask for CA rights or other EKUs."""
    thing_name, public_key = check_device_csr(csr, expected_thing_name)
    return _issue_device(ca, thing_name, public_key, days=days, not_before=not_before)


def check_device_csr(
    csr: x509.CertificateSigningRequest, expected_thing_name: str | None = None
) -> tuple[str, PublicKey]:
    """The CSR's thing name and public key, or the reason it cannot be signed."""
    if not csr.is_signature_valid:
        raise PkiError("CSR signature is invalid; fix: regenerate the CSR with its own private key")
    thing_name = csr_thing_name(csr)
    if expected_thing_name is not None and thing_name != expected_thing_name:
        raise PkiError(
            f"CSR CN {thing_name!r} does not match --thing-name {expected_thing_name!r}; "
            "fix: use the CSR generated for that thing"
        )
    return thing_name, _check_supported_public_key(csr.public_key(), "CSR public key")


def server_chain(intermediate: x509.Certificate, root: x509.Certificate) -> list[x509.Certificate]:
    """Chain file contents for the server cert: issuing CA first, then the root."""
    chain = [intermediate, root]
    # Leaf + chain must fit AWS IoT's limit; raise, not assert, so it survives python -O.
    if 1 + len(chain) > MAX_SERVER_CHAIN_DEPTH:
        raise PkiError(f"server certificate chain longer than {MAX_SERVER_CHAIN_DEPTH}")
    return chain


def verify_certificate(
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    purpose: Literal["client", "server"],
    dns_name: str | None = None,
    at: dt.datetime | None = None,
) -> list[x509.Certificate]:
    """Path-validate ``cert``. Self-signed certs in ``chain`` are the trust anchors,
    the rest are untrusted intermediates. Returns the built chain (leaf first)."""
    roots = [c for c in chain if is_self_signed(c)]
    intermediates = [c for c in chain if not is_self_signed(c)]
    if not roots:
        raise PkiError("chain contains no self-signed root CA; fix: append the root CA certificate")
    builder = (
        PolicyBuilder()
        .store(Store(roots))
        .time(_normalize_time(at))
        # The depth counts intermediates only; leaf + intermediates + root must stay <= 5.
        .max_chain_depth(MAX_SERVER_CHAIN_DEPTH - 2)
    )
    try:
        if purpose == "server":
            if dns_name is None:
                raise PkiError("server verification needs a DNS name; fix: pass --dns-name")
            verifier = builder.build_server_verifier(x509.DNSName(validate_domain(dns_name)))
            return verifier.verify(cert, intermediates)
        # Device certs carry no SAN (CN = thing name), so allow SAN to be absent.
        ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )
        client = builder.extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
        ).build_client_verifier()
        return client.verify(cert, intermediates).chain
    except VerificationError as exc:
        raise ChainVerificationError(str(exc)) from exc


# --------------------------------------------------------------------------- file I/O


def pem_private_key(key: PrivateKey) -> bytes:
    # Unencrypted PKCS#8: ACM (server cert import) and device SDKs need plain keys;
    # protection comes from 0600 permissions and keeping CA keys offline.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_certs(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _read(path: Path, what: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} not found: {path}; fix: {fix}") from None
    except IsADirectoryError:
        raise PkiError(f"{what} is a directory, not a file: {path}; fix: {fix}") from None
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror}; fix: {fix}") from None


def load_certificate(
    path: Path, what: str = "certificate", fix: str = "pass a PEM certificate file"
) -> x509.Certificate:
    certs = load_certificates(path, what, fix)
    if len(certs) != 1:
        raise PkiError(
            f"{what} {path} contains {len(certs)} certificates, expected 1; "
            "fix: pass the single certificate file, not a chain"
        )
    return certs[0]


def load_certificates(
    path: Path, what: str = "certificate chain", fix: str = "pass a PEM certificate file"
) -> list[x509.Certificate]:
    data = _read(path, what, fix)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PkiError(f"{what} {path} is not a PEM certificate; fix: {fix}") from None


def load_private_key(
    path: Path, what: str = "private key", fix: str = "pass an unencrypted PEM private key"
) -> PrivateKey:
    data = _read(path, what, fix)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PkiError(
            f"{what} {path} is encrypted; fix: this tool reads unencrypted PEM keys only"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise PkiError(f"{what} {path} is not a PEM private key; fix: {fix}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise PkiError(f"{what} {path} is not an RSA or EC key; fix: {fix}")
    return key


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    fix = "pass the .csr.pem written by `device-csr`"
    data = _read(path, "CSR", fix)
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise PkiError(f"CSR {path} is not a PEM certificate signing request; fix: {fix}") from None


def load_ca(
    cert_path: Path, key_path: Path, role: str, *, cert_flag: str, key_flag: str
) -> CertifiedKey:
    """Load a CA cert + key and check they belong together and may sign certs."""
    cert = load_certificate(
        cert_path, f"{role} certificate ({cert_flag})", f"pass the {role} certificate PEM via {cert_flag}"
    )
    key = load_private_key(
        key_path, f"{role} private key ({key_flag})", f"pass the {role} private key PEM via {key_flag}"
    )
    if not is_ca_certificate(cert):
        raise PkiError(
            f"{role} certificate {cert_path} is not a CA certificate; "
            f"fix: pass the {role} cert via {cert_flag}"
        )
    if cert.not_valid_after_utc <= utc_now():
        renew = "`root-ca`, then a new `intermediate-ca`" if role == "root CA" else (
            "`intermediate-ca` and put it into the stack config (caCertificatePemFile)")
        raise PkiError(
            f"{role} certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
            f"fix: create a new one with {renew}"
        )
    if _public_key_der(cert) != _public_key_der(key):
        raise PkiError(
            f"{role} private key {key_path} does not match certificate {cert_path}; "
            f"fix: pass the key that was created together with that certificate via {key_flag}"
        )
    return CertifiedKey(key, cert)


def _fsync_write(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_outputs(files: Sequence[OutputFile], *, force: bool = False) -> None:
    """Write all files or none: existence is checked for every target first."""
    if not force:
        for f in files:
            if f.path.exists() or f.path.is_symlink():
                raise _exists_error(f.path)
    for f in files:
        if f.path.parent.exists() and not f.path.parent.is_dir():
            raise PkiError(f"--out-dir {f.path.parent} is not a directory; fix: pass a directory path")
    created: list[Path] = []
    temps: list[Path] = []
    try:
        for f in files:
            # 0700: the directory will hold private keys.
            f.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            mode = 0o600 if f.private else 0o644
            # O_EXCL: never follow a symlink or clobber a file that appeared after the check.
            target = f.path.with_name(f".{f.path.name}.tmp{os.getpid()}") if force else f.path
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            (temps if force else created).append(target)
            os.fchmod(fd, mode)  # umask may have stripped bits; make the mode exact
            _fsync_write(fd, data=f.data)
        if force:
            # Replace only after every temp file is complete, so a failure leaves old files intact.
            for f, tmp in zip(files, temps):
                os.replace(tmp, f.path)
            temps.clear()
    except FileExistsError as exc:
        _cleanup(created + temps)
        raise _exists_error(exc.filename) from None
    except OSError as exc:
        _cleanup(created + temps)
        raise PkiError(
            f"cannot write {exc.filename}: {exc.strerror}; fix: check --out-dir and its permissions"
        ) from None


def _exists_error(path: object) -> PkiError:
    return PkiError(
        f"output file already exists: {path}; fix: choose another --out-dir or pass --force to overwrite"
    )


def _cleanup(paths: Sequence[Path]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


# --------------------------------------------------------------------------- CLI


def _parse_days(value: str) -> int:
    # Bounded so a typo cannot overflow datetime or mint a practically eternal cert.
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"invalid days {value!r}; use a whole number 1..36500")
    return days


def _parse_time(value: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}; use ISO 8601, e.g. 2026-11-23T00:00:00Z"
        ) from None
    return _normalize_time(ts)


def _add_output_args(p: argparse.ArgumentParser, default_days: int) -> None:
    _add_out_dir_args(p)
    p.add_argument(
        "--days", type=_parse_days, default=default_days, help=f"validity in days (default: {default_days})"
    )
    p.add_argument(
        "--not-before",
        type=_parse_time,
        default=None,
        help="validity start, ISO 8601; naive times are UTC (default: now)",
    )


def _add_out_dir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out-dir", type=Path, default=Path("."), help="directory for output files (default: .)"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def _add_key_type(p: argparse.ArgumentParser, help_extra: str = "") -> None:
    p.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        default=DEFAULT_KEY_TYPE,
        help=f"key algorithm (default: {DEFAULT_KEY_TYPE}){help_extra}",
    )


def _add_issuer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-cert", type=Path, required=True, help=f"issuing CA certificate ({INTERMEDIATE_CERT_FILE})"
    )
    p.add_argument(
        "--ca-key", type=Path, required=True, help=f"issuing CA private key ({INTERMEDIATE_KEY_FILE})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pki", description="PKI for AWS IoT Core (root/intermediate CA, certs)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("root-ca", help="create a self-signed root CA (key + cert)")
    p.add_argument("--common-name", default="IoT Root CA",
                   help="subject CN of the root CA (default: %(default)s)")
    p.add_argument("--organization", default=None, help="subject O (default: none)")
    _add_key_type(p)
    _add_output_args(p, DEFAULT_ROOT_DAYS)

    p = sub.add_parser(
        "intermediate-ca",
        help=f"create the issuing CA that is registered in AWS IoT (also writes {CA_CHAIN_FILE})",
    )
    p.add_argument("--root-cert", type=Path, required=True, help=f"root CA cert ({ROOT_CERT_FILE})")
    p.add_argument("--root-key", type=Path, required=True, help=f"root CA key ({ROOT_KEY_FILE})")
    p.add_argument("--common-name", default="IoT Device Issuing CA",
                   help="subject CN of the issuing CA (default: %(default)s)")
    p.add_argument("--organization", default=None, help="subject O (default: none)")
    p.add_argument(
        "--stack", default="dev", help="Pulumi stack for the printed config command (default: dev)"
    )
    p.add_argument(
        "--replaces", type=Path, default=None, metavar="CURRENT_CA_CERT",
        help="CA rotation: the intermediate CA certificate this one succeeds; the printed config "
             "lists both (the current one as `previous`, this one as `issuing`)")
    p.add_argument(
        "--name", default=None,
        help="with --replaces: this CA's name in caCertificates (1-16 lowercase letters and "
             "digits, e.g. ca2027)")
    _add_key_type(p)
    _add_output_args(p, DEFAULT_INTERMEDIATE_DAYS)

    p = sub.add_parser("server-cert", help="server certificate for the custom IoT domain")
    p.add_argument("--domain", required=True, help="device endpoint domain, e.g. iot.example.com")
    _add_issuer_args(p)
    p.add_argument(
        "--root-cert", type=Path, required=True, help="root CA certificate (for the chain file)"
    )
    _add_key_type(p, "; AWS IoT accepts only ec-p256 or rsa-2048 here")
    _add_output_args(p, DEFAULT_SERVER_DAYS)

    p = sub.add_parser("device-cert", help="device key + certificate (CN = thing name)")
    p.add_argument("--thing-name", required=True, help="the AWS IoT thing name; becomes the CN")
    _add_issuer_args(p)
    _add_key_type(p)
    _add_output_args(p, DEFAULT_DEVICE_DAYS)

    p = sub.add_parser("device-csr", help="device key + CSR (CN = thing name)")
    p.add_argument("--thing-name", required=True,
                   help="the AWS IoT thing name; becomes the CSR's CN")
    _add_key_type(p)
    _add_out_dir_args(p)

    p = sub.add_parser("sign-csr", help="sign a device CSR with the issuing CA (clientAuth)")
    p.add_argument("--csr", type=Path, required=True, help="the device's CSR (<thing>.csr.pem)")
    p.add_argument("--thing-name", default=None, help="require the CSR CN to equal this thing name")
    _add_issuer_args(p)
    _add_output_args(p, DEFAULT_DEVICE_DAYS)

    p = sub.add_parser("verify", help="verify a certificate against a chain (intermediate + root)")
    p.add_argument("--cert", type=Path, required=True, help="the certificate to verify (PEM)")
    p.add_argument(
        "--chain", type=Path, required=True,
        help=f"PEM bundle: intermediate(s) + root, e.g. the {CA_CHAIN_FILE} of intermediate-ca",
    )
    p.add_argument("--dns-name", default=None, help="verify as a server cert for this name")
    p.add_argument(
        "--at", type=_parse_time, default=None, help="verification time, ISO 8601 (default: now)"
    )
    return parser


def _load_issuer(a: argparse.Namespace) -> CertifiedKey:
    return load_ca(
        a.ca_cert, a.ca_key, "intermediate CA", cert_flag="--ca-cert", key_flag="--ca-key"
    )


def _key_and_cert(targets: Sequence[Path], ck: CertifiedKey) -> list[OutputFile]:
    return [
        OutputFile(targets[0], pem_private_key(ck.key), private=True),
        OutputFile(targets[1], pem_certs(ck.cert)),
    ]


def config_path(path: Path) -> str:
    """Path as stack config should hold it: the stack config resolves relative paths
    against the Pulumi project directory, so make it relative to that when possible."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / "Pulumi.yaml").is_file():
            return str(resolved.relative_to(parent))
    return str(resolved)


def _report_written(files: Sequence[OutputFile]) -> None:
    for f in files:
        kind = "private key, mode 0600" if f.private else "mode 0644"
        print(f"wrote {f.path} ({kind})")


def _warn_if_clamped(cert: x509.Certificate, not_before: dt.datetime | None, days: int) -> None:
    wanted = _normalize_time(not_before) + dt.timedelta(days=days)
    if cert.not_valid_after_utc < wanted:
        end = cert.not_valid_after_utc
        print(f"note: validity shortened to the issuing CA's expiry ({end:%Y-%m-%d})", file=sys.stderr)


def _cmd_root_ca(a: argparse.Namespace) -> int:
    targets = [a.out_dir / ROOT_KEY_FILE, a.out_dir / ROOT_CERT_FILE]
    _precheck(targets, a.force)  # fail before spending time on key generation
    ca = create_root_ca(
        a.common_name,
        organization=a.organization,
        key_type=a.key_type,
        days=a.days,
        not_before=a.not_before,
    )
    files = _key_and_cert(targets, ca)
    write_outputs(files, force=a.force)
    _report_written(files)
    print(f"Keep {targets[0]} offline; it is only needed to create or renew the intermediate CA.")
    return 0


def _rotation_config_lines(current: Path, new: Path, name: str, stack: str) -> list[str]:
    """The stack config of a CA rotation's overlap (components/edge/cas.py): the current CA
    keeps the name `ca` (so its registration and JITR rule keep their resources)."""
    q = shlex.quote
    entries = [("ca", config_path(current), "previous"), (name, config_path(new), "issuing")]
    lines = [f"  pulumi config rm {PULUMI_CA_CONFIG_KEY} -s {q(stack)}"]
    for index, (ca_name, path, state) in enumerate(entries):
        for field_name, value in (("name", ca_name), ("pemFile", path), ("state", state)):
            lines.append(f"  pulumi config set --path {q(f'caCertificates[{index}].{field_name}')} "
                         f"{q(value)} -s {q(stack)}")
    return lines


def _cmd_intermediate_ca(a: argparse.Namespace) -> int:
    targets = [a.out_dir / INTERMEDIATE_KEY_FILE, a.out_dir / INTERMEDIATE_CERT_FILE,
               a.out_dir / CA_CHAIN_FILE]
    if (a.replaces is None) != (a.name is None):
        raise PkiError("--replaces and --name go together: the CA this one succeeds, and this "
                        "one's name in caCertificates")
    if a.name is not None and (not re.fullmatch(r"[a-z][a-z0-9]{0,15}", a.name) or a.name == "ca"):
        raise PkiError(f"--name {a.name!r}: 1-16 lowercase letters and digits, starting with a "
                        "letter, not 'ca' (the current CA keeps that name)")
    if a.replaces is not None:
        try:
            current = x509.load_pem_x509_certificate(a.replaces.read_bytes())
        except (OSError, ValueError) as error:
            raise PkiError(f"--replaces {a.replaces}: not a readable PEM certificate ({error})") from None
        if current.subject.rfc4514_string() == x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, a.common_name)]).rfc4514_string():
            raise PkiError(f"--common-name {a.common_name!r} is the current CA's subject; give the "
                            "new CA its own (e.g. 'IoT Device Issuing CA 2027') so certificates "
                            "say which CA issued them")
    # Inputs first, then outputs: the real problem is reported before "file exists".
    root = load_ca(
        a.root_cert, a.root_key, "root CA", cert_flag="--root-cert", key_flag="--root-key"
    )
    _precheck(targets, a.force)
    ca = create_intermediate_ca(
        root,
        a.common_name,
        organization=a.organization,
        key_type=a.key_type,
        days=a.days,
        not_before=a.not_before,
    )
    _warn_if_clamped(ca.cert, a.not_before, a.days)
    files = [*_key_and_cert(targets, ca), OutputFile(targets[2], pem_certs(ca.cert, root.cert))]
    write_outputs(files, force=a.force)
    _report_written(files)
    cert_arg, stack_arg = shlex.quote(config_path(targets[1])), shlex.quote(a.stack)
    if a.replaces is not None:
        print("CA rotation: list both CAs in stack config, then `pulumi up` registers this one "
              "beside the current one in every region (components/edge/README.md, "
              "\"Rotating our CA\"):")
        print("\n".join(_rotation_config_lines(a.replaces, targets[1], a.name, a.stack)))
    else:
        print("Register this CA in AWS IoT by putting its certificate (not the key) into stack "
              "config:")
        print(f"  pulumi config set {PULUMI_CA_CONFIG_KEY} {cert_arg} -s {stack_arg}")
    print(f"Never put {targets[0]} (or any private key) into Pulumi config; keep it in a secrets store.")
    print(f"Check a device certificate against {targets[2]}:")
    print(f"  python -m tools.pki verify --cert <thing>.cert.pem --chain {shlex.quote(str(targets[2]))}")
    return 0


def _cmd_server_cert(a: argparse.Namespace) -> int:
    check_server_key_type(a.key_type)  # before reading any input file
    domain = validate_domain(a.domain)
    targets = [a.out_dir / f"{domain}{ext}" for ext in (".key", ".cert.pem", ".chain.pem")]
    ca = _load_issuer(a)
    root = load_certificate(
        a.root_cert, "root CA certificate (--root-cert)", "pass the root CA certificate via --root-cert"
    )
    chain = server_chain(ca.cert, root)
    _precheck(targets, a.force)
    server = create_server_cert(
        ca, domain, key_type=a.key_type, days=a.days, not_before=a.not_before
    )
    _warn_if_clamped(server.cert, a.not_before, a.days)
    # Refuse to write a chain that would not validate (e.g. --root-cert from another PKI).
    try:
        verify_certificate(
            server.cert, chain, purpose="server", dns_name=domain, at=server.cert.not_valid_before_utc
        )
    except ChainVerificationError as exc:
        raise PkiError(
            f"server cert does not chain to --root-cert {a.root_cert} ({exc}); "
            "fix: pass the root CA that signed --ca-cert"
        ) from None
    files = [
        OutputFile(targets[0], pem_private_key(server.key), private=True),
        OutputFile(targets[1], pem_certs(server.cert)),
        OutputFile(targets[2], pem_certs(*chain)),
    ]
    write_outputs(files, force=a.force)
    _report_written(files)
    return 0


def _cmd_device_cert(a: argparse.Namespace) -> int:
    thing = validate_thing_name(a.thing_name)
    targets = [a.out_dir / f"{thing}.key", a.out_dir / f"{thing}.cert.pem"]
    ca = _load_issuer(a)
    _precheck(targets, a.force)
    dev = create_device_cert(ca, thing, key_type=a.key_type, days=a.days, not_before=a.not_before)
    _warn_if_clamped(dev.cert, a.not_before, a.days)
    files = _key_and_cert(targets, dev)
    write_outputs(files, force=a.force)
    _report_written(files)
    return 0


def _cmd_device_csr(a: argparse.Namespace) -> int:
    thing = validate_thing_name(a.thing_name)
    targets = [a.out_dir / f"{thing}.key", a.out_dir / f"{thing}.csr.pem"]
    _precheck(targets, a.force)
    kc = create_device_csr(thing, key_type=a.key_type)
    files = [
        OutputFile(targets[0], pem_private_key(kc.key), private=True),
        OutputFile(targets[1], kc.csr.public_bytes(serialization.Encoding.PEM)),
    ]
    write_outputs(files, force=a.force)
    _report_written(files)
    return 0


def _cmd_sign_csr(a: argparse.Namespace) -> int:
    if a.thing_name is not None:
        validate_thing_name(a.thing_name)
    csr = load_csr(a.csr)
    thing, _ = check_device_csr(csr, a.thing_name)  # e.g. a CN mismatch before "file exists"
    targets = [a.out_dir / f"{thing}.cert.pem"]
    ca = _load_issuer(a)
    _precheck(targets, a.force)
    cert = sign_device_csr(
        ca, csr, expected_thing_name=a.thing_name, days=a.days, not_before=a.not_before
    )
    _warn_if_clamped(cert, a.not_before, a.days)
    files = [OutputFile(targets[0], pem_certs(cert))]
    write_outputs(files, force=a.force)
    _report_written(files)
    return 0


def _cmd_verify(a: argparse.Namespace) -> int:
    cert = load_certificate(a.cert, "certificate (--cert)", "pass the PEM certificate via --cert")
    chain = load_certificates(
        a.chain, "chain (--chain)", "pass a PEM bundle with the intermediate and root CA via --chain"
    )
    dns_name: str | None = a.dns_name
    if dns_name is not None:
        purpose: Literal["client", "server"] = "server"
    elif has_extended_key_usage(cert, ExtendedKeyUsageOID.CLIENT_AUTH):
        purpose = "client"
    elif has_extended_key_usage(cert, ExtendedKeyUsageOID.SERVER_AUTH):
        purpose = "server"
        sans = _dns_sans(cert)
        if not sans:
            raise PkiError(f"server certificate {a.cert} has no DNS SAN; fix: pass --dns-name")
        dns_name = sans[0]
    else:
        raise PkiError(
            f"certificate {a.cert} has neither clientAuth nor serverAuth EKU; "
            "fix: pass --dns-name to verify it as a server certificate"
        )
    try:
        built = verify_certificate(cert, chain, purpose=purpose, dns_name=dns_name, at=a.at)
    except ChainVerificationError as exc:
        print(f"FAILED: {a.cert}: {exc}")
        return 1
    path = " -> ".join(c.subject.rfc4514_string() for c in built)
    target = f" for {dns_name}" if purpose == "server" else ""
    print(f"OK: {purpose} certificate{target}: {path}")
    return 0


def _dns_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def _precheck(paths: Sequence[Path], force: bool) -> None:
    # Same check write_outputs does, run early so nothing slow or partial happens first.
    if not force:
        for p in paths:
            if p.exists() or p.is_symlink():
                raise _exists_error(p)


_COMMANDS = {
    "root-ca": _cmd_root_ca,
    "intermediate-ca": _cmd_intermediate_ca,
    "server-cert": _cmd_server_cert,
    "device-cert": _cmd_device_cert,
    "device-csr": _cmd_device_csr,
    "sign-csr": _cmd_sign_csr,
    "verify": _cmd_verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except PkiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
