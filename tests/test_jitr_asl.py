"""Class 6 of components/jitr/README.md, proven on the definition itself: no path the JITR
machine reads can be missing when it is read, so no input, service answer or odd inventory
row can end an execution in an uncatchable `States.Runtime`.

The proof is a data-flow walk over the ASL: for every state it computes the paths that are
present on *every* way into it (what Pass templates, task results, Catch error objects and
Choice guards establish), then checks each read - Choice variables, `...Path` comparisons,
`.$` parameters and intrinsic-function arguments, InputPath, ErrorPath/CausePath - against
it. A Choice rule reading an optional path must be guarded by `IsPresent` first (AWS
evaluates `And` left to right and stops at the first false rule), or by an earlier rule of
the same Choice (`Not IsPresent` -> elsewhere). The executed counterparts are in
tests/test_jitr_execution.py (odd rows, odd check results, bad events).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.jitr.component import DEFINITION, state_machine_definition

Facts = frozenset[str]

# Members AWS always returns in a successful answer (the resource's identity and the
# fields the API reference describes as always part of the description). Everything else a
# service returns is optional and must be guarded before it is read.
ALWAYS_IN_RESULT: dict[str, tuple[str, ...]] = {
    "arn:aws:states:::aws-sdk:iot:describeCertificate": (
        "$.CertificateDescription.CertificateId", "$.CertificateDescription.CertificateArn",
        "$.CertificateDescription.CertificatePem", "$.CertificateDescription.Status"),
    "arn:aws:states:::lambda:invoke": ("$.Payload",),
}

_PATH = re.compile(r"(?<![\$\w])\$(?:\.[A-Za-z0-9_]+|\[\d+\])+|(?<![\$\w])\$(?![\$.\[\w])")
_COMPARISON_PATHS = ("StringEqualsPath", "NumericEqualsPath", "BooleanEqualsPath",
                     "StringLessThanPath", "StringGreaterThanPath", "NumericLessThanPath",
                     "NumericGreaterThanPath", "TimestampEqualsPath")


def is_known(facts: Facts, path: str) -> bool:
    """`path` is present whenever every path in `facts` is (a fact implies its prefixes)."""
    return path == "$" or any(f == path or f.startswith(path + ".") for f in facts)


def template_paths(template: Any, at: str) -> set[str]:
    """Paths a Parameters/Result/ResultSelector template always produces under `at`."""
    paths = {at}
    if isinstance(template, dict):
        for key, value in template.items():
            name = key[:-2] if key.endswith(".$") else key
            paths |= template_paths(None if key.endswith(".$") else value, f"{at}.{name}")
    return paths


def template_reads(template: Any) -> set[str]:
    reads: set[str] = set()
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                reads |= set(_PATH.findall(value)) if not value.startswith("$$") else set()
            else:
                reads |= template_reads(value)
    return reads


def rebase(facts: Facts, source: str, target: str) -> set[str]:
    """Facts under `source`, moved under `target` (Pass with InputPath, no template)."""
    return {target + f[len(source):] for f in facts if f == source or f.startswith(source + ".")}


def merge(facts: Facts, result: set[str], result_path: str | None) -> Facts:
    """Apply ResultPath: `result` holds paths relative to the result's root `$`."""
    if result_path is None:
        return facts
    placed = {result_path + p[1:] for p in result}
    if result_path == "$":
        return frozenset(placed)
    kept = {f for f in facts if not (f == result_path or f.startswith(result_path + "."))}
    return frozenset(kept | placed)


