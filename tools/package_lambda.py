"""Build the Lambda dependencies layer that `pulumi up` deploys (see components/packaging.py).

    python -m tools.package_lambda [--requirements lambdas/requirements.txt] [--out build/...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from components.packaging import (
    ARCHITECTURE,
    LAYER_ZIP,
    REQUIREMENTS,
    RUNTIME,
    PackagingError,
    build_layer,
    sha256_base64,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.package_lambda",
        description=f"Build the Lambda dependencies layer ({RUNTIME}, {ARCHITECTURE}) "
                    "that `pulumi up` deploys.")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--out", type=Path, default=LAYER_ZIP)
    args = parser.parse_args(argv)
    try:
        path = build_layer(args.requirements, args.out)
    except PackagingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    data = path.read_bytes()
    print(f"wrote {os.path.relpath(path)} ({len(data)} bytes, sha256 {sha256_base64(data)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
