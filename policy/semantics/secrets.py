"""Is a value a secret? Judged by its shape and by the name it is stored under, wherever it
sits: an environment variable, an SSM parameter, an HTTP header of a rule, pipe or event
target, a Step Functions definition, or deep inside a JSON blob under a neutral name.

Value shapes that are secrets whatever the name: AWS access key ids and secret keys, private
keys (PEM, or base64 DER without the armour), well-known token formats (GitHub, Slack,
Stripe, Google API keys, JWTs), Slack webhook URLs, credentials in URLs (`redis://:pw@host`),
`password=` in connection strings (ADO `;`, libpq spaces, JDBC `?`/`&`), and `Bearer`/`Basic`
authorization values.

Names that announce a secret (SECRET, PASSWORD, PASS, PASSCODE, TOKEN, API_KEY, PRIVKEY,
AUTHORIZATION, SALT, PEPPER, CREDENTIAL, KEY as a word...; camelCase and dashes count as
word breaks) make the value a secret unless it is a reference to where the secret lives (an
ARN, an SSM path, a dynamic reference, an alias, a JSONPath, a URL without credentials), a
switch, public key material (a PEM public key or certificate), or the name is a setting
*about* a secret (`*_TTL`, `*_ARN`, `TOKEN_AUDIENCE`...). Numbers count: a PIN is a secret.
Under the weak name KEY, identifiers and KMS key ids (`mrk-...`, a key UUID) are not secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

_ALWAYS_SECRET = (
    ("AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("PEM private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Slack webhook", re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]{20,}")),
    ("Stripe key", re.compile(r"\b[sr]k_(live|test)_[A-Za-z0-9]{16,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("credentials in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.I)),
    ("password in a connection string",
     re.compile(r"(^|[;\s?&])(password|pwd|passwd|accountkey|sharedaccesskey)\s*=\s*[^;\s&]+", re.I)),
    ("credential in an authorization value",
     re.compile(r"^\s*'?(bearer|basic|token|digest)\s+(?![a-z]+(\s|'?$))[A-Za-z0-9._~+/=-]{12,}'?\s*$",
                re.I)),
)
# 40 characters of base64 mixing cases and digits: the shape of an AWS secret access key (a
# 40-digit hex string, e.g. a git commit, is not).
_AWS_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]{60,}={0,2}$")

_STRONG_NAME = re.compile(
    r"(SECRET|PASSW(OR)?D|(^|_)PASS(CODE|PHRASE|WD)?($|_)|(^|_)PWD($|_)|TOKEN|API_?KEY|"
    r"PRIV(ATE)?_?KEY|ACCESS_?KEY|CREDENTIAL|(^|_)SALT($|_)|PEPPER|(^|_)PIN($|_)|"
    r"SIGNING_?KEY|HMAC|CLIENT_?SECRET|CONNECTION_?STRING|(^|_)DSN($|_)|AUTH_?KEY|"
    r"AUTHORI[SZ]ATION|(^|_)AUTH(_HEADER)?($|_)|BEARER|COOKIE|SESSION_?ID)", re.IGNORECASE)
_WEAK_NAME = re.compile(r"(^|_)KEY($|_)", re.IGNORECASE)
# Settings *about* a secret, not the secret: where it lives, how long it lasts, its size,
# who it is for.
_SETTING_NAME = re.compile(
    r"(_ARN|_NAME|_ID|_IDS|_PARAM|_PARAMETER|_PATH|_TABLE|_URL|_URI|_REGION|_ALIAS|_TTL|"
    r"_HEADER_NAME|_SECONDS|_MINUTES|_HOURS|_DAYS|_LENGTH|_SIZE|_BITS|_ENABLED|_COUNT|_PREFIX|"
    r"_FIELD|_ATTRIBUTE|_VERSION|_TYPE|_ALGORITHM|_ALG|_ROTATION|_EXPIRY|_EXPIRES|_LIMIT|_MODE|"
    r"_FORMAT|_SPEC|_USAGE|_STAGE|_LOCATION|_ENDPOINT|_AUDIENCE|_ISSUER|_SCOPES?|_KID|_USE)$",
    re.IGNORECASE)
_REFERENCE_VALUE = re.compile(
    r"^(arn:|/|\{\{resolve:|alias/|ssm:|secretsmanager:|\$\{|\$\.|\$\$\.|\{%|"
    r"https?://[^@\s]*$|s3://[^@\s]*$)", re.IGNORECASE)
_SWITCH = re.compile(r"^(true|false|yes|no|on|off|enabled|disabled|none|null)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z_.-]{0,39}$|^[\w.-]+(/[\w.-]+)+$")
# KMS key ids: what a KEY-named setting usually holds.
_KMS_KEY_ID = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_PUBLIC_MATERIAL = re.compile(r"^\s*-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE|"
                              r"X509 CRL|OPENSSH PUBLIC KEY)-----", re.IGNORECASE)
_PUBLIC_NAME = re.compile(r"(^|_)(PUBLIC|PUB|CERT|CERTIFICATE)($|_)", re.IGNORECASE)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(text: str) -> bool:
    return len(text) >= 16 and entropy(text) >= 3.5 and any(c.isdigit() for c in text) \
        and any(c.isalpha() for c in text)


def words(name: str) -> str:
    """`dbPassword`, `db-password`, `db.password` -> `db_Password`: camelCase, dashes and dots
    are word breaks, so `(^|_)PASS($|_)` finds `dbPass` too."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", spaced)


