"""A mandatory guardrail whose input is unknown (during preview) never passes silently: it
either still reports the violation or raises UnknownValueError, which the engine reports as
"can't run policy ... during preview"; during the update it judges the known value.

Each failing case of test_guardrails is replayed with one top-level input at a time, and
then every leaf, replaced by the engine's unknown sentinel.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, StackValidationArgs, StackValidationPolicy
from tools.policy_sdk import UnknownValueError

from tools.harness import UNKNOWN

OBJECT_UNKNOWN = "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"  # pulumi_policy's unknown object sentinel

from .evasions import EVASIONS
from .support import BY_NAME, _config, provider, resource_violations, stack_resources, stack_violations, unknown_leaves
from .test_guardrails import RESOURCE_CASES, STACK_CASES


def _mandatory(name: str) -> bool:
    return BY_NAME[name].enforcement_level != EnforcementLevel.ADVISORY


def _outcome(run: Any) -> str:
    try:
        return "violation" if run() else "pass"
    except UnknownValueError:
        return "unknown"


RESOURCE_BADS = [(name, type_, good or {}, bad, config) for name, type_, good, bads, config in RESOURCE_CASES
                 for bad, _ in bads if _mandatory(name)]
# The issue-21 evasions too, judged under their provider (the home account).
CORPUS_BADS = [(c.guardrails[0], c.spec[0], {}, dict(c.spec[1]), c.provider) for c in EVASIONS
               if c.kind == "resource" and _mandatory(c.guardrails[0])]


def _variants(props: dict[str, Any], good: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """One input unknown at a time (including inputs only the compliant case sets: a missing
    value and an unknown one are different things), then every leaf."""
    keys = list(dict.fromkeys([*props, *(good or {})]))
    variants = [(f"{key}=unknown", {**props, key: UNKNOWN}) for key in keys]
    variants.append(("every leaf unknown", unknown_leaves(props)))
    return variants


@pytest.mark.parametrize("name,type_,good,bad,config", RESOURCE_BADS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(RESOURCE_BADS)])
def test_resource_guardrail_never_passes_an_unknown_input(name, type_, good, bad, config):
    assert resource_violations(name, type_, bad, config=config), "the known value is a violation"
    for label, props in _variants(bad, good):
        outcome = _outcome(lambda: resource_violations(name, type_, props, config=config))
        assert outcome in ("violation", "unknown"), f"{name} passed silently with {label}"


@pytest.mark.parametrize("name,type_,good,bad,prov", CORPUS_BADS,
                         ids=[f"corpus-{c[0]}-{i}" for i, c in enumerate(CORPUS_BADS)])
def test_corpus_evasion_never_passes_an_unknown_input(name, type_, good, bad, prov):
    judge = provider(**prov)
    assert resource_violations(name, type_, bad, prov=judge), "the known value is a violation"
    for label, props in _variants(bad, good):
        outcome = _outcome(lambda p=props: resource_violations(name, type_, p, prov=judge))
        assert outcome in ("violation", "unknown"), f"{name} passed silently with {label}"


STACK_BADS = [(name, bad, config) for name, _, bads, config in STACK_CASES for bad, _ in bads if _mandatory(name)]


@pytest.mark.parametrize("name,bad,config", STACK_BADS, ids=[f"{c[0]}-{i}" for i, c in enumerate(STACK_BADS)])
def test_stack_guardrail_never_passes_an_unknown_input(name, bad, config):
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)

    def run(resources: list[Any]) -> list[str]:
        found: list[str] = []

        def report(message: str, urn: str | None = None) -> None:
            found.append(message)

        policy.validate(StackValidationArgs(stack_resources(resources), _config(name, config), {}), report)
        return found

    assert run(bad)
    for index, spec in enumerate(bad):
        for label, props in _variants(dict(spec[1])):
            variant = [*bad[:index], (spec[0], props, *spec[2:]), *bad[index + 1:]]
            assert _outcome(lambda v=variant: run(v)) in ("violation", "unknown"), \
                f"{name} passed silently with resource {index} {label}"


def test_an_unknown_value_is_reported_as_the_engine_reports_it():
    """The same guardrail: unknown at preview -> UnknownValueError naming the property path;
    known during the update -> the violation."""
    public = '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "*"}]}'
    with pytest.raises(UnknownValueError) as raised:
        resource_violations("sqs-no-public-policy", "aws:sqs/queuePolicy:QueuePolicy",
                            {"queueUrl": "u", "policy": UNKNOWN})
    assert raised.value.message == "string value at .policy can't be known during preview"
    assert resource_violations("sqs-no-public-policy", "aws:sqs/queuePolicy:QueuePolicy",
                               {"queueUrl": "u", "policy": public})


def test_an_unknown_outside_dead_letter_keys_leaves_the_dead_letter_verdict_judged():
    """sqs-dead-letters-kept reads every resource for mentions of a queue under a dead-letter key.
    An unknown string elsewhere (a CloudFront origin's domain at preview) cannot change that verdict,
    so it is judged; an unknown under a dead-letter key, or an unknown object that may hide one,
    still stops it."""
    from .test_guardrails import QUEUE, T

    target = (T["rule"], {"errorAction": {"sqs": {"queueUrl": QUEUE[1]["url"]}}})
    site = ("aws:cloudfront/distribution:Distribution", {"origins": [{"domainName": UNKNOWN}]})
    assert stack_violations("sqs-dead-letters-kept", [QUEUE, target, site]) == []
    assert stack_violations("sqs-dead-letters-kept", [QUEUE, site])  # still no dead-letter target
    hidden = (T["rule"], {"errorAction": {"sqs": {"queueUrl": UNKNOWN}}})
    with pytest.raises(UnknownValueError):
        stack_violations("sqs-dead-letters-kept", [QUEUE, hidden])
    opaque = (T["rule"], {"actions": OBJECT_UNKNOWN})
    with pytest.raises(UnknownValueError):
        stack_violations("sqs-dead-letters-kept", [QUEUE, opaque])
