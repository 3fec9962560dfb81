"""AWS IoT's rules engine for the topic rules stored in moto (which never runs them).

`publish(region, topic, message)`: every enabled rule of the region whose `SELECT * FROM
'<filter>'` matches runs its actions, each under its role (trust for that rule, the action
granted on the target); a failed action runs the error action with IoT's error message. Any
other SQL is refused, never half-run. A new action type is a row in `ACTIONS`.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tools.local.emulation import emulation
from tools.local.emulation.policy import AccessDenied, assume, require
from tools.local.materialise import GLOBAL_SERVICE_REGION
from tools.local.world import World

_SQL = re.compile(r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+'(?P<topic>[^']+)'\s*(?P<rest>.*)$",
                  re.IGNORECASE | re.DOTALL)


class UnsupportedSql(ValueError):
    pass


def topic_filter(sql: str, *, only_select_star: bool = True) -> str:
    """The FROM topic filter of `SELECT * FROM '<filter>'` (any other SQL is refused)."""
    match = _SQL.match(sql)
    if match is None or only_select_star and (match.group("select").strip() != "*"
                                              or match.group("rest").strip()):
        raise UnsupportedSql(f"the local rules engine runs only SELECT * FROM '<topic>': {sql!r}")
    return match.group("topic")


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT topic filter match (`+` one level, `#` the rest)."""
    wanted, actual = filter_.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(actual) or level not in ("+", actual[index]):
            return False
    return len(wanted) == len(actual)


@dataclass(frozen=True)
class Delivery:
    rule: str
    action: str  # stepFunctions, sqs, lambda; "errorAction:sqs" for an error action
    target: str
    ok: bool
    detail: str  # execution ARN, message id, or the error


@dataclass(frozen=True)
class ActionCall:
    world: World
    region: str
    rule_arn: str
    topic: str
    message: Mapping[str, Any]

    @property
    def account(self) -> str:
        return self.rule_arn.split(":")[4]

    def role(self, action: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return assume(self.world.client("iam", GLOBAL_SERVICE_REGION), action["roleArn"],
                      service="iot.amazonaws.com", source_account=self.account,
                      source_arn=self.rule_arn)


def _step_functions(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    machine = f"arn:aws:states:{call.region}:{call.account}:stateMachine:{action['stateMachineName']}"
    require(call.role(action), "states:StartExecution", machine, action["roleArn"])
    name = f"{action.get('executionNamePrefix') or ''}{uuid.uuid4()}"[:80]
    started = call.world.client("stepfunctions", call.region).start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(call.message))
    return machine, started["executionArn"]


def _sqs(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    url = action["queueUrl"]
    queue = f"arn:aws:sqs:{call.region}:{call.account}:{url.rstrip('/').rsplit('/', 1)[-1]}"
    require(call.role(action), "sqs:SendMessage", queue, action["roleArn"])
    body = json.dumps(call.message)
    if action.get("useBase64"):
        body = base64.b64encode(body.encode()).decode()
    sent = call.world.client("sqs", call.region).send_message(QueueUrl=url, MessageBody=body)
    return url, sent["MessageId"]


def _lambda(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    """Asynchronous invoke through the function's resource policy (no role)."""
    from tools.local.emulation.lambdas import LambdaRuntime

    function = action["functionArn"]
    try:
        call.world.emulation(LambdaRuntime).invoke_as_service(
            function, dict(call.message), principal="iot.amazonaws.com",
            source_arn=call.rule_arn, source_account=call.account)
    except LookupError:
        raise
    except Exception as error:  # the action succeeded; the function failed later
        return function, f"invoked; the function raised {type(error).__name__}: {error}"
    return function, "invoked"


ACTIONS: dict[str, Callable[[ActionCall, Mapping[str, Any]], tuple[str, str]]] = {
    "stepFunctions": _step_functions, "sqs": _sqs, "lambda": _lambda}


class RulesEngine:
    def __init__(self, world: World) -> None:
        self._world = world
        self.deliveries: list[Delivery] = []

    def publish(self, region: str, topic: str, message: Mapping[str, Any]) -> list[Delivery]:
        """Deliver one message published on `topic` in `region` to the matching rules."""
        iot = self._world.client("iot", region)
        deliveries: list[Delivery] = []
        for listed in iot.list_topic_rules()["rules"]:
            fetched = iot.get_topic_rule(ruleName=listed["ruleName"])
            rule = fetched["rule"]
            if rule.get("ruleDisabled"):
                continue
            try:  # a rule for another topic is none of this message's business
                if not topic_matches(topic_filter(rule["sql"], only_select_star=False), topic):
                    continue
                topic_filter(rule["sql"])
            except UnsupportedSql as error:
                deliveries.append(Delivery(rule["ruleName"], "sql", "", False, str(error)))
                continue
            call = ActionCall(self._world, region, fetched["ruleArn"], topic, message)
            deliveries += self._run_rule(call, rule)
        self.deliveries += deliveries
        return deliveries

    def _run_rule(self, call: ActionCall, rule: Mapping[str, Any]) -> list[Delivery]:
        out = [self._run_action(call, rule["ruleName"], kind, action)
               for entry in rule.get("actions") or [] for kind, action in entry.items()]
        failures = [{"failedAction": d.action, "failedResource": d.target,
                     "errorMessage": d.detail} for d in out if not d.ok]
        if failures and rule.get("errorAction"):
            error_message = {"ruleName": rule["ruleName"], "topic": call.topic,
                             "cloudwatchTraceId": str(uuid.uuid4()), "clientId": "local",
                             "base64OriginalPayload": base64.b64encode(
                                 json.dumps(call.message).encode()).decode(),
                             "failures": failures}
            error_call = ActionCall(call.world, call.region, call.rule_arn, call.topic, error_message)
            for kind, action in rule["errorAction"].items():
                done = self._run_action(error_call, rule["ruleName"], kind, action)
                out.append(Delivery(done.rule, f"errorAction:{kind}", done.target, done.ok, done.detail))
        return out

    @staticmethod
    def _run_action(call: ActionCall, rule: str, kind: str, action: Mapping[str, Any]) -> Delivery:
        target = next((str(action[k]) for k in ("stateMachineName", "queueUrl", "functionArn")
                       if k in action), "")
        runner = ACTIONS.get(kind)
        if runner is None:
            return Delivery(rule, kind, target, False, f"the local rules engine has no {kind} action")
        try:
            target, detail = runner(call, action)
        except ClientError as error:
            return Delivery(rule, kind, target, False,
                            f"{error.response['Error']['Code']}: {error.response['Error'].get('Message', '')}")
        except (AccessDenied, LookupError) as error:
            return Delivery(rule, kind, target, False, str(error))
        return Delivery(rule, kind, target, True, detail)

    def describe(self) -> str:
        return f"IoT rules engine: actions {', '.join(ACTIONS)}; SQL SELECT * FROM '<topic>'"

    def stop(self) -> None:
        pass


@emulation("rules_engine")
def start(world: World) -> RulesEngine | None:
    return RulesEngine(world) if world.declared("aws:iot/topicRule:TopicRule") else None