@dataclass
class Walk:
    states: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    guarded: set[str] = field(default_factory=set)  # optional paths read behind a guard
    entry: dict[str, Facts] = field(default_factory=dict)

    # -- Choice rules -------------------------------------------------------------------------

    def check_rule(self, state: str, rule: dict[str, Any], known: Facts) -> None:
        if "And" in rule:
            running = set(known)
            for child in rule["And"]:
                self.check_rule(state, child, frozenset(running))
                running |= self.true_facts(child)
            return
        for key in ("Or",):
            for child in rule.get(key, []):
                self.check_rule(state, child, known)
        if "Not" in rule:
            self.check_rule(state, rule["Not"], known)
            return
        if "Variable" not in rule:
            return
        variable = rule["Variable"]
        if "IsPresent" in rule:
            self.guarded.add(variable)
        elif not is_known(known, variable):
            self.problems.append(f"{state}: reads {variable} which may be missing")
        for key in _COMPARISON_PATHS:
            if key in rule and not is_known(known, rule[key]):
                self.problems.append(f"{state}: compares with {rule[key]} which may be missing")

    def true_facts(self, rule: dict[str, Any]) -> set[str]:
        if "And" in rule:
            return set().union(*(self.true_facts(c) for c in rule["And"]))
        if "Or" in rule:
            branches = [self.true_facts(c) for c in rule["Or"]]
            return set.intersection(*branches) if branches else set()
        if "Not" in rule:
            return self.false_facts(rule["Not"])
        if rule.get("IsPresent") is False:
            return set()
        return {rule["Variable"]} if "Variable" in rule else set()

    def false_facts(self, rule: dict[str, Any]) -> set[str]:
        if "Not" in rule:
            return self.true_facts(rule["Not"])
        if "Or" in rule:
            return set().union(*(self.false_facts(c) for c in rule["Or"]))
        if rule.get("IsPresent") is False:
            return {rule["Variable"]}
        return set()

    # -- states -------------------------------------------------------------------------------

    def edges(self, name: str, facts: Facts) -> Iterator[tuple[str, Facts]]:
        state = self.states[name]
        kind = state["Type"]
        if kind == "Choice":
            known = set(facts)
            for rule in state["Choices"]:
                self.check_rule(name, rule, frozenset(known))
                yield rule["Next"], frozenset(known | self.true_facts(rule))
                known |= self.false_facts(rule)
            if "Default" not in state:
                self.problems.append(f"{name}: a Choice without Default fails with "
                                     "States.NoChoiceMatched")
            else:
                yield state["Default"], frozenset(known)
            return
        if kind in ("Map", "Parallel", "Wait"):
            self.problems.append(f"{name}: the walk does not model {kind} states")
            return
        self.check_reads(name, facts, self.reads(state))
        if kind == "Pass":
            if "Parameters" in state:
                result = template_paths(state["Parameters"], "$")
            elif "Result" in state:
                result = template_paths(state["Result"], "$")
            else:
                result = rebase(facts, state.get("InputPath", "$"), "$")
            yield state["Next"], merge(facts, result, state.get("ResultPath", "$"))
        elif kind == "Task":
            resource = state["Resource"]
            raw = set(ALWAYS_IN_RESULT.get(resource, ())) | {"$"}
            if "ResultSelector" in state:
                self.check_reads(name, frozenset(raw), template_reads(state["ResultSelector"]),
                                 what="the task result")
                result = template_paths(state["ResultSelector"], "$")
            else:
                result = raw
            yield state["Next"], merge(facts, result, state.get("ResultPath", "$"))
            for catcher in state.get("Catch", []):
                error = {"$", "$.Error"}
                yield catcher["Next"], merge(facts, error, catcher.get("ResultPath", "$"))

    @staticmethod
    def reads(state: dict[str, Any]) -> set[str]:
        reads = template_reads(state.get("Parameters"))
        for key in ("InputPath", "ErrorPath", "CausePath"):
            value = state.get(key)
            if isinstance(value, str):
                reads |= set(_PATH.findall(value))
        return reads - {"$"}

    def check_reads(self, name: str, facts: Facts, reads: Iterable[str],
                    what: str = "the state input") -> None:
        for path in sorted(reads):
            if not is_known(facts, path):
                self.problems.append(f"{name}: reads {path} from {what}, which may be missing")

    def run(self, start: str) -> Walk:
        pending: dict[str, Facts] = {start: frozenset()}
        while pending:
            name, facts = pending.popitem()
            old = self.entry.get(name)
            new = facts if old is None else old & facts
            if old is not None and new == old:
                continue
            self.entry[name] = new
            for target, out in self.edges(name, new):
                pending[target] = out if target not in pending else pending[target] & out
        # Check every state once more against its final (smallest) entry facts.
        self.problems.clear()
        self.guarded.clear()
        for name, facts in self.entry.items():
            list(self.edges(name, facts))
        return self


