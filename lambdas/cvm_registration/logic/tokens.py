"""Device tokens: `hex(SHA256("<salt>//<uid>"))` (the seed's formula), or
`hex(SHA256("<salt>//<uid>+<uid2>"))` for devices with a second identifier.

Salts are per manufacturing batch and versioned (a rotated salt gets a new version; records
name the version they were imported with). The secret holds
`{"batches": {"<batch>": {"current": <n>, "salts": {"<n>": "<salt>", ...}}}}`.

`match_salt` compares the presented token with the token of *every* salt, always all of
them, each with `hmac.compare_digest`: which batch a device belongs to is learnt from the
token itself, before any database read, so an unknown UID and a wrong token take the same
path, the same time and get the same answer (no oracle, and no database read for guesses).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.contracts.cvm_device import BATCH_PATTERN


@dataclass(frozen=True, order=True)
class SaltRef:
    batch: str
    version: int


class SaltBookError(ValueError):
    """The salts secret does not have the documented shape (an operator error)."""


def device_token(salt: str, uid: str, uid2: str | None = None) -> str:
    identity = uid if uid2 is None else f"{uid}+{uid2}"
    return hashlib.sha256(f"{salt}//{identity}".encode()).hexdigest()


@dataclass(frozen=True)
class SaltBook:
    salts: Mapping[SaltRef, str]

    @classmethod
    def from_secret(cls, text: str) -> SaltBook:
        try:
            doc = json.loads(text)
            batches = doc["batches"]
            if not isinstance(batches, dict):
                raise TypeError("batches")
            salts: dict[SaltRef, str] = {}
            for batch, entry in batches.items():
                if not BATCH_PATTERN.fullmatch(batch):
                    raise ValueError(f"batch name {batch!r}")
                for version, salt in entry["salts"].items():
                    if not isinstance(salt, str) or not salt:
                        raise ValueError(f"salt of {batch}/{version}")
                    salts[SaltRef(batch, int(version))] = salt
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Never echo the document: it is the secret.
            raise SaltBookError(f"salts secret is malformed ({type(error).__name__})") from None
        return cls(salts)


def match_salt(book: SaltBook, uid: str, uid2: str | None, presented: str) -> SaltRef | None:
    """The salt whose token for this identity equals `presented`; None when none does."""
    presented_bytes = presented.lower().encode()
    found: SaltRef | None = None
    for ref, salt in sorted(book.salts.items()):
        equal = hmac.compare_digest(device_token(salt, uid, uid2).encode(), presented_bytes)
        if equal and found is None:
            found = ref
    return found
