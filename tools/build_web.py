"""Build the installer web app (web/installer/) into build/web/installer/, the bundle `pulumi up`
deploys (components/installer_web). Deterministic: fixed file names, the locked dependencies
(`npm ci` from package-lock.json), no timestamps; the same sources give the same bytes.

    python -m tools.build_web            # npm ci when the lock changed, type-check, build, verify
    python -m tools.build_web --check    # build into a temporary directory and compare

Needs Node 20.19+ and npm (Debian: `apt-get install nodejs npm`). The build refuses a bundle
with anything but the expected files, or with anything shaped like a secret.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from components.installer_web.bundle import BUNDLE_FILES, WEB_BUNDLE_DIR
from components.packaging import ROOT
from policy.semantics.secrets import secret_shape

APP_DIR = ROOT / "web" / "installer"
LOCK = APP_DIR / "package-lock.json"
STAMP = APP_DIR / "node_modules" / ".installed-lock-sha256"
NPM_TIMEOUT_SECONDS = 600


class BuildError(Exception):
    """The build cannot go on; the message says what to do."""


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, cwd=APP_DIR, capture_output=True, text=True,
                                timeout=NPM_TIMEOUT_SECONDS, check=False,
                                env={**os.environ, "NO_COLOR": "1", "CI": os.environ.get("CI", "1")})
    except FileNotFoundError:
        raise BuildError(f"{command[0]} is not installed: install Node 20.19+ and npm "
                         "(Debian: apt-get install nodejs npm)") from None
    if result.returncode != 0:
        raise BuildError(f"{what} failed ({' '.join(command)}):\n"
                         f"{(result.stdout + result.stderr).strip()[-4000:]}")


def install() -> bool:
    """`npm ci` unless node_modules already holds this lock's install. True if it ran."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == digest:
        return False
    _run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], "npm ci")
    STAMP.write_text(digest + "\n")
    return True


def build(out: Path) -> None:
    _run(["npx", "--no-install", "tsc", "--noEmit"], "type check (tsc)")
    _run(["npx", "--no-install", "vite", "build", "--outDir", str(out), "--emptyOutDir"],
         "vite build")
    verify(out)


def verify(out: Path) -> None:
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if found != sorted(BUNDLE_FILES):
        raise BuildError(f"the build wrote {found}, not the fixed files {sorted(BUNDLE_FILES)} the "
                         "stack declares: keep web/installer/vite.config.ts's output names and "
                         "one chunk (components/installer_web/bundle.py lists them)")
    for key in found:
        shape = secret_shape((out / key).read_text(encoding="utf-8", errors="replace"))
        if shape:
            raise BuildError(f"{key} contains something shaped like a secret ({shape}); the "
                             "bundle is public and must hold none")


def digest(out: Path) -> str:
    total = hashlib.sha256()
    for key in sorted(BUNDLE_FILES):
        total.update(key.encode() + b"\0" + (out / key).read_bytes())
    return total.hexdigest()


def summary(out: Path) -> str:
    lines = []
    for key in sorted(BUNDLE_FILES):
        data = (out / key).read_bytes()
        lines.append(f"  {key:<16} {len(data):>8} bytes  {len(gzip.compress(data, 9)):>7} gzipped")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_web", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WEB_BUNDLE_DIR)
    parser.add_argument("--check", action="store_true",
                        help="build into a temporary directory and fail unless it equals --out")
    args = parser.parse_args(argv)
    try:
        install()
        if args.check:
            with tempfile.TemporaryDirectory(prefix="installer-web-") as scratch:
                fresh = Path(scratch) / "bundle"
                build(fresh)
                if not (args.out / "index.html").is_file() or digest(fresh) != digest(args.out):
                    print(f"error: {os.path.relpath(args.out)} is not the build of the current "
                          "sources: run `python -m tools.build_web`", file=sys.stderr)
                    return 1
            print(f"{os.path.relpath(args.out)} is up to date (sha256 {digest(args.out)})")
            return 0
        staging = args.out.with_name(args.out.name + ".staging")
        build(staging)
        if args.out.exists():
            shutil.rmtree(args.out)
        staging.replace(args.out)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {os.path.relpath(args.out)} (sha256 {digest(args.out)}):\n{summary(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
