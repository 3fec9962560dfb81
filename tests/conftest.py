"""Shared fixtures: the real stacks evaluated once per session under recording mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.harness import StackGraph, evaluate_program

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


@pytest.fixture(scope="session")
def dev_graph() -> StackGraph:
    return evaluate_program(PROJECT_DIR, "dev")


@pytest.fixture(scope="session")
def prod_graph() -> StackGraph:
    return evaluate_program(PROJECT_DIR, "prod")


@pytest.fixture(scope="session")
def twenty_region_graph() -> StackGraph:
    """The dev stack across 20 regions (the one the snapshot records)."""
    from tests.support.snapshots import TWENTY_REGION_OVERRIDES

    return evaluate_program(PROJECT_DIR, "dev", config_overrides=TWENTY_REGION_OVERRIDES)
