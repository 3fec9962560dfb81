"""Deterministic Lambda packaging: the same inputs always give the same zip, byte for byte.

Two artefacts, split so the Pulumi program never needs a build step to *evaluate*:

* Function code (`function_zip`): our own sources, zipped by the program itself while it
  evaluates (no network, no pip) into `build/lambda/<package>.zip`; the uploaded bytes are
  exactly the hashed bytes, so `source_code_hash` changes if and only if the code does.
* Dependencies layer (`build/lambda/dependencies-layer.zip`): third-party packages from
  `lambdas/requirements.txt` (a hashed lock for the Lambda platform, from
  `lambdas/requirements.in` by `python -m tools.lock`), installed by pip with
  `--require-hashes` for the Lambda platform (arm64 / CPython 3.13, manylinux wheels only)
  into `python/` and zipped, together with the shared data contracts (`lambdas/contracts`,
  as `python/lambdas/contracts/`, so every function imports `lambdas.contracts.*` exactly as
  the program and the tests do). Built by `python -m tools.package_lambda` before a real
  deployment; `__main__` refuses to deploy without it, or with a layer whose contracts differ
  from the checkout's, and says how to build it (see components/jitr/README.md, "Packaging").

Determinism: entries sorted by path, every timestamp 1980-01-01 00:00:00, file mode 0644
(0755 for files that were executable), no directory entries, no `__pycache__`/`*.pyc`,
fixed compression level.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = ROOT / "lambdas"
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
BUILD_DIR = ROOT / "build" / "lambda"
LAYER_ZIP = BUILD_DIR / "dependencies-layer.zip"
CONTRACTS_DIR = LAMBDAS_DIR / "contracts"
# Where the contracts sit in the layer: Lambda puts the layer's `python/` on sys.path.
LAYER_CONTRACTS_PREFIX = "python/lambdas/contracts/"

# The Lambda platform every function of this project runs on.
RUNTIME = "python3.13"
PYTHON_VERSION = "3.13"
ARCHITECTURE = "arm64"
PIP_PLATFORM = "manylinux2014_aarch64"

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_EXCLUDED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


class PackagingError(Exception):
    """A packaging step failed; the message says what to do."""


def _files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in _EXCLUDED_DIRS for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in _EXCLUDED_SUFFIXES:
            yield path


def deterministic_zip(entries: Iterable[tuple[str, Path]]) -> bytes:
    """Zip `(archive name, file)` pairs reproducibly."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in sorted(entries, key=lambda entry: entry[0]):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.create_system = 3  # unix, so the mode above is honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def function_zip(package: str, lambdas_dir: Path = LAMBDAS_DIR) -> bytes:
    """The code of function `package` (a directory under lambdas/), as `package/...` so the
    handler is `package.module.function` and relative imports work."""
    source = lambdas_dir / package
    if not (source / "__init__.py").is_file():
        raise PackagingError(f"{source} is not a Python package (no __init__.py)")
    return deterministic_zip((f"{package}/{p.relative_to(source).as_posix()}", p)
                             for p in _files(source))


def contract_entries(contracts_dir: Path = CONTRACTS_DIR) -> list[tuple[str, Path]]:
    """`(name in the layer, source file)` of every file of the shared contracts."""
    return [(f"{LAYER_CONTRACTS_PREFIX}{p.relative_to(contracts_dir).as_posix()}", p)
            for p in _files(contracts_dir)]


def contracts_only_layer(contracts_dir: Path = CONTRACTS_DIR) -> bytes:
    """A layer holding only the contracts (what the offline evaluation stands in with)."""
    return deterministic_zip(contract_entries(contracts_dir))


