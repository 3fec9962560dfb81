"""One certificate, one device, on every onboarding path and in replication (issue 19).

AWS IoT lets a certificate attached NON_EXCLUSIVE_THING (the default) be attached to more
things, and a certificate attached to several things may connect as any of them; with
EXCLUSIVE_THING "the thing will be the only thing that's attached to the principal"
(https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html). So every
attachment the program makes at run time is EXCLUSIVE_THING:

* the declared state machines (JITR, replication): every `attachThingPrincipal` task;
* the functions (CVM, the fleet recorder that locks the template's attachment): every
  boto3 `attach_thing_principal` call;
* attachments declared in the stack (`aws:iot/thingPrincipalAttachment`), if any.

The fleet template's own attachment has no documented type (so NON_EXCLUSIVE_THING); the
recorder makes it exclusive before it records the device (tests/test_fleet_provisioning_*).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.harness import StackGraph

PROJECT_DIR = Path(__file__).resolve().parents[1]
EXCLUSIVE = "EXCLUSIVE_THING"


def _states(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested Map/Parallel states included."""
    if isinstance(node, dict):
        for name, state in (node.get("States") or {}).items():
            yield name, state
            yield from _states(state.get("ItemProcessor") or state.get("Iterator") or {})
            for branch in state.get("Branches") or []:
                yield from _states(branch)


def _definitions(graph: StackGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    for machine in graph.of_type("aws:sfn/stateMachine:StateMachine"):
        definition = machine.inputs["definition"]
        if isinstance(definition, dict):
            definition = definition.get("value")
        yield str(machine.inputs["name"]), json.loads(str(definition))


def test_every_declared_machine_attaches_exclusively(dev_graph: StackGraph) -> None:
    attaches = [(machine, name, state) for machine, definition in _definitions(dev_graph)
                for name, state in _states(definition)
                if str(state.get("Resource", "")).lower().endswith(":attachthingprincipal")]
    assert {kind for kind in ("jitr", "replication")
            if any(kind in machine for machine, _, _ in attaches)} == {"jitr", "replication"}
    shared = [f"{machine}/{name}" for machine, name, state in attaches
              if (state.get("Parameters") or state.get("Arguments") or {}).get(
                  "ThingPrincipalType") != EXCLUSIVE]
    assert shared == [], f"attachThingPrincipal without {EXCLUSIVE}: {shared}"


def test_no_declared_attachment_is_shared(dev_graph: StackGraph) -> None:
    shared = [r.name for r in dev_graph.of_type("aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment")
              if r.inputs.get("thingPrincipalType") != EXCLUSIVE]
    assert shared == []


def _boto_attach_calls() -> Iterator[tuple[str, ast.Call]]:
    for path in sorted((PROJECT_DIR / "lambdas").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "attach_thing_principal" \
                    and any(k.arg == "principal" for k in node.keywords):  # boto3's signature
                yield f"{path.relative_to(PROJECT_DIR)}:{node.lineno}", node


def test_every_function_attaches_exclusively() -> None:
    calls = list(_boto_attach_calls())
    assert {where.split("/")[1] for where, _ in calls} >= {"cvm_registration",
                                                          "fleet_provisioning_recorder"}
    shared = [where for where, call in calls
              if not any(k.arg == "thingPrincipalType" and isinstance(k.value, ast.Constant)
                         and k.value.value == EXCLUSIVE for k in call.keywords)]
    assert shared == [], f"attach_thing_principal without {EXCLUSIVE}: {shared}"
