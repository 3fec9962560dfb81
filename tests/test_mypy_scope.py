"""mypy reads only the pulumi_aws services and moto packages listed in pyproject.toml (all of
pulumi_aws would cost 2 GB, all of moto a sixth of mypy's time); one used but not listed would
silently be `Any`, so its typos would pass."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
USE = re.compile(r"\b(?:aws|pulumi_aws)\.([a-z_0-9]+)\b")
MOTO_IMPORT = re.compile(r"^\s*(?:from|import) moto\.([a-z_0-9]+)", re.MULTILINE)
# Read as Any on purpose: `moto.server` imports every backend; only its start/stop are used.
MOTO_UNCHECKED = {"server"}


def pulumi_aws_services() -> set[str]:
    spec = importlib.util.find_spec("pulumi_aws")
    assert spec and spec.submodule_search_locations
    root = Path(spec.submodule_search_locations[0])
    return {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}


def followed_modules() -> set[str]:
    config = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["mypy"]
    followed: set[str] = set()
    for override in config["overrides"]:
        if override.get("follow_imports") == "normal":
            modules = override["module"]
            followed |= set([modules] if isinstance(modules, str) else modules)
    return followed


def followed_services() -> set[str]:
    return {m.removeprefix("pulumi_aws.").removesuffix(".*") for m in followed_modules()}


def checked_sources() -> list[Path]:
    config = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["mypy"]
    sources: list[Path] = []
    for entry in config["files"]:
        path = PROJECT_DIR / entry
        sources += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return sources


def test_every_pulumi_aws_service_the_code_uses_is_type_checked() -> None:
    services = pulumi_aws_services()
    used: dict[str, str] = {}
    for source in checked_sources():
        for match in USE.finditer(source.read_text()):
            if match.group(1) in services:
                used.setdefault(match.group(1), str(source.relative_to(PROJECT_DIR)))
    assert used, "no pulumi_aws service found: the scan is broken"
    missing = {service: where for service, where in used.items()
               if service not in followed_services()}
    assert missing == {}, ("add these to the `follow_imports = \"normal\"` list of pyproject.toml "
                           f"as \"pulumi_aws.<service>.*\": {missing}")


def test_every_moto_package_the_code_imports_is_type_checked() -> None:
    used = {match.group(1): str(source.relative_to(PROJECT_DIR)) for source in checked_sources()
            for match in MOTO_IMPORT.finditer(source.read_text())}
    assert "stepfunctions" in used, "no moto import found: the scan is broken"
    missing = {package: where for package, where in used.items()
               if f"moto.{package}.*" not in followed_modules() and package not in MOTO_UNCHECKED}
    assert missing == {}, ("add these to the moto `follow_imports = \"normal\"` list of "
                           f"pyproject.toml as \"moto.<package>.*\": {missing}")


def test_the_followed_services_exist() -> None:
    """A misspelt entry (pulumi_aws.lamda.*) would follow nothing."""
    config = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["mypy"]
    entries = [m for o in config["overrides"] if o.get("follow_imports") == "normal"
               for m in o["module"] if m.endswith(".*")]
    assert entries

    def exists(entry: str) -> bool:
        """`pulumi_aws.<service>.*` is a service package; anything else (pulumi_aws_native's
        `iot`) is checked by importing its package."""
        if entry.startswith("pulumi_aws."):
            return entry.removeprefix("pulumi_aws.").removesuffix(".*") in pulumi_aws_services()
        return importlib.util.find_spec(entry.removesuffix(".*")) is not None

    assert sorted(m for m in entries if not exists(m)) == []
