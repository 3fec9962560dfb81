"""Deterministic Lambda packaging and the deploy-time guard for the dependencies layer."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

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
    built.write_bytes(b"PK")
    layer = package_lambda.LambdaLayer.from_zip(built)
    assert layer.zip_path == built
    assert layer.source_code_hash == package_lambda.sha256_base64(b"PK")


def test_program_reports_a_missing_layer_without_declaring_resources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.harness import ProgramFailed, evaluate_program

    monkeypatch.setenv("IOTMR_LAMBDA_LAYER_ZIP", str(tmp_path / "missing.zip"))
    with pytest.raises(ProgramFailed, match="python -m tools.package_lambda") as failed:
        evaluate_program(Path(__file__).resolve().parent.parent, "dev")
    assert failed.value.graph.resources == []
