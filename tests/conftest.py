"""Shared fixtures: the real stacks evaluated once per session under recording mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.harness import StackGraph, evaluate_program, load_program_stack
from tools.local import journeys, pki_material

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


@pytest.fixture(scope="session")
def local_pki() -> pki_material.LocalPki:
    """The run's PKI (tools/local/pki_material.py): root and intermediate, in memory."""
    return pki_material.bootstrap()


@pytest.fixture(scope="session")
def local_graph(local_pki: pki_material.LocalPki) -> StackGraph:
    """The dev stack as `python -m tools.local` evaluates it (our intermediate as its CA, the
    journeys' config additions): what every world of the tests stands up."""
    spec = load_program_stack(PROJECT_DIR, "dev")
    added, _ = journeys.config_overrides(spec.config, spec.project)
    return evaluate_program(PROJECT_DIR, "dev", drop_keys=("caCertificatePemFile",),
                            config_overrides={**added, "caCertificatePem": local_pki.intermediate_pem})