def layer_contracts_problem(layer: Path, contracts_dir: Path = CONTRACTS_DIR) -> str | None:
    """Why the contracts in `layer` are not exactly the checkout's, or None."""
    expected = {name: path.read_bytes() for name, path in contract_entries(contracts_dir)}
    try:
        with zipfile.ZipFile(layer) as archive:
            shipped = {name: archive.read(name) for name in archive.namelist()
                       if name.startswith(LAYER_CONTRACTS_PREFIX)}
    except (zipfile.BadZipFile, OSError) as error:
        return f"is not a readable zip ({error})"
    missing = sorted(set(expected) - set(shipped))
    extra = sorted(set(shipped) - set(expected))
    changed = sorted(n for n in set(expected) & set(shipped) if expected[n] != shipped[n])
    if not (missing or extra or changed):
        return None
    parts = [f"{what}: {', '.join(n.removeprefix(LAYER_CONTRACTS_PREFIX) for n in names)}"
             for what, names in (("missing", missing), ("changed since", changed),
                                 ("no longer in the checkout", extra)) if names]
    return f"carries other shared contracts (lambdas/contracts) than this checkout ({'; '.join(parts)})"


def write_function_zip(package: str, data: bytes, build_dir: Path = BUILD_DIR) -> Path:
    """`build/lambda/<package>.zip` holding `data`; rewritten only when the bytes changed."""
    path = build_dir / f"{package}.zip"
    if not path.is_file() or path.read_bytes() != data:
        build_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".zip.{os.getpid()}.tmp")  # parallel builds (test workers)
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def sha256_base64(data: bytes) -> str:
    """Lambda's `CodeSha256` form (what `source_code_hash` compares against)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


def file_sha256_base64(path: Path) -> str:
    """`sha256_base64` of a file, computed once per file version: every region uploads the
    same layer, and hashing it per region dominated the program's evaluation time."""
    return _file_hash(path, _fingerprint([path]))


@functools.lru_cache(maxsize=8)
def _file_hash(path: Path, fingerprint: object) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def packaged_function(package: str, lambdas_dir: Path = LAMBDAS_DIR,
                      build_dir: Path = BUILD_DIR) -> tuple[Path, str]:
    """The function's zip on disk and its hash, built once per version of its sources."""
    sources = _fingerprint(_files(lambdas_dir / package))
    return _packaged_function(package, lambdas_dir, build_dir, sources)


@functools.lru_cache(maxsize=16)
def _packaged_function(package: str, lambdas_dir: Path, build_dir: Path,
                       fingerprint: object) -> tuple[Path, str]:
    data = function_zip(package, lambdas_dir)
    return write_function_zip(package, data, build_dir), sha256_base64(data)


def pip_command(requirements: Path, target: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install",
        "--requirement", str(requirements),
        # The lock pins every package with its hashes: the same bytes at every build.
        "--require-hashes",
        "--no-deps",
        "--target", str(target),
        "--platform", PIP_PLATFORM,
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
    ]


def build_layer(requirements: Path = REQUIREMENTS, out: Path = LAYER_ZIP) -> Path:
    """pip-install the Lambda dependencies for the Lambda platform and zip them as a layer."""
    staging = out.parent / "layer-staging"
    if staging.exists():
        shutil.rmtree(staging)
    target = staging / "python"  # where Lambda puts layer packages on sys.path
    target.mkdir(parents=True)
    result = subprocess.run(pip_command(requirements, target), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise PackagingError(f"pip could not install {requirements} for {PIP_PLATFORM} / "
                             f"CPython {PYTHON_VERSION}:\n{result.stderr.strip()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(deterministic_zip([
        *((p.relative_to(staging).as_posix(), p) for p in _files(staging)),
        *contract_entries()]))
    shutil.rmtree(staging)
    return out


@dataclass(frozen=True)
class LambdaLayer:
    """The built dependencies layer every function of the program runs with.

    `__main__` builds this value (and refuses to deploy without the zip); the offline
    harness hands in a stand-in. Components only receive it, so none of them needs to
    know whether it runs for real or under mocks.
    """

    zip_path: Path
    source_code_hash: str

    @classmethod
    def from_zip(cls, path: Path) -> "LambdaLayer":
        if not path.is_file():
            raise PackagingError(f"Lambda dependencies layer {path} is missing: run "
                                 "`python -m tools.package_lambda` before `pulumi up`")
        problem = layer_contracts_problem(path)
        if problem:
            # The functions would run against contracts their code was not written for.
            raise PackagingError(f"Lambda dependencies layer {path} {problem}: rebuild it "
                                 "with `python -m tools.package_lambda` before `pulumi up`")
        return cls(zip_path=path, source_code_hash=file_sha256_base64(path))
