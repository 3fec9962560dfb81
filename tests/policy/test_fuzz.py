"""No guardrail raises on malformed-but-legal input: documents with numbers, booleans and
nulls in conditions, single-object or odd Statements, principals as lists, wrong-typed
fields, and props whose leaves are replaced by arbitrary JSON values.

Starting points are the compliant and non-compliant cases of test_guardrails (so each
guardrail sees the shapes it expects, then mutated), run through the whole pack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi_policy import StackValidationArgs

from .evasions import EVASIONS, SECURE
from .support import STACK_POLICIES, fired, stack_resources
from .test_guardrails import RESOURCE_CASES, STACK_CASES

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**31, 2**31), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["*", "", "?", "iam:Pass*", "IOT:*", "s3:GetObject", "arn:aws:iam::*:role/*", "o-*",
                     "arn:aws:iot:*:*:topic/#", "${iot:Connection.Thing.ThingName}", "${iot:ClientId}",
                     "123456789012", "arn:aws:s3:::b", "true", "false", "Allow", "Deny", "NONE", "0.0.0.0/0",
                     "cognito-identity.amazonaws.com", "{not json", "[]", "{}", "null", "[" * 3000,
                     "a: 2020-13-45", "Bearer 0a1b2c3d4e5f6a7b8c9d", "redis://:pw@h", "vpce-0*", "3.0.0.0/8"]),
    st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)

condition_blocks = st.dictionaries(
    st.sampled_from(["StringEquals", "StringLike", "ArnLike", "Bool", "NumericLessThan", "DateGreaterThan",
                     "ForAnyValue:StringLike", "ForAllValues:StringEquals", "StringEqualsIfExists", "Null",
                     "IpAddress", "StringNotEquals", "weird"]),
    st.one_of(st.dictionaries(st.sampled_from(["aws:SourceAccount", "AWS:PrincipalOrgID", "aws:SourceArn",
                                               "iot:Connection.Thing.IsAttached", "iot:ClientId",
                                               "cognito-identity.amazonaws.com:amr", "aws:SecureTransport",
                                               "token.actions.githubusercontent.com:sub"]),
                              json_values, max_size=3), json_values), max_size=3)
principals = st.one_of(st.just("*"), json_values, st.dictionaries(
    st.sampled_from(["AWS", "Service", "Federated", "CanonicalUser", "*", "aws"]),
    st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=3))
statements = st.fixed_dictionaries({}, optional={
    "Sid": json_values, "Effect": st.one_of(st.sampled_from(["Allow", "Deny", "allow", "ALLOW"]), json_values),
    "Action": json_values, "NotAction": json_values, "Resource": json_values, "NotResource": json_values,
    "Principal": principals, "NotPrincipal": principals, "Condition": st.one_of(condition_blocks, json_values)})
documents = st.fixed_dictionaries({"Statement": st.one_of(statements, st.lists(statements, max_size=4), json_values)},
                                  optional={"Version": json_values, "Id": json_values})
document_values = st.one_of(documents.map(json.dumps), documents, json_values, st.just("{not json"))

DOCUMENT_KEYS = {"policy", "assumeRolePolicy", "policyDocument", "templateBody", "body", "definition",
                 "ruleJson", "desiredState"}


def mutate(value: Any, data: st.DataObject, path: str = "") -> Any:
    """Replace some leaves (and every document) by drawn values, keeping the overall shape."""
    key = path.rsplit(".", 1)[-1]
    if key in DOCUMENT_KEYS:
        return data.draw(document_values, label=path)
    if isinstance(value, dict):
        out = {k: mutate(v, data, f"{path}.{k}") for k, v in value.items()}
        if data.draw(st.booleans(), label=f"{path}+extra"):
            out[data.draw(st.sampled_from(sorted(DOCUMENT_KEYS | {"name", "tags", "environment"})))] = \
                data.draw(json_values)
        return out
    if isinstance(value, list):
        return [mutate(v, data, f"{path}[]") for v in value]
    if data.draw(st.integers(0, 3), label=f"{path}?") == 0:
        return data.draw(json_values, label=path)
    return value


STARTS_BY_TYPE: dict[str, list[dict[str, Any]]] = {}
for _case in RESOURCE_CASES:
    for _props in [_case[2], *(bad for bad, _ in _case[3])]:
        if _props is not None:
            STARTS_BY_TYPE.setdefault(_case[1], []).append(_props)
for _corpus_case in [*EVASIONS, *SECURE]:  # the issue-21 corpus: every class's shapes
    if _corpus_case.kind == "resource":
        STARTS_BY_TYPE.setdefault(_corpus_case.spec[0], []).append(dict(_corpus_case.spec[1]))


@pytest.mark.parametrize("type_", sorted(STARTS_BY_TYPE), ids=lambda t: t.rsplit(":", 1)[-1])
@SETTINGS
@given(data=st.data())
def test_no_resource_guardrail_raises_on_mutated_props(type_, data):
    start = data.draw(st.sampled_from(STARTS_BY_TYPE[type_]), label="start")
    props = mutate(start, data)
    fired(type_, props)  # any exception fails the test, naming the policy in the traceback


STACK_STARTS = [c[1] for c in STACK_CASES] + [b for c in STACK_CASES for b, _ in c[2]] + \
    [c.spec for c in [*EVASIONS, *SECURE] if c.kind == "stack"]


@pytest.mark.parametrize("start", STACK_STARTS, ids=[f"stack-{i}" for i in range(len(STACK_STARTS))])
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_stack_guardrail_raises_on_mutated_resources(start, data):
    resources = [(spec[0], mutate(dict(spec[1]), data), *spec[2:]) for spec in start]
    built = stack_resources(resources)

    def ignore(message: str, urn: str | None = None) -> None:
        pass

    for policy in STACK_POLICIES:
        policy.validate(StackValidationArgs(built, {}, {}), ignore)


@SETTINGS
@given(document=documents)
def test_semantics_take_any_document(document):
    from policy.semantics import exposure, iot, secrets, templates, transport

    exposure.findings(document, ["123456789012"])
    exposure.trust_findings(document)
    iot.cross_device_reach(document)
    iot.account_wide(document)
    iot.policy_covers(document, document)
    iot.unknown_actions(document)
    transport.uncovered(document, "sqs", ["arn:aws:sqs:eu-west-1:123456789012:q"])
    list(secrets.find(document))
    try:
        templates.resolve(document, {"AWS::Region": "eu-west-1"})
    except templates.Unresolvable:
        pass  # the one error resolve may raise: an intrinsic it cannot evaluate


@SETTINGS
# "[" * 1000 nests deeper than the YAML parser can recurse (refused); deeper costs the pure-Python
# scanner quadratic time (1 s at 3000) and tests nothing more.
@given(text=st.one_of(st.text(max_size=60), st.sampled_from([
    "a: 2020-13-45", "[" * 1000, "a: !Ref", "!!python/object:os.system x", "a: &x [*x]",
    "Resources: {A: {Type: !Sub 'AWS::${X}'}}", "openapi: 3.0.1\npaths: {/x: {get: {security: [{}]}}}"])))
def test_templates_read_any_text(text):
    """CloudFormation/OpenAPI text is read as a document or refused (None), never raises."""
    from policy.semantics import templates

    document = templates.load(text)
    assert document is None or hasattr(document, "get")
    templates.resource_types(document)
