"""A change to any part of the CVM's REST API definition redeploys it.

API Gateway serves the deployment a stage points at; the stage keeps the old snapshot until a
new deployment is made, and `aws.apigateway.Deployment` is replaced only when its `triggers`
change (components/rest_api.py). Two checks:

* wiring: each region's deployment trigger is the fingerprint of exactly the definition the
  graph declares for that API - the API, every validator, model, resource, method,
  integration and gateway response (every API Gateway resource that names the API must be
  a definition part or a stage-level one, so a new kind cannot slip past);
* every input: changing each input of each kind of part in turn, one at a time, in a program
  that declares the parts and the deployment the way the CVM does, replaces the deployment.

Stage-level settings (the stage, its method settings, the base path mapping) apply to the
stage without a new deployment ("Set up a stage", API Gateway developer guide) and depend on
the deployment: they are not part of it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pulumi_aws as aws
import pytest

from components.rest_api import canonical, fingerprint
from tools.harness import RecordedResource, StackGraph, evaluate

APIGW = "aws:apigateway/"
DEFINITION_KINDS = {"RestApi", "RequestValidator", "Model", "Resource", "Method", "Integration",
                    "Response"}
STAGE_LEVEL_KINDS = {"Deployment", "Stage", "MethodSettings", "BasePathMapping"}


def kind(resource: RecordedResource) -> str:
    return resource.type.rsplit(":", 1)[-1]


def properties(resource: RecordedResource) -> dict[str, Any]:
    """What the program's fingerprint reads of one part: every input it is declared with."""
    return {"kind": kind(resource), "inputs": canonical(dict(resource.inputs))}


def api_parts(graph: StackGraph, api: RecordedResource) -> tuple[list[RecordedResource],
                                                                  list[RecordedResource]]:
    """(definition parts, stage-level parts) of one REST API, by what names the API."""
    naming = [r for r in graph.custom_resources() if r.type.startswith(APIGW)
              and api.id in (r.inputs.get("restApi"), r.inputs.get("restApiId"))]
    unclassified = {kind(r) for r in naming} - DEFINITION_KINDS - STAGE_LEVEL_KINDS
    assert not unclassified, ("classify these API Gateway kinds as part of a deployment or of "
                              f"the stage (tests/test_redeploy.py): {unclassified}")
    return ([api, *[r for r in naming if kind(r) in DEFINITION_KINDS]],
            [r for r in naming if kind(r) in STAGE_LEVEL_KINDS])


@pytest.mark.parametrize("fixture", ["dev_graph", "prod_graph"])
def test_each_deployment_fingerprints_exactly_its_apis_definition(
        fixture: str, request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    apis = graph.of_type(f"{APIGW}restApi:RestApi")
    assert apis
    for api in apis:
        definition, stage_level = api_parts(graph, api)
        assert {kind(r) for r in definition} == DEFINITION_KINDS, api.name
        [deployment] = [r for r in stage_level if kind(r) == "Deployment"]
        expected = fingerprint([properties(r) for r in definition])
        assert deployment.inputs["triggers"] == {"definition": expected}, api.name
        # ... and every property of every part moves it.
        for index, part in enumerate(definition):
            for name in part_inputs(properties(part)):
                changed = [properties(r) for r in definition]
                changed[index]["inputs"][name] = mutated(changed[index]["inputs"][name])
                assert fingerprint(changed) != expected, (part.name, name)


def part_inputs(part: Mapping[str, Any]) -> list[str]:
    return sorted(part["inputs"])


def mutated(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, list):
        return [*value, "changed"]
    if isinstance(value, dict):
        return {**value, "changed": "yes"}
    raise AssertionError(f"cannot change {value!r}")


# --- every input of every kind of part, through the program's own trigger builder -------------

BASE: dict[str, dict[str, Any]] = {
    "validator": {"name": "body", "validate_request_body": True,
                  "validate_request_parameters": True},
    "model": {"name": "Request", "content_type": "application/json",
              "schema": '{"type":"object"}', "description": "a model"},
    "resource": {"path_part": "registration"},
    "method": {"http_method": "POST", "authorization": "NONE", "api_key_required": False,
               "request_parameters": {"method.request.header.x": False},
               "operation_name": "Register"},
    "integration": {"type": "AWS_PROXY", "integration_http_method": "POST",
                    "uri": "arn:aws:apigateway:eu-west-1:lambda:path/f", "timeout_milliseconds": 20000,
                    "passthrough_behavior": "WHEN_NO_MATCH"},
    "response": {"response_type": "BAD_REQUEST_BODY", "status_code": "400",
                 "response_templates": {"application/json": '{"message":"bad"}'},
                 "response_parameters": {"gatewayresponse.header.x": "'y'"}},
    "api": {"name": "api", "description": "an api", "disable_execute_api_endpoint": True},
}


def api_program(inputs: Mapping[str, Mapping[str, Any]]) -> Callable[[], None]:
    def program() -> None:
        from components.rest_api import ApiDefinition

        region = "eu-west-1"
        definition = ApiDefinition()
        api = definition.add(aws.apigateway.RestApi, "api", region=region, **inputs["api"])
        validator = definition.add(aws.apigateway.RequestValidator, "validator", region=region,
                                   rest_api=api.id, **inputs["validator"])
        model = definition.add(aws.apigateway.Model, "model", region=region, rest_api=api.id,
                               **inputs["model"])
        resource = definition.add(aws.apigateway.Resource, "resource", region=region,
                                  rest_api=api.id, parent_id=api.root_resource_id,
                                  **inputs["resource"])
        method = definition.add(aws.apigateway.Method, "method", region=region,
                                rest_api=api.id, resource_id=resource.id,
                                request_validator_id=validator.id,
                                request_models={"application/json": model.name},
                                **inputs["method"])
        definition.add(aws.apigateway.Integration, "integration", region=region,
                       rest_api=api.id, resource_id=resource.id,
                       http_method=method.http_method, **inputs["integration"])
        definition.add(aws.apigateway.Response, "response", region=region,
                       rest_api_id=api.id, **inputs["response"])
        aws.apigateway.Deployment("deployment", region=region, rest_api=api.id,
                                  triggers=definition.triggers())
    return program


def trigger(inputs: Mapping[str, Mapping[str, Any]]) -> Any:
    graph = evaluate(api_program(inputs))
    return graph.named("deployment").inputs["triggers"]


CHANGES = [(part, name) for part, values in BASE.items() for name in values]


@pytest.fixture(scope="module")
def base_trigger() -> Any:
    return trigger(BASE)


def test_the_base_program_is_stable(base_trigger: Any) -> None:
    assert trigger(copy.deepcopy(BASE)) == base_trigger


@pytest.mark.parametrize("part, name", CHANGES, ids=[f"{p}.{n}" for p, n in CHANGES])
def test_changing_any_input_of_any_part_replaces_the_deployment(part: str, name: str,
                                                                base_trigger: Any) -> None:
    changed = copy.deepcopy(BASE)
    changed[part][name] = mutated(changed[part][name])
    assert trigger(changed) != base_trigger
