"""The Pulumi SDK internals the harness relies on (tools/pulumi_internals.py), each checked
against the installed SDK, so an SDK upgrade that moves or changes one fails here, loudly and
by name, instead of somewhere deep in an evaluation. And the program's own config reading,
which uses only the SDK's public API."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pulumi
import pytest

from tools import harness, pulumi_internals

UPGRADE_HINT = "the Pulumi SDK changed an internal the harness uses: fix tools/pulumi_internals.py"


def test_the_adapter_imports_every_internal_it_wraps() -> None:
    """Importing the module resolves every private name; a missing one fails the import."""
    for name in ("MonitorBase", "sync_await", "ensure_event_loop", "run_program",
                 "stack_exports", "deserialize_inputs", "registered", "register_response",
                 "stack_response", "is_unknown", "UNKNOWN", "set_stack_and_project"):
        assert hasattr(pulumi_internals, name), f"{UPGRADE_HINT} ({name})"


def test_the_engine_marker_for_unknown_values_is_the_one_the_harness_records() -> None:
    assert pulumi_internals.UNKNOWN == harness.UNKNOWN, UPGRADE_HINT


def test_sync_await_drives_the_sdk_loop_from_synchronous_code() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    pulumi_internals.ensure_event_loop()
    assert pulumi_internals.sync_await(answer()) == 42, UPGRADE_HINT


def test_the_monitor_base_has_what_the_recording_monitor_overrides_and_fills() -> None:
    base = pulumi_internals.MonitorBase
    for method in ("RegisterResource", "make_urn"):
        assert callable(getattr(base, method, None)), f"{UPGRADE_HINT} (MockMonitor.{method})"
    parameters = list(inspect.signature(base.make_urn).parameters)
    assert parameters[:4] == ["self", "parent", "type_", "name"], f"{UPGRADE_HINT} {parameters}"
    assert base.ResourceRegistration._fields == ("urn", "id", "state"), UPGRADE_HINT
    class NoMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: Any) -> tuple[str | None, dict]:
            return None, {}

        def call(self, args: Any) -> Any:
            return {}

    monitor = base(NoMocks())
    pulumi_internals.registered(monitor, "urn:x", "id-1", {"a": 1})
    assert monitor.get_registered_resources()["urn:x"].state == {"a": 1}, UPGRADE_HINT


def test_properties_survive_the_wire_format_both_ways() -> None:
    class Request:
        def __init__(self, response: Any) -> None:
            self.object = response.object

    state = {"name": "t", "count": 3, "nested": {"list": [1, "two"]}}
    pulumi_internals.ensure_event_loop()
    response = pulumi_internals.register_response("urn:pulumi:s::p::t::n", "id-1", state)
    assert (response.urn, response.id) == ("urn:pulumi:s::p::t::n", "id-1"), UPGRADE_HINT
    assert pulumi_internals.deserialize_inputs(Request(response)) == state, UPGRADE_HINT
    assert pulumi_internals.stack_response("urn:root").urn == "urn:root", UPGRADE_HINT


def test_a_program_runs_exports_and_reads_its_config_through_public_apis() -> None:
    """The whole path: monitor, run_program, stack_exports, unknowns in preview, and the
    program's config read from PULUMI_CONFIG as the language host hands it over."""
    from components.config import read_pulumi_config

    seen: dict[str, Any] = {}

    def program() -> None:
        seen.update(read_pulumi_config())
        bucket = pulumi.CustomResource("test:index:Thing", "thing", {"size": 2})
        pulumi.export("size", 2)
        pulumi.export("id", bucket.id)

    config = {"iot-multi-region:regions": ["eu-west-1"], "iot-multi-region:appName": "x",
              "other:key": "not ours"}
    graph = harness.evaluate(program, config=config, project="iot-multi-region", stack="s")
    assert seen == {"regions": json.dumps(["eu-west-1"]), "appName": "x"}
    [thing] = graph.resources
    assert thing.urn == "urn:pulumi:s::iot-multi-region::test:index:Thing::thing"
    assert thing.inputs == {"size": 2}
    assert graph.outputs["size"] == 2 and graph.outputs["id"] == thing.id
    preview = harness.evaluate(program, config=config, project="iot-multi-region", stack="s",
                               preview=True)
    assert preview.resources[0].id == harness.UNKNOWN
    assert harness.CONFIG_ENV not in __import__("os").environ  # scoped to the evaluation


