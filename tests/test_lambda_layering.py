"""Every function has the same layers (README: handler -> logic -> data access, one
environment model): read from the sources, so a shortcut fails here.

* the handler module `app.py` holds `handler`; `config.py` builds the function's
  configuration from its environment model (lambdas/contracts/environment.py) and is the
  only module that reads the process environment;
* the logic (`logic`, `checks`, `logic/`) calls no AWS SDK and imports neither the data
  access (its interfaces, `dal/ports`, aside) nor the handler; the data access (`data`,
  `dal/`) never imports the handler;
* no `assert` in product code (python -O strips them): components/ and lambdas/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lambdas.contracts.environment import BY_PACKAGE

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
PACKAGES = sorted(p.name for p in LAMBDAS.iterdir() if (p / "app.py").is_file())
AWS_SDK = ("boto3", "botocore")


def modules(package: str) -> dict[str, ast.Module]:
    """Module path inside the package (e.g. `logic/registration`) -> its syntax tree."""
    root = LAMBDAS / package
    return {path.relative_to(root).with_suffix("").as_posix(): ast.parse(path.read_text())
            for path in sorted(root.rglob("*.py"))}


def layer(module: str) -> str:
    head = module.split("/")[0]
    return {"app": "handler", "config": "config", "logic": "logic", "checks": "logic",
            "data": "data", "dal": "data", "models": "models"}.get(head, "other")


def imports(tree: ast.Module) -> set[str]:
    """Absolute names for absolute imports; `.module` (package-relative) for relative ones."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found |= {f".{node.module}"} if node.module else {f".{a.name}"
                                                                   for a in node.names}
            else:
                found.add(node.module or "")
    return found


def is_data_access(name: str) -> bool:
    """The data access implementation; `dal/ports` (the interfaces the logic defines its
    needs with) is not."""
    return name in (".data", ".dal", ".dal.aws") or name.startswith(".data.")


def reads_environment(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
               and isinstance(node.value, ast.Name) and node.value.id == "os"
               for node in ast.walk(tree))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_function_has_a_handler_a_configuration_and_an_environment_model(
        package: str) -> None:
    found = modules(package)
    assert {"app", "config"} <= set(found)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "handler"
               for n in found["app"].body)
    model = BY_PACKAGE[package].__name__
    assert "lambdas.contracts.environment" in imports(found["config"])
    assert any(isinstance(n, ast.Name) and n.id == model for n in ast.walk(found["config"])), \
        f"{package}/config.py must read its environment through {model}"


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_configuration_reads_the_environment(package: str) -> None:
    readers = [m for m, tree in modules(package).items() if reads_environment(tree)]
    assert readers == ["config"]


@pytest.mark.parametrize("package", PACKAGES)
def test_logic_calls_no_aws_and_data_access_never_reaches_up(package: str) -> None:
    problems = []
    for module, tree in modules(package).items():
        names = imports(tree)
        kind = layer(module)
        if kind == "logic":
            problems += [f"{module} imports {n}" for n in names
                         if n.split(".")[0] in AWS_SDK or is_data_access(n) or n == ".app"]
        if kind in ("data", "models", "config"):
            problems += [f"{module} imports {n}" for n in names if n == ".app"]
    assert problems == []


def test_no_assert_in_product_code() -> None:
    found = [f"{path.relative_to(ROOT)}:{node.lineno}"
             for directory in ("components", "lambdas")
             for path in sorted((ROOT / directory).rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert found == []
