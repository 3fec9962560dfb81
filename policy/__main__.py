"""Entry point the Pulumi CLI runs for `--policy-pack policy`: serves every guardrail.

The CLI runs this file with `policy/` on sys.path; the guardrails are imported as the
`policy` package, so the repository root goes on the path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.pack import build_pack  # noqa: E402

build_pack()
