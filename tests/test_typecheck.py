"""The type checker is part of the test command: pulumi_aws's typed *Args catch typos only if checked."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    from mypy import api

    stdout, stderr, status = api.run(["--config-file", str(PROJECT_DIR / "pyproject.toml")])
    assert status == 0, stdout + stderr
