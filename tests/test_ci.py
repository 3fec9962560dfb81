"""CI as documented: .ci/run installs only hash-checked locks, runs mypy on its own, and ends
with the README's test command; every workflow install is hash-checked too."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def commands(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_ci_run_ends_with_the_readme_test_command() -> None:
    last = commands(PROJECT_DIR / ".ci" / "run")[-1]
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("### Tests and type check", 1)[1].split("\n## ", 1)[0]
    [documented] = re.findall(r"```bash\n(venv/bin/python -m pytest[^\n]*)\n```", section)
    assert last == documented


def test_ci_run_installs_the_dev_lock_with_hashes_and_type_checks_before_the_tests() -> None:
    run = commands(PROJECT_DIR / ".ci" / "run")
    installs = [c for c in run if "pip install" in c]
    assert installs and all("--require-hashes" in c for c in installs)
    assert any("-r requirements-dev.txt" in c for c in installs)
    mypy = next(i for i, c in enumerate(run) if " -m mypy" in c)
    pytest_ = max(i for i, c in enumerate(run) if " -m pytest" in c)  # the tests (the first warms bytecode)
    assert mypy < pytest_


def test_every_workflow_install_is_hash_checked() -> None:
    files = [*(PROJECT_DIR / ".github" / "workflows").glob("*.yml"),
             *(PROJECT_DIR / ".github" / "actions").glob("*/action.yml")]
    installs = [line for path in files
                for line in path.read_text().splitlines() if "pip install" in line]
    assert installs
    assert [line for line in installs if "--require-hashes" not in line] == []
