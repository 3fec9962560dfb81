"""Deterministic Lambda packaging and the deploy-time guard for the dependencies layer."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from components import packaging as package_lambda
from components.packaging import function_zip, pip_command, sha256_base64


def _copy_lambdas(tmp_path: Path) -> Path:
    target = tmp_path / "lambdas"
    shutil.copytree(package_lambda.LAMBDAS_DIR / "jitr_certificate_check",
                    target / "jitr_certificate_check",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def test_same_code_gives_the_same_archive(tmp_path: Path) -> None:
    first = function_zip("jitr_certificate_check")
    copy = _copy_lambdas(tmp_path)
    for path in copy.rglob("*.py"):  # other timestamps, other permissions, stray bytecode
        os.utime(path, (1_700_000_000, 1_700_000_000))
        path.chmod(0o600)
    (copy / "jitr_certificate_check" / "__pycache__").mkdir()
    (copy / "jitr_certificate_check" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"junk")
    second = function_zip("jitr_certificate_check", copy)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    assert sha256_base64(first) == sha256_base64(second)


def test_changed_code_gives_another_archive(tmp_path: Path) -> None:
    copy = _copy_lambdas(tmp_path)
    before = function_zip("jitr_certificate_check", copy)
    with (copy / "jitr_certificate_check" / "checks.py").open("a") as handle:
        handle.write("\n# changed\n")
    assert function_zip("jitr_certificate_check", copy) != before


def test_archive_entries_are_sorted_with_fixed_time_and_mode() -> None:
    with zipfile.ZipFile(io.BytesIO(function_zip("jitr_certificate_check"))) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "jitr_certificate_check/app.py" in names and "jitr_certificate_check/checks.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}


def test_dependencies_are_installed_for_the_lambda_platform() -> None:
    command = pip_command(Path("lambdas/requirements.txt"), Path("build/x"))
    pairs = dict(zip(command, command[1:]))
    assert pairs["--platform"] == "manylinux2014_aarch64"
    assert pairs["--python-version"] == package_lambda.PYTHON_VERSION
    assert pairs["--implementation"] == "cp"
    assert "--only-binary=:all:" in command and pairs["--target"] == "build/x"
    assert package_lambda.RUNTIME == f"python{package_lambda.PYTHON_VERSION}"
    assert package_lambda.ARCHITECTURE == "arm64"


def test_real_deploy_without_the_layer_stops_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(package_lambda.PackagingError, match="python -m tools.package_lambda"):
        package_lambda.LambdaLayer.from_zip(tmp_path / "missing.zip")
    built = tmp_path / "layer.zip"
    built.write_bytes(package_lambda.contracts_only_layer())
    layer = package_lambda.LambdaLayer.from_zip(built)
    assert layer.zip_path == built
    assert layer.source_code_hash == package_lambda.sha256_base64(built.read_bytes())


# --- the shared contracts travel in the layer ----------------------------------------------

def _zip_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _shipped_contracts() -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in package_lambda.contract_entries()}


@pytest.mark.parametrize("tamper, named", [
    (lambda c: c.pop("python/lambdas/contracts/inventory.py"), "missing: inventory.py"),
    (lambda c: c.update({"python/lambdas/contracts/metrics.py": b"# an older copy\n"}),
     "changed since: metrics.py"),
    (lambda c: c.update({"python/lambdas/contracts/retired.py": b""}),
     "no longer in the checkout: retired.py"),
])
def test_a_layer_with_other_contracts_is_refused_before_deploying(
        tmp_path: Path, tamper: Any, named: str) -> None:
    """Function code and layer deploy together: a layer built before a contract changed
    would run the new functions against the old contract."""
    contracts = _shipped_contracts()
    tamper(contracts)
    stale = tmp_path / "layer.zip"
    stale.write_bytes(_zip_with({"python/powertools/__init__.py": b"", **contracts}))
    with pytest.raises(package_lambda.PackagingError, match="python -m tools.package_lambda") \
            as refused:
        package_lambda.LambdaLayer.from_zip(stale)
    assert named in str(refused.value)


def test_build_layer_ships_the_contracts_next_to_the_dependencies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real build, with pip replaced by what it would leave in --target."""
    def pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("--target") + 1])
        (target / "powertools").mkdir(parents=True)
        (target / "powertools" / "__init__.py").write_text("")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(package_lambda.subprocess, "run", pip)
    built = package_lambda.build_layer(tmp_path / "requirements.txt", tmp_path / "out" / "l.zip")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
    assert "python/powertools/__init__.py" in names
    assert {n for n in names if n.startswith("python/lambdas/")} == set(_shipped_contracts())
    assert package_lambda.LambdaLayer.from_zip(built).zip_path == built


def test_each_function_imports_from_its_zip_and_the_layer_alone(tmp_path: Path) -> None:
    """Lambda's view: /var/task is the function zip, /opt/python the layer; the checkout is
    not there. Every import of each handler module (the contracts included) must resolve.
    (One process for the five functions: each zip holds only its own package.)"""
    packages = sorted(p.name for p in package_lambda.LAMBDAS_DIR.iterdir()
                      if (p / "app.py").is_file())
    assert len(packages) == 5
    task, opt = tmp_path / "task", tmp_path / "opt"
    for package in packages:
        zipfile.ZipFile(io.BytesIO(function_zip(package))).extractall(task)
    zipfile.ZipFile(io.BytesIO(package_lambda.contracts_only_layer())).extractall(opt)
    probe = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(task)!r}, {str(opt / 'python')!r}]\n"
        "import lambdas.contracts as c\n"
        f"assert list(c.__path__) == [{str(opt / 'python' / 'lambdas' / 'contracts')!r}]\n"
        f"for package in {packages!r}:\n"
        "    module = importlib.import_module(package + '.app')\n"
        f"    assert module.__file__.startswith({str(task)!r}), module.__file__\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_LAMBDA"))}
    result = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_program_reports_a_missing_layer_without_declaring_resources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.harness import ProgramFailed, evaluate_program

    monkeypatch.setenv("IOTMR_LAMBDA_LAYER_ZIP", str(tmp_path / "missing.zip"))
    with pytest.raises(ProgramFailed, match="python -m tools.package_lambda") as failed:
        evaluate_program(Path(__file__).resolve().parent.parent, "dev")
    assert failed.value.graph.resources == []
