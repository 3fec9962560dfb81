"""Makes moto's Step Functions interpreter run our ASL the way AWS does.

moto 5.2 executes state machine definitions (`execute_state_machine`), but its `aws-sdk:*`
integration differs from AWS in ways that matter to our state machines, and it cannot run
Lambda code without Docker. `SfnAdapter` patches exactly those seams of
`moto.stepfunctions.parser` while active (the ASL under test stays valid for real AWS):

* `aws-sdk` parameters: AWS takes PascalCase (`CertificateId`) for camelCase APIs such as
  IoT; we map each key to the botocore input shape's member name, recursively.
* `aws-sdk` results: AWS returns members with an upper-case first letter
  (`CertificateDescription.CertificateArn`) and timestamps as strings; we do the same.
* `aws-sdk` error names: AWS reports `<Service>.<Code>` with an `Exception` suffix
  (`Iot.ResourceNotFoundException`); moto reports the exception class name.
* `lambda:invoke`: calls the registered Python handler in-process.
* Choice rules: AWS fails the execution with `States.Runtime` when a rule other than
  `IsPresent` reads a path that is not in the input; moto quietly treats the rule as false.
  We fail as AWS does, so an unguarded optional path shows up in an executed run.

Results follow the operation's output shape: structure members get AWS's upper-case first
letter, map keys (data, e.g. a thing's attribute names) are kept as they are.

The patches are class-level, so they apply to executions moto runs in its worker threads,
in-process (`mock_aws`) and in a `ThreadedMotoServer` of the same process alike. Used by the
local run (`python -m tools.local`) and, with a call log and fault injection added, by the
tests (`tests/support/sfn_adapter.py`). Every service call passes `_before_call` first; when
it answers True the call takes effect and then the execution is stopped (tests use this to
leave the registry the way an interrupted run does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, cast
from unittest import mock

import boto3
import botocore.session
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, Shape, StructureShape

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
from moto.stepfunctions.parser.asl.component.state.choice.comparison import (
    comparison_variable as comparison_variable_module,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import (
    NoSuchVariable,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk_module,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_dynamodb as dynamodb_module,
)

# Service part of AWS's error names for aws-sdk integrations.
_ERROR_SERVICE_NAMES = {"iot": "Iot", "dynamodb": "DynamoDb", "sfn": "Sfn", "lambda": "Lambda"}

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class FakeLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def client_error(code: str, operation: str, message: str = "injected by the test") -> ClientError:
    """A botocore ClientError as AWS would return it."""
    response: Any = {"Error": {"Code": code, "Message": message},
                     "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"}}
    return ClientError(response, operation)


class _Shapes:
    def __init__(self) -> None:
        self._session = botocore.session.get_session()
        self._models: dict[str, Any] = {}

    def operation(self, service: str, action: str) -> Any:
        if service not in self._models:
            self._models[service] = self._session.get_service_model(service)
        model = self._models[service]
        wanted = action.lower()
        name = next(n for n in model.operation_names if n.lower() == wanted)
        return model.operation_model(name)


def to_boto_parameters(value: Any, shape: Shape | None) -> Any:
    """PascalCase ASL parameters -> botocore member names, following the input shape."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {name.lower(): (name, member) for name, member in shape.members.items()}
        out = {}
        for key, item in value.items():
            name, member = members.get(key.lower(), (key, None))
            out[name] = to_boto_parameters(item, member)
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [to_boto_parameters(item, shape.member) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: to_boto_parameters(v, shape.value) for k, v in value.items()}
    return value


