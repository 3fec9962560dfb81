"""Refresh the policy pack's snapshot of the AWS managed policies' documents.

    python -m tools.managed_policies [--check]

The pack judges an attached AWS managed policy by its document (`AWSIoTFullAccess` is
`iot:*` on `*`, refused like the same inline statement), so it ships every managed policy's
default version, taken from moto's maintained copy of the AWS managed policies (refreshed by
moto from IAM's `ListPolicies`/`GetPolicyVersion`, moto/iam/aws_managed_policies.py). The
snapshot is `policy/semantics/aws_managed_policies.json.xz` (name -> document, xz-compressed
JSON, about 0.25 MB): the pack's runtime needs no moto. `--check` fails when the snapshot is
not what the installed moto gives; without it, the snapshot is rewritten and the policies
added, changed or removed are listed for review.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from typing import Any

from policy.semantics.managed_policies import SNAPSHOT, load_snapshot


def from_moto() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data = json.loads(aws_managed_policies_data)
    return {name: entry["Document"] for name, entry in sorted(data.items())
            if isinstance(entry, dict) and isinstance(entry.get("Document"), dict)}


def encode(documents: dict[str, Any]) -> bytes:
    text = json.dumps(documents, sort_keys=True, separators=(",", ":")).encode()
    return lzma.compress(text, preset=9 | lzma.PRESET_EXTREME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.managed_policies",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if the snapshot differs from the installed moto's copy")
    options = parser.parse_args(argv)
    fresh = from_moto()
    current = load_snapshot() if SNAPSHOT.is_file() else {}
    added = sorted(set(fresh) - set(current))
    removed = sorted(set(current) - set(fresh))
    changed = sorted(n for n in set(fresh) & set(current) if fresh[n] != current[n])
    summary = f"{len(fresh)} managed policies: {len(added)} added, {len(changed)} changed, {len(removed)} removed"
    if options.check:
        if added or removed or changed:
            print(f"{SNAPSHOT} is stale ({summary}); run `python -m tools.managed_policies`",
                  file=sys.stderr)
            return 1
        print(f"{SNAPSHOT}: up to date ({len(fresh)} managed policies)")
        return 0
    SNAPSHOT.write_bytes(encode(fresh))
    print(summary)
    for label, names in (("added", added), ("changed", changed), ("removed", removed)):
        if names:
            print(f"  {label}: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
