"""The documents of the AWS managed policies, so an attachment is judged by what it grants.

Standard library only. `aws_managed_policies.json.xz` beside this file holds every AWS
managed policy's default version (name -> document), refreshed from moto's maintained copy
by `python -m tools.managed_policies`. The offline harness answers `aws.iam.get_policy` from
the same table, so what the runner sees and what the guardrails judge are the same
documents. An AWS managed policy missing from the snapshot is judged dangerous (a name the
pack cannot read), never skipped.
"""

from __future__ import annotations

import json
import lzma
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent / "aws_managed_policies.json.xz"
MANAGED_POLICY_ARN_MARKER = ":iam::aws:policy/"


@lru_cache(maxsize=1)
def load_snapshot() -> dict[str, Any]:
    documents: dict[str, Any] = json.loads(lzma.decompress(SNAPSHOT.read_bytes()))
    return documents


class _Documents(Mapping[str, Any]):
    """name -> document, read from the snapshot on first use (the pack starts faster)."""

    def __getitem__(self, name: str) -> Any:
        return load_snapshot()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(load_snapshot())

    def __len__(self) -> int:
        return len(load_snapshot())


AWS_MANAGED_POLICIES: Mapping[str, Any] = _Documents()


def managed_policy_name(arn: str) -> str | None:
    """`AdministratorAccess` from `arn:aws:iam::aws:policy/AdministratorAccess` (any path)."""
    if MANAGED_POLICY_ARN_MARKER not in arn:
        return None
    return arn.rsplit("/", 1)[-1]


def managed_policy_document(arn: str) -> Mapping[str, Any] | None:
    name = managed_policy_name(arn)
    document = AWS_MANAGED_POLICIES.get(name) if name else None
    return document if isinstance(document, Mapping) else None
