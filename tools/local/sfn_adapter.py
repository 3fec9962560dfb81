"""moto's Step Functions interpreter made to run our ASL as AWS does (docs/emulation.md,
"Step Functions"): aws-sdk parameters checked and cased as AWS does, results and error
names as AWS reports them, `lambda:invoke` in-process, a Choice on a missing path fails,
a virtual clock for retry intervals, each definition parsed once. Patches are class-level
(moto runs executions in worker threads) and undone on exit."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, cast
from unittest import mock

import boto3
import botocore.session
from antlr4 import CommonTokenStream, InputStream
from antlr4.atn.PredictionMode import PredictionMode
from antlr4.error.ErrorStrategy import BailErrorStrategy
from antlr4.error.Errors import ParseCancellationException
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, Shape, StructureShape
from moto.stepfunctions.parser.api import InvalidDefinition
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.choice.comparison import (
    comparison_variable as comparison_variable_module,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import NoSuchVariable
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk_module,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_dynamodb as dynamodb_module,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse import asl_parser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import json_path as json_path_module
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from tools.local.calls import AwsCalls, Interrupted, acting_as, client_error

# The service part of AWS's error names for aws-sdk integrations.
_ERROR_SERVICE_NAMES = {"iot": "Iot", "dynamodb": "DynamoDb", "sfn": "Sfn", "lambda": "Lambda"}
_BOTO_SERVICE = {"sfn": "stepfunctions", "states": "stepfunctions"}
_SDK_PREFIX = "arn:aws:states:::aws-sdk:"

Handler = Callable[[Any, Any], Any]


@functools.lru_cache(maxsize=None)
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def operation(service: str, action: str) -> Any:
    """The botocore operation of an aws-sdk resource's `service:action` (exact camelCase)."""
    model = _model(_BOTO_SERVICE.get(service, service))
    name = action[:1].upper() + action[1:]
    if name not in model.operation_names:
        raise LookupError(f"aws-sdk:{service}:{action}: {model.service_name} has no {name}")
    return model.operation_model(name)


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def parameter_problems(value: Any, shape: Shape | None, where: str) -> list[str]:
    """AWS accepts an aws-sdk task's parameters only under the API's member names with an
    upper-case first letter; anything else is refused when the machine is created."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {_pascal(n): m for n, m in shape.members.items()}
        problems = []
        for key, item in value.items():
            name = key[:-2] if key.endswith(".$") else key
            if name not in members:
                problems.append(f"{where}: the field {name!r} is not supported by Step Functions "
                                f"(members: {', '.join(sorted(members))})")
            elif not key.endswith(".$"):
                problems += parameter_problems(item, members[name], f"{where}.{name}")
        return problems
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [p for i, v in enumerate(value)
                for p in parameter_problems(v, shape.member, f"{where}[{i}]")]
    return []


def _tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches") or []:
            yield from _tasks(branch.get("States") or {})
        for key in ("Iterator", "ItemProcessor"):
            if state.get(key):
                yield from _tasks(state[key].get("States") or {})


def transition_problems(machine: dict[str, Any], where: str = "") -> list[str]:
    """StartAt and every Next, Default and Catch target must name a state of the same scope
    (a Parallel branch or a Map's processor is its own scope)."""
    states = machine.get("States") or {}
    targets = [(f"{where}/StartAt", machine.get("StartAt"))]
    problems = []
    for name, state in states.items():
        here = f"{where}/States/{name}"
        targets += [(f"{here}/{key}", state[key]) for key in ("Next", "Default") if key in state]
        targets += [(f"{here}/{kind}[{i}]/Next", rule.get("Next")) for kind in ("Choices", "Catch")
                    for i, rule in enumerate(state.get(kind) or []) if kind == "Catch" or "Next" in rule]
        for i, branch in enumerate(state.get("Branches") or []):
            problems += transition_problems(branch, f"{here}/Branches[{i}]")
        problems += [p for key in ("Iterator", "ItemProcessor") if state.get(key)
                     for p in transition_problems(state[key], f"{here}/{key}")]
    return [f"MISSING_TRANSITION_TARGET: {target!r} at {path} names no state of its scope"
            for path, target in targets if target not in states] + problems


def definition_problems(definition: str) -> list[str]:
    """What AWS would refuse in a definition (CreateStateMachine): a transition to no state,
    aws-sdk tasks' actions and parameters."""
    machine = json.loads(definition)
    problems = transition_problems(machine)
    for name, state in _tasks(machine.get("States") or {}):
        resource = str(state.get("Resource") or "")
        if state.get("Type") != "Task" or not resource.startswith(_SDK_PREFIX):
            continue
        service, _, action = resource[len(_SDK_PREFIX):].split(".")[0].partition(":")
        try:
            shape = operation(service, action).input_shape
        except LookupError as missing:
            problems.append(f"state {name}: {missing}")
            continue
        problems += parameter_problems(state.get("Parameters") or {}, shape, f"state {name}")
    return problems


def to_boto_parameters(value: Any, shape: Shape | None) -> Any:
    """ASL parameters (member names, first letter upper-case) -> botocore's member names."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {_pascal(n): (n, m) for n, m in shape.members.items()}
        return {members[k][0]: to_boto_parameters(v, members[k][1]) for k, v in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [to_boto_parameters(item, shape.member) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: to_boto_parameters(v, shape.value) for k, v in value.items()}
    return value


def to_sfn_result(value: Any, shape: Shape | None = None) -> Any:
    """A botocore result as an aws-sdk task returns it on AWS: structure members with an
    upper-case first letter (map keys are data, kept), timestamps as ISO strings."""
    if isinstance(value, dict):
        if isinstance(shape, MapShape):
            return {k: to_sfn_result(v, shape.value) for k, v in value.items()}
        members = shape.members if isinstance(shape, StructureShape) else {}
        return {_pascal(k): to_sfn_result(v, members.get(k) if shape else None)
                for k, v in value.items()}
    if isinstance(value, list):
        return [to_sfn_result(v, shape.member if isinstance(shape, ListShape) else None)
                for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    return value


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pause = 0.002
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        # Backing off: each DescribeExecution takes the interpreter's CPU (and the GIL) from
        # the execution it waits for.
        time.sleep(pause)
        pause = min(pause * 1.5, 0.05)
    raise TimeoutError(f"{execution_arn} still running after {timeout} s")


def run_sync_execution(sfn: Any, state_machine_arn: str, execution_input: str,
                       name: str | None = None) -> dict[str, Any]:
    """StartSyncExecution (moto lacks it) answered from moto's interpreter: start, wait; the
    answer carries `result`, the parsed output, when the execution succeeded."""
    started = sfn.start_execution(stateMachineArn=state_machine_arn,
                                  name=name or f"sync-{uuid.uuid4()}", input=execution_input)
    described = wait_for_execution(sfn, started["executionArn"])
    response: dict[str, Any] = {k: described[k] for k in ("executionArn", "stateMachineArn", "name", "startDate",
                                          "stopDate", "status", "input", "output", "error",
                                          "cause") if k in described}
    if described["status"] == "SUCCEEDED":
        response["result"] = json.loads(described.get("output") or "null")
    return response


def start_sync_execution_answer(region: str, params: Any) -> dict[str, Any]:
    """The StartSyncExecution API answer for clients (tools.reconcile), for `AwsCalls.answer`."""
    response = run_sync_execution(boto3.client("stepfunctions", region_name=region),
                                  params["stateMachineArn"], params.get("input", "{}"),
                                  params.get("name"))
    response.pop("result", None)
    response["ResponseMetadata"] = {"HTTPStatusCode": 200}
    return response


class VirtualClock:
    """Retry intervals pass instantly; `slept` says how long AWS would have waited."""

    def __init__(self) -> None:
        self.slept = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept += max(0.0, float(seconds))


@functools.lru_cache(maxsize=1024)
def _parsed_json_path(path: str) -> Any:
    """jsonpath_ng builds a new parser for every parse: moto's interpreter paid it on every
    path of every state of every execution. Parsed paths are immutable, so shared."""
    return _UNCACHED_JSON_PATH(path)


_UNCACHED_JSON_PATH = json_path_module.parse


@functools.lru_cache(maxsize=64)
def _parsed(definition: str) -> Any:
    """moto's parse in ANTLR's two stages: the fast SLL prediction, bailing out at the first
    error (three quarters of the time), then, only if it bailed, moto's own parse, which reports
    the errors as moto does. (The trees agree: tests/test_sfn_adapter.py.)"""
    parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
    parser.removeErrorListeners()
    parser._interp.predictionMode = PredictionMode.SLL
    parser._errHandler = BailErrorStrategy()
    try:
        tree = parser.state_machine()
    except ParseCancellationException:
        return _UNCACHED_PARSE(definition)
    return Preprocessor().visit(tree), tree


_UNCACHED_PARSE = asl_parser.AmazonStateLanguageParser.parse


class SfnAdapter:
    def __init__(self, calls: AwsCalls | None = None) -> None:
        self.calls = calls or AwsCalls()
        self.lambda_handlers: dict[str, Handler] = {}  # by function name and ARN
        self.clock = VirtualClock()

    @staticmethod
    def client(service: str, region: str) -> Any:
        """botocore validates parameters (moto's interpreter turns that off)."""
        from tools.local.world import shared_client

        return shared_client(service, region)

    @staticmethod
    def _execution(env: Any) -> dict[str, Any]:
        return cast(dict[str, Any], env.states.context_object.context_object_data)

    def _stop(self, env: Any) -> None:
        """StopExecution while the current state runs."""
        arn = self._execution(env)["Execution"]["Id"]
        boto3.client("stepfunctions", region_name=arn.split(":")[3]).stop_execution(
            executionArn=arn, error="Test.Interrupted", cause="interrupted by the scenario")

    def _caller(self, env: Any) -> str:
        return f"states:{self._execution(env)['StateMachine']['Name']}"

    @contextmanager
    def _machine_call(self, env: Any) -> Iterator[None]:
        """The block's AWS calls are the machine's; one the scenario interrupts took effect, and
        the execution stops there (no further state, no Catch: ABORTED)."""
        try:
            with acting_as(self._caller(env)):
                yield
        except Interrupted:
            env.stack.append({})
            self._stop(env)

    def _aws_sdk_task(self, task: Any, env: Any, resource_runtime_part: Any,
                      normalised_parameters: dict, state_credentials: Any) -> None:
        model = operation(task.resource.api_name, task.resource.api_action)
        problems = parameter_problems(normalised_parameters, model.input_shape, task.resource.api_action)
        if problems:  # a dynamic value AWS's validation would also refuse
            raise client_error("ValidationException", model.name, "; ".join(problems))
        client = self.client(task._get_boto_service_name(), resource_runtime_part.region)
        with self._machine_call(env):
            response = getattr(client, task._get_boto_service_action())(
                **to_boto_parameters(normalised_parameters, model.input_shape)) or {}
            response.pop("ResponseMetadata", None)
            env.stack.append(to_sfn_result(response, model.output_shape))

    def _task_client(self, region: str, service: str, state_credentials: Any = None) -> Any:
        """The client moto's optimised integrations (dynamodb:*) call: ours, cached, with
        botocore's parameter validation on (moto builds a new client per task, unvalidated).
        The credentials are the execution role's; `acting_as` already names the caller."""
        return self.client(service, region)

    def _dynamodb_task(self, original: Callable[..., None]) -> Callable[..., None]:
        def run(task: Any, env: Any, *args: Any, **kwargs: Any) -> None:
            with self._machine_call(env):
                original(task, env, *args, **kwargs)
        return run

    def _invoke_lambda(self, parameters: dict, region: str, state_credentials: Any) -> dict:
        payload = json.loads(parameters.get("Payload") or b"{}")
        function = parameters["FunctionName"]
        self.calls.record(region, "lambda", "Invoke", {"FunctionName": function, "Payload": payload})
        handler = self.lambda_handlers.get(function)
        if handler is None:
            raise client_error("ResourceNotFoundException", "Invoke", f"Function not found: {function}")
        try:
            result = handler(payload, None)
        except Exception as err:  # what Lambda reports for an unhandled exception
            return {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST",
                    "Payload": {"errorType": type(err).__name__, "errorMessage": str(err)}}
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST",
                "Payload": json.loads(json.dumps(result))}

    @staticmethod
    def _choice_comparison(comparison: Any, env: Any) -> None:
        """A Choice rule reading a path the input lacks fails with States.Runtime (AWS);
        moto treats the rule as false."""
        comparison.variable.eval(env)
        operator = comparison.comparison_function.operator_type
        if isinstance(env.stack[-1], NoSuchVariable) and operator != ComparisonOperatorType.IsPresent:
            cause = (f"Invalid path '{comparison.variable.string_sampler.literal_value}': The "
                     "choice state's condition path references an invalid value.")
            raise FailureEventException(failure_event=FailureEvent(
                env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
                event_type=HistoryEventType.TaskFailed, event_details=cast(EventDetails, {
                    "taskFailedEventDetails": TaskFailedEventDetails(
                        error=StatesErrorNameType.StatesRuntime.to_name(), cause=cause)})))
        comparison.comparison_function.eval(env)

    @staticmethod
    def _validate_definition(definition: str) -> None:
        # moto's parser exceptions lose their error code (AWSError takes it from an argument,
        # not from the class): AWS answers InvalidDefinition.
        try:
            _parsed(definition)
        except Exception as error:  # moto's own refusal, as it words it
            raise InvalidDefinition(message=f"{type(error).__name__}: {error}",
                                    exception_type="InvalidDefinition") from None
        problems = definition_problems(definition)
        if problems:
            raise InvalidDefinition(message="SCHEMA_VALIDATION_FAILED: " + "; ".join(problems),
                                    exception_type="InvalidDefinition")

    @staticmethod
    def _error_name(service: str, error: Exception) -> str:
        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
        name = f"{service}.{code}"
        return name if name.endswith("Exception") else name + "Exception"

    @contextmanager
    def active(self) -> Iterator[SfnAdapter]:
        sdk = aws_sdk_module.StateTaskServiceAwsSdk
        ddb = dynamodb_module.StateTaskServiceDynamoDB
        adapter = self

        def aws_sdk_task(task: Any, env: Any, *args: Any, **kwargs: Any) -> None:
            adapter._aws_sdk_task(task, env, *args, **kwargs)

        def heap_key(component: Any) -> str:  # stable for a shared (cached) program tree
            return f"{type(component).__name__}-{id(component)}"

        with ExitStack() as stack:
            patch = stack.enter_context
            patch(mock.patch.object(sdk, "_eval_service_task", aws_sdk_task))
            patch(mock.patch.object(sdk, "_normalise_service_error_name", staticmethod(
                lambda name: _ERROR_SERVICE_NAMES.get(name.lower(), _pascal(name)))))
            patch(mock.patch.object(sdk, "_normalise_exception_name", staticmethod(self._error_name)))
            patch(mock.patch.object(ddb, "_eval_service_task", self._dynamodb_task(ddb._eval_service_task)))
            patch(mock.patch.object(dynamodb_module, "boto_client_for", self._task_client))
            patch(mock.patch.object(json_path_module, "parse", _parsed_json_path))
            patch(mock.patch.object(lambda_eval_utils, "_invoke_lambda_function", self._invoke_lambda))
            patch(mock.patch.object(comparison_variable_module.ComparisonVariable, "_eval_body",
                                    self._choice_comparison))
            patch(mock.patch.object(asl_parser.AmazonStateLanguageParser, "parse",
                                    staticmethod(_parsed)))
            patch(mock.patch.object(EvalComponent, "heap_key", property(heap_key)))
            patch(mock.patch.object(StepFunctionsParserBackend, "_validate_definition",
                                    staticmethod(self._validate_definition)))
            patch(mock.patch.object(retrier_decl, "time", self.clock))
            yield self