def test_the_program_reads_no_private_sdk_name() -> None:
    """Only the harness may touch SDK internals, and only through its adapter."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in [root / "__main__.py", *(root / "components").rglob("*.py"),
                 *(p for p in (root / "tools").rglob("*.py") if p.name != "pulumi_internals.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module == "pulumi" or module.startswith("pulumi."):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("runtime_config", "rpc"):
                names = [f"{node.value.id}.{node.attr}"]
            private = [n for n in names if any(part.startswith("_") and part != "__future__"
                                               for part in n.split("."))
                       or n.split(".")[:3] in (["pulumi", "runtime", "mocks"],
                                               ["pulumi", "runtime", "sync_await"],
                                               ["pulumi", "runtime", "stack"],
                                               ["pulumi", "runtime", "rpc"],
                                               ["pulumi", "runtime", "proto"])
                       or n.endswith(".CONFIG")]
            offenders += [f"{path.relative_to(root)}: {n}" for n in private]
    assert offenders == []


@pytest.mark.parametrize("value", ["text", 3, {"a": [1]}])
def test_known_values_are_not_unknown(value: Any) -> None:
    assert not pulumi_internals.is_unknown(value)


def test_policies_see_the_stack_they_judge() -> None:
    """pulumi_policy's analyzer sets the runtime's stack and project before policies run."""
    import contextvars

    def inside() -> tuple[str, str]:
        pulumi_internals.set_stack_and_project("judged", "proj")
        return pulumi.get_stack(), pulumi.get_project()

    assert contextvars.Context().run(inside) == ("judged", "proj"), UPGRADE_HINT


def test_an_evaluation_leaves_no_stale_program_module_behind(dev_graph: Any) -> None:
    """The harness forgets the program's modules after an evaluation; a package that stays
    (`components`, which the harness imports itself) must not keep naming them, or the next
    evaluation's `from components import x` gets the previous evaluation's `x` (two classes
    of one component: isinstance fails)."""
    import sys
    from types import ModuleType

    import components

    assert dev_graph.resources
    stale = [name for name, value in vars(components).items()
             if isinstance(value, ModuleType) and sys.modules.get(f"components.{name}") is not value]
    assert stale == []


def test_a_program_runs_without_the_sdk_walking_the_stack_and_gets_it_back() -> None:
    from pulumi.runtime import resource

    original = resource._get_stack_trace
    seen: list[tuple[bool, int]] = []
    harness.evaluate(lambda: seen.append((resource._get_stack_trace is original,
                                          len(resource._get_stack_trace().frames))))
    assert seen == [(False, 0)], UPGRADE_HINT
    assert resource._get_stack_trace is original


def test_a_program_runs_without_the_cyclic_collector_and_gets_it_back() -> None:
    """The evaluation pauses the collector (it walked the SDK's live objects again and again)
    and leaves it as it found it, also when the program fails."""
    import gc

    def failing() -> None:
        seen.append(gc.isenabled())
        raise RuntimeError("the program failed")

    seen: list[bool] = []
    assert gc.isenabled()
    harness.evaluate(lambda: seen.append(gc.isenabled()))
    with pytest.raises(harness.ProgramFailed):
        harness.evaluate(failing)
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        harness.evaluate(lambda: None)
        assert not gc.isenabled()  # a caller that paused it itself keeps it paused
    finally:
        gc.enable()
