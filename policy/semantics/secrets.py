"""Is an environment variable a secret? Judged by the value's shape and by the name.

Value shapes that are secrets whatever the name: AWS access key ids and secret keys, PEM
private keys, well-known token formats (GitHub, Slack, Stripe, Google API keys, JWTs),
Slack webhook URLs, and URLs or connection strings carrying a password.

Names that announce a secret (SECRET, PASSWORD, TOKEN, API_KEY, PRIVATE_KEY, SALT, PEPPER,
PASSPHRASE, CREDENTIAL, KEY as a word...) make the value a secret unless it is a reference
to where the secret lives (an ARN, an SSM path, a dynamic reference, an alias, a URL without
credentials), a switch (true/false), or a setting named as such (`*_TTL`, `*_ARN`, ...).
Numbers count: a PIN is a secret. For the weak name `KEY`, plain identifiers (`thingName`,
`reports/daily.csv`) are field names and object keys, not secrets.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_ALWAYS_SECRET = (
    ("AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("PEM private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Slack webhook", re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]{20,}")),
    ("Stripe key", re.compile(r"\b[sr]k_(live|test)_[A-Za-z0-9]{16,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("credentials in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)),
    ("password in a connection string",
     re.compile(r"(^|;)\s*(password|pwd|accountkey|sharedaccesskey)\s*=\s*[^;\s]+", re.I)),
)
# 40 characters of base64 mixing cases and digits: the shape of an AWS secret access key (a
# 40-digit hex string, e.g. a git commit, is not).
_AWS_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$")

_STRONG_NAME = re.compile(
    r"(SECRET|PASSW(OR)?D|(^|_)PWD($|_)|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|"
    r"(^|_)SALT($|_)|PEPPER|PASSPHRASE|(^|_)PIN($|_)|SIGNING_?KEY|HMAC|CLIENT_?SECRET|"
    r"CONNECTION_?STRING|(^|_)DSN($|_)|AUTH_?KEY)", re.IGNORECASE)
_WEAK_NAME = re.compile(r"(^|_)KEY($|_)", re.IGNORECASE)
# Settings *about* a secret, not the secret: where it lives, how long it lasts, its size.
_SETTING_NAME = re.compile(
    r"(_ARN|_NAME|_ID|_IDS|_PARAM|_PARAMETER|_PATH|_TABLE|_URL|_URI|_REGION|_ALIAS|_TTL|"
    r"_HEADER|_SECONDS|_MINUTES|_HOURS|_DAYS|_LENGTH|_SIZE|_BITS|_ENABLED|_COUNT|_PREFIX|"
    r"_FIELD|_ATTRIBUTE|_VERSION|_TYPE|_ALGORITHM|_ROTATION|_EXPIRY|_EXPIRES|_LIMIT|_MODE|"
    r"_FORMAT|_SPEC|_USAGE|_STAGE|_LOCATION|_ENDPOINT)$", re.IGNORECASE)
_REFERENCE_VALUE = re.compile(
    r"^(arn:|/|\{\{resolve:|alias/|ssm:|secretsmanager:|\$\{|https?://[^@\s]*$|s3://[^@\s]*$)",
    re.IGNORECASE)
_SWITCH = re.compile(r"^(true|false|yes|no|on|off|enabled|disabled|none|null)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z_.-]{0,39}$|^[\w.-]+(/[\w.-]+)+$")


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(text: str) -> bool:
    return len(text) >= 16 and entropy(text) >= 3.5 and any(c.isdigit() for c in text) \
        and any(c.isalpha() for c in text)


def secret_shape(value: str) -> str | None:
    """What kind of secret the value is by its shape alone, or None."""
    for label, pattern in _ALWAYS_SECRET:
        if pattern.search(value):
            return label
    text = value.strip()
    if _AWS_SECRET_KEY.match(text) and any(c.isupper() for c in text) \
            and any(c.islower() for c in text) and any(c.isdigit() for c in text):
        return "AWS secret access key"
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
    if not stripped or _SETTING_NAME.search(name) or _REFERENCE_VALUE.match(stripped) \
            or _SWITCH.match(stripped):
        return None
    if _STRONG_NAME.search(name):
        return "its name says it holds a secret and its value is not a reference (ARN, path)"
    if _WEAK_NAME.search(name) and not _IDENTIFIER.match(stripped) \
            and (_random_looking(stripped) or stripped.isdigit() and len(stripped) >= 4):
        return "its name says KEY and its value looks like key material"
    return None