def walk(document: dict[str, Any]) -> Walk:
    return Walk(document["States"]).run(document["StartAt"])


def rendered() -> dict[str, Any]:
    return dict(json.loads(state_machine_definition(
        region="eu-west-1", ca_certificate_id="ca-id", check_function_arn="arn:fn",
        table_name="inventory", device_policy_name="device")))


def test_every_path_the_machine_reads_is_present_or_guarded() -> None:
    result = walk(rendered())

    assert result.problems == []
    assert set(result.entry) == set(rendered()["States"]), "every state is reachable"


def test_the_optional_paths_are_read_only_behind_guards() -> None:
    """The paths that can be missing (and so need IsPresent) are exactly recognised."""
    guarded = walk(rendered()).guarded

    assert {
        "$.certificateId",
        "$.described.CertificateDescription.CaCertificateId",
        "$.checkResult.Payload.error", "$.checkResult.Payload.valid",
        "$.checkResult.Payload.thingName", "$.checkResult.Payload.reason",
        "$.inventory.Item", "$.inventory.Item.status.S", "$.inventory.Item.certificateId.S",
        "$.thingPrincipals.Principals", "$.thingPrincipals.NextToken",
        "$.rollbackThing.Attributes.jitrOwner", "$.rollbackThing.Version",
        "$.rollbackPrincipals.Principals", "$.error.refused", "$.error.Error", "$.error.Cause",
        "$.check.thingName", "$.rollbackErrors",
    } <= guarded


def _without_guard(document: dict[str, Any], state: str, path: str) -> dict[str, Any]:
    """The definition with every `IsPresent` rule on `path` in `state` dropped."""
    mutated = copy.deepcopy(document)

    def strip(rule: Any) -> Any:
        if isinstance(rule, dict):
            if "And" in rule:
                kept = [strip(r) for r in rule["And"]
                        if not (r.get("Variable") == path and "IsPresent" in r)]
                rule = {**rule, "And": kept}
            return {k: strip(v) if k in ("Not", "Or") else v for k, v in rule.items()}
        if isinstance(rule, list):
            return [strip(r) for r in rule]
        return rule

    mutated["States"][state]["Choices"] = strip(mutated["States"][state]["Choices"])
    return mutated


@pytest.mark.parametrize("state, path", [
    ("IsIssuedByOurCa", "$.described.CertificateDescription.CaCertificateId"),
    ("IsCertificateAcceptable", "$.checkResult.Payload.valid"),
    ("IsRowForThisCertificate", "$.inventory.Item.status.S"),
    ("IsThingOurs", "$.rollbackThing.Attributes.jitrOwner"),
])
def test_the_walk_finds_a_missing_guard(state: str, path: str) -> None:
    mutated = _without_guard(rendered(), state, path)
    assert mutated != rendered()

    problems = walk(mutated).problems

    assert any(p.startswith(f"{state}: reads {path}") for p in problems), problems


def test_the_walk_finds_an_unguarded_parameter_and_a_missing_default() -> None:
    document = rendered()
    document["States"]["AcceptCheck"]["Parameters"]["extra.$"] = "$.checkResult.Payload.extra"
    del document["States"]["HasThingPrincipals"]["Default"]

    problems = walk(document).problems

    assert "AcceptCheck: reads $.checkResult.Payload.extra from the state input, which may be " \
        "missing" in problems
    assert any(p.startswith("HasThingPrincipals: a Choice without Default") for p in problems)


def test_the_definition_file_is_the_one_walked() -> None:
    """Guards against walking a stale copy: the rendered file is the component's file."""
    assert DEFINITION.name == "jitr.asl.json"
    assert "${ca_certificate_id}" in DEFINITION.read_text()
    accepted = rendered()["States"]["IsIssuedByOurCa"]["Choices"][0]["And"][2]["Or"]
    # Without a CA rotation the previous CA is the issuing one.
    assert [rule["StringEquals"] for rule in accepted] == ["ca-id", "ca-id"]
