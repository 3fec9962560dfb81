"""Component type tokens name the folder (or module) they live in, and each component's Args
class is named after it: `iotmr:<folder>:<Class>` and `<Class>Args`. A token is part of every
child's URN, so a renamed token carries an alias to the old one (the snapshot test follows
aliases)."""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parent.parent / "components"


def component_classes() -> list[tuple[Path, str, str, str | None]]:
    """(file, class, type token, Args annotation of `__init__`) of every component class."""
    found = []
    for path in sorted(COMPONENTS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {ast.unparse(b) for b in node.bases}
            if "pulumi.ComponentResource" not in bases:
                continue
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef)
                        and n.name == "__init__")
            token = next(c.args[0].value for c in ast.walk(init) if isinstance(c, ast.Call)
                         and ast.unparse(c.func) == "super().__init__"
                         and isinstance(c.args[0], ast.Constant))
            args = next((ast.unparse(a.annotation) for a in init.args.args
                         if a.arg == "args" and a.annotation is not None), None)
            found.append((path, node.name, token, args))
    return found


def test_type_tokens_name_their_folder_and_class() -> None:
    found = component_classes()
    assert len(found) >= 8
    for path, name, token, _ in found:
        package, module, class_name = token.split(":")
        relative = path.relative_to(COMPONENTS)
        home = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        assert (package, module, class_name) == ("iotmr", home, name), (path, token)


def test_args_classes_are_named_after_their_component() -> None:
    for path, name, _, args in component_classes():
        assert args == f"{name}Args", (path, name, args)
