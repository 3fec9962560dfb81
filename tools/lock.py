"""Regenerate the hashed lock files from the version ranges in the `.in` files.

    python -m tools.lock [--upgrade] [--check]

Five locks, each exact (`==`) and hashed, so `pip install --require-hashes` installs today
and in six months the same bytes:

* `requirements.txt`          the Pulumi program (what `pulumi up` runs), CPython 3.11+
* `policy/requirements.txt`   the policy pack, same pins as the program where they overlap
* `lambdas/requirements.txt`  the Lambda layer, for the Lambda platform (CPython 3.13,
                              manylinux aarch64), installed by `python -m tools.package_lambda`
* `requirements-dev.txt`      tests and tools (includes the three above), same pins again
* `.ci/uv.txt`                uv alone, the dev lock's pin: what `.ci/run` installs first, with
                              pip, to install the dev lock with

Existing pins are kept unless a range no longer admits them (add a package to an `.in`
file and re-run: only that package and what it needs are resolved anew); `--upgrade`
moves every pin to the newest version its range allows. `--check` regenerates into a
temporary directory and fails if any lock differs from what the `.in` files give.
Uses `uv pip compile` (from requirements-dev.txt); needs the package index.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python -m tools.lock"
# The oldest Python the program, the pack and the tools run on (CI and the workflows use it).
PROGRAM_PYTHON = "3.11"


@dataclass(frozen=True)
class Lock:
    source: str  # the `.in` file, relative to ROOT
    output: str
    # Extra `uv pip compile` options (the target platform).
    options: tuple[str, ...]
    # Earlier locks whose pins this one must share for the packages they have in common.
    constraints: tuple[str, ...] = ()

    def command(self, into: Path, upgrade: bool) -> list[str]:
        return [
            sys.executable, "-m", "uv", "pip", "compile", str(ROOT / self.source),
            "--output-file", str(into / self.output), "--generate-hashes", "--quiet",
            "--custom-compile-command", COMMAND,
            *(["--upgrade"] if upgrade else []),
            *self.options,
            *(arg for lock in self.constraints for arg in ("--constraint", str(into / lock))),
        ]


UNIVERSAL = ("--universal", "--python-version", PROGRAM_PYTHON)

# In order: each may constrain the ones after it.
LOCKS: tuple[Lock, ...] = (
    Lock("requirements.in", "requirements.txt", UNIVERSAL),
    Lock("policy/requirements.in", "policy/requirements.txt", UNIVERSAL,
         constraints=("requirements.txt",)),
    # components/packaging.py installs it with pip for this platform, wheels only.
    Lock("lambdas/requirements.in", "lambdas/requirements.txt",
         ("--python-platform", "aarch64-manylinux2014", "--python-version", "3.13",
          "--only-binary", ":all:")),
    Lock("requirements-dev.in", "requirements-dev.txt", UNIVERSAL,
         constraints=("requirements.txt", "policy/requirements.txt")),
    Lock(".ci/uv.in", ".ci/uv.txt", UNIVERSAL, constraints=("requirements-dev.txt",)),
)


def compile_locks(into: Path, *, upgrade: bool) -> None:
    for lock in LOCKS:
        target = into / lock.output
        target.parent.mkdir(parents=True, exist_ok=True)
        if into != ROOT and (ROOT / lock.output).is_file():
            shutil.copy(ROOT / lock.output, target)  # its pins are the preferences
        result = subprocess.run(lock.command(into, upgrade), cwd=ROOT, text=True,
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"error: cannot lock {lock.source}:\n{result.stderr.strip()}")


def _body(path: Path) -> list[str]:
    """A lock without its comment lines (the header names the output path)."""
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true",
                        help="move every pin to the newest version its range allows")
    parser.add_argument("--check", action="store_true",
                        help="fail if a lock is not what its .in file gives (changes nothing)")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            compile_locks(Path(scratch), upgrade=False)
            stale = [lock.output for lock in LOCKS
                     if _body(Path(scratch) / lock.output) != _body(ROOT / lock.output)]
        if stale:
            print(f"error: out of date: {', '.join(stale)}; run `{COMMAND}`", file=sys.stderr)
            return 1
        print("locks are up to date")
        return 0
    compile_locks(ROOT, upgrade=args.upgrade)
    for lock in LOCKS:
        pins = sum(1 for line in (ROOT / lock.output).read_text().splitlines() if "==" in line)
        print(f"wrote {lock.output} ({pins} pinned packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