def _der_private_key(text: str) -> bool:
    """Base64 of a DER private key without PEM armour: PKCS#1, PKCS#8 and SEC1 all start with
    SEQUENCE { INTEGER 0|1 ...}; public keys and certificates start SEQUENCE { SEQUENCE }."""
    compact = re.sub(r"\s+", "", text)
    if not _BASE64.match(compact):
        return False
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    if len(data) < 32 or data[0] != 0x30:
        return False
    index = 2 + ((data[1] & 0x7F) if data[1] & 0x80 else 0)
    return data[index:index + 3] in (b"\x02\x01\x00", b"\x02\x01\x01")


def secret_shape(value: str) -> str | None:
    """What kind of secret the value is by its shape alone, or None."""
    for label, pattern in _ALWAYS_SECRET:
        if pattern.search(value):
            return label
    text = value.strip()
    if _AWS_SECRET_KEY.match(text) and any(c.isupper() for c in text) \
            and any(c.islower() for c in text) and any(c.isdigit() for c in text):
        return "AWS secret access key"
    if _der_private_key(text):
        return "private key (base64 DER)"
    return None


def why_secret(name: str, value: object) -> str | None:
    """Why `name=value` is a secret, or None when it is not."""
    if value is None or isinstance(value, bool):
        return None
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    shape = secret_shape(text)
    if shape:
        return f"its value has the shape of a secret ({shape})"
    stripped = text.strip()
    label = words(name)
    if not stripped or _SETTING_NAME.search(label) or _REFERENCE_VALUE.match(stripped) \
            or _SWITCH.match(stripped) or _PUBLIC_MATERIAL.match(stripped):
        return None
    if _STRONG_NAME.search(label) and not _PUBLIC_NAME.search(label):
        return "its name says it holds a secret and its value is not a reference (ARN, path)"
    if _WEAK_NAME.search(label) and not _PUBLIC_NAME.search(label) \
            and not _IDENTIFIER.match(stripped) and not _KMS_KEY_ID.match(stripped) \
            and (_random_looking(stripped) or stripped.isdigit() and len(stripped) >= 4):
        return "its name says KEY and its value looks like key material"
    return None


_PAIR_NAME_KEYS = ("key", "name", "headerName", "Name", "Key")
_PAIR_VALUE_KEYS = ("value", "Value", "headerValue")


def _pair(mapping: Mapping[str, Any]) -> tuple[str, Any] | None:
    """A `{key|name: ..., value: ...}` entry (HTTP headers, tags, parameters) as name -> value."""
    names = [mapping[k] for k in _PAIR_NAME_KEYS if isinstance(mapping.get(k), str)]
    values = [k for k in _PAIR_VALUE_KEYS if k in mapping]
    if len(names) == 1 and len(values) == 1 and len(mapping) <= 4:
        return names[0], mapping[values[0]]
    return None


def _decoded(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and len(stripped) >= 2:
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return None
    return None


def find(value: Any, name: str = "", path: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(path, why) of every secret in a structure: mappings and lists are walked, JSON text
    is decoded and walked (a blob under a neutral name), `{name, value}` pairs are judged
    under their name, other scalars under the nearest key."""
    if depth > 12:
        return
    if isinstance(value, Mapping):
        pair = _pair(value)
        if pair is not None:
            yield from find(pair[1], str(pair[0]), f"{path}[{pair[0]}]", depth + 1)
            return
        for key, item in value.items():
            yield from find(item, str(key), f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for index, item in enumerate(value):
            yield from find(item, name, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str) and (decoded := _decoded(value)) is not None:
        yield from find(decoded, name, path, depth + 1)
    elif name.endswith(".$"):
        return  # Amazon States Language: a path or intrinsic function evaluated at run time
    else:
        reason = why_secret(name, value)
        if reason:
            yield path or name, reason
