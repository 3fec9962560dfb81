"""tools/local/moto_imports.py: moto's Step Functions interpreter loads without the Batch and
EC2 backends, and a deferred package still completes when something reads it. A failure after
a moto upgrade means its imports moved: update DEFERRED there."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools.local.moto_imports import defer_packages

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_the_local_run_loads_no_ec2_backend_and_batch_still_completes() -> None:
    probe = ("import sys, tools.local.sfn_adapter, tools.local.world\n"
             "print(sorted(m for m in sys.modules if m.startswith(('moto.ec2', 'moto.batch.models'))))\n"
             "from moto.batch import batch_backends\n"
             "print(type(batch_backends).__name__)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "BackendDict"], done.stdout


def test_a_deferred_package_runs_its_init_at_the_first_attribute_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "deferred_probe"
    package.mkdir()
    (package / "__init__.py").write_text("import sys\nsys.deferred_probe_ran = True\nVALUE = 7\n")
    (package / "leaf.py").write_text("LEAF = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("deferred_probe", "deferred_probe.leaf"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "deferred_probe_ran", False, raising=False)  # removed after the test
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # the test's finder leaves with it

    defer_packages(frozenset({"deferred_probe"}))
    from deferred_probe.leaf import LEAF

    assert LEAF == 1 and not sys.deferred_probe_ran  # type: ignore[attr-defined]
    from deferred_probe import VALUE

    assert VALUE == 7 and sys.deferred_probe_ran  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        sys.modules["deferred_probe"].MISSING


def test_threads_reading_a_deferred_package_at_once_run_its_init_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "deferred_race_probe"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys, time\nsys.deferred_race_runs = getattr(sys, 'deferred_race_runs', 0) + 1\n"
        "time.sleep(0.2)\nVALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "deferred_race_probe", raising=False)
    monkeypatch.setattr(sys, "deferred_race_runs", 0, raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    defer_packages(frozenset({"deferred_race_probe"}))
    import deferred_race_probe

    with ThreadPoolExecutor(4) as pool:
        values = list(pool.map(lambda _: deferred_race_probe.VALUE, range(4)))

    assert values == [7] * 4 and sys.deferred_race_runs == 1  # type: ignore[attr-defined]


def test_deferring_what_is_not_a_package_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain_module_probe.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    defer_packages(frozenset({"plain_module_probe"}))
    with pytest.raises(ImportError, match="DEFERRED"):
        import plain_module_probe  # noqa: F401