def to_sfn_result(value: Any, shape: Shape | None = None) -> Any:
    """botocore result -> what an aws-sdk task returns on AWS (capitalised members, strings).

    With the output `shape`, only structure members are capitalised; map keys are data and
    stay as they are. Without it, every key is capitalised (the shape is unknown)."""
    if isinstance(value, dict):
        if isinstance(shape, MapShape):
            return {k: to_sfn_result(v, shape.value) for k, v in value.items()}
        members = shape.members if isinstance(shape, StructureShape) else {}
        return {(k[:1].upper() + k[1:]): to_sfn_result(v, members.get(k) if shape else None)
                for k, v in value.items()}
    if isinstance(value, list):
        member = shape.member if isinstance(shape, ListShape) else None
        return [to_sfn_result(v, member) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    return value


class SfnAdapter:
    """Active inside `with adapter.active():`; see the module docstring."""

    def __init__(self, lambda_handlers: dict[str, Handler] | None = None) -> None:
        # Keyed by function name or ARN, as the ASL's FunctionName gives it.
        self.lambda_handlers = dict(lambda_handlers or {})
        self._shapes = _Shapes()

    def _before_call(self, service: str, action: str, parameters: dict[str, Any]) -> bool:
        """Every aws-sdk, dynamodb and lambda task passes here first (tests record/fail).
        True: let the call take effect, then stop the execution."""
        return False

    @staticmethod
    def _stop(env: Any) -> None:
        """StopExecution on this execution, sent while the current state runs (after its
        call took effect): no further state runs, no Catch, no rollback; ABORTED."""
        execution_arn = env.states.context_object.context_object_data["Execution"]["Id"]
        region = execution_arn.split(":")[3]
        boto3.client("stepfunctions", region_name=region).stop_execution(
            executionArn=execution_arn, error="Test.Interrupted", cause="interrupted by the test")

    # -- patched seams ---------------------------------------------------------------------

    def _aws_sdk_task(self, task: Any, env: Any, resource_runtime_part: Any,
                      normalised_parameters: dict, state_credentials: Any) -> None:
        service = task.resource.api_name
        action = task.resource.api_action
        interrupt = self._before_call(service, action, normalised_parameters)
        operation = self._shapes.operation(task._get_boto_service_name(), action)
        parameters = to_boto_parameters(normalised_parameters, operation.input_shape)
        client = aws_sdk_module.boto_client_for(service=task._get_boto_service_name(),
                                                region=resource_runtime_part.region,
                                                state_credentials=state_credentials)
        response = getattr(client, task._get_boto_service_action())(**parameters) or {}
        response.pop("ResponseMetadata", None)
        env.stack.append(to_sfn_result(response, operation.output_shape))
        if interrupt:
            self._stop(env)

    def _dynamodb_task(self, original: Callable[..., None]) -> Callable[..., None]:
        adapter = self

        def run(task: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                state_credentials: Any) -> None:
            interrupt = adapter._before_call("dynamodb", task.resource.api_action,
                                             normalised_parameters)
            original(task, env, resource_runtime_part, normalised_parameters, state_credentials)
            if interrupt:
                adapter._stop(env)

        return run

    def _invoke_lambda(self, parameters: dict, region: str, state_credentials: Any) -> dict:
        payload = json.loads(parameters.get("Payload") or b"{}")
        if self._before_call("lambda", "invoke", {**parameters, "Payload": payload}):
            raise NotImplementedError("interrupting supports aws-sdk and dynamodb tasks only")
        function = parameters["FunctionName"]
        handler = self.lambda_handlers.get(function)
        if handler is None:
            raise client_error("ResourceNotFoundException", "Invoke",
                               f"no in-process handler registered for {function}")
        context = FakeLambdaContext(function_name=function.rsplit(":", 1)[-1],
                                    invoked_function_arn=function)
        try:
            result = handler(payload, context)
        except Exception as err:  # what Lambda reports for an unhandled exception
            return {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST",
                    "Payload": {"errorType": type(err).__name__, "errorMessage": str(err)}}
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST",
                "Payload": json.loads(json.dumps(result))}

    @staticmethod
    def _choice_comparison(comparison: Any, env: Any) -> None:
        """A Choice rule as AWS evaluates it: reading a missing path is States.Runtime."""
        comparison.variable.eval(env)
        value = env.stack[-1]
        operator = comparison.comparison_function.operator_type
        if isinstance(value, NoSuchVariable) and operator != ComparisonOperatorType.IsPresent:
            cause = (f"Invalid path '{comparison.variable.string_sampler.literal_value}': The "
                     "choice state's condition path references an invalid value.")
            raise FailureEventException(failure_event=FailureEvent(
                env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
                event_type=HistoryEventType.TaskFailed,
                event_details=cast(EventDetails, {
                    "taskFailedEventDetails": TaskFailedEventDetails(
                        error=StatesErrorNameType.StatesRuntime.to_name(), cause=cause)})))
        comparison.comparison_function.eval(env)

    @staticmethod
    def _error_service_name(service_name: str) -> str:
        return _ERROR_SERVICE_NAMES.get(service_name.lower(), service_name[:1].upper()
                                        + service_name[1:])

    @staticmethod
    def _error_name(norm_service_name: str, ex: Exception) -> str:
        code = ex.response["Error"]["Code"] if isinstance(ex, ClientError) else type(ex).__name__
        name = f"{norm_service_name}.{code}"
        return name if name.endswith("Exception") else name + "Exception"

    @contextmanager
    def active(self) -> Iterator[SfnAdapter]:
        adapter = self
        aws_sdk_cls = aws_sdk_module.StateTaskServiceAwsSdk
        dynamodb_cls = dynamodb_module.StateTaskServiceDynamoDB

        def aws_sdk_task(task: Any, env: Any, resource_runtime_part: Any,
                         normalised_parameters: dict, state_credentials: Any) -> None:
            adapter._aws_sdk_task(task, env, resource_runtime_part, normalised_parameters,
                                  state_credentials)

        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(aws_sdk_cls, "_eval_service_task", aws_sdk_task))
            stack.enter_context(mock.patch.object(
                aws_sdk_cls, "_normalise_service_error_name",
                staticmethod(self._error_service_name)))
            stack.enter_context(mock.patch.object(
                aws_sdk_cls, "_normalise_exception_name", staticmethod(self._error_name)))
            stack.enter_context(mock.patch.object(
                dynamodb_cls, "_eval_service_task",
                self._dynamodb_task(dynamodb_cls._eval_service_task)))
            stack.enter_context(mock.patch.object(
                lambda_eval_utils, "_invoke_lambda_function", self._invoke_lambda))
            stack.enter_context(mock.patch.object(
                comparison_variable_module.ComparisonVariable, "_eval_body",
                self._choice_comparison))
            yield self
