"""The AWS IoT rules engine for the topic rules stored in the moto server.

moto stores topic rules but never runs them. `publish(region, topic, message)` does what
IoT does with a message: every enabled rule of that region whose SQL `FROM` topic filter
matches the topic gets the message and runs its actions, assuming each action's role (the
role must trust IoT for that rule and grant the action on the target); a failed action
runs the rule's error action with AWS's error message. Only `SELECT * FROM '<filter>'`
is understood: any other SQL is reported as unsupported rather than half-run.

Actions are a table (`ACTIONS`: action key -> runner); add a row for a new action type.
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
from tools.local.emulation.iam_roles import AccessDenied, assume, require
from tools.local.system import LocalSystem

_SQL = re.compile(r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+'(?P<topic>[^']+)'\s*(?P<rest>.*)$",
                  re.IGNORECASE | re.DOTALL)


class UnsupportedSql(ValueError):
    pass


def topic_filter(sql: str) -> str:
    """The FROM topic filter of `SELECT * FROM '<filter>'`."""
    match = _SQL.match(sql)
    if match is None:
        raise UnsupportedSql(f"cannot parse rule SQL {sql!r}")
    if match.group("select").strip() != "*" or match.group("rest").strip():
        raise UnsupportedSql(f"the local rules engine runs only SELECT * FROM '<topic>': {sql!r}")
    return match.group("topic")


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT topic filter match (`+` one level, `#` the rest)."""
    wanted, actual = filter_.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(actual) or (level != "+" and level != actual[index]):
            return False
    return len(wanted) == len(actual)


@dataclass(frozen=True)
class Delivery:
    rule: str
    action: str  # stepFunctions, sqs, ... ; "errorAction:sqs" for an error action
    target: str  # what the action addressed (state machine ARN, queue URL...)
    ok: bool
    detail: str  # execution ARN, message id, or the error


@dataclass(frozen=True)
class ActionCall:
    system: LocalSystem
    region: str
    account: str
    rule_name: str
    rule_arn: str
    topic: str
    message: Mapping[str, Any]


ActionRunner = Callable[[ActionCall, Mapping[str, Any]], tuple[str, str]]


def _documents(call: ActionCall, role_arn: str) -> list[Mapping[str, Any]]:
    return assume(call.system, role_arn, service="iot.amazonaws.com",
                  source_account=call.account, source_arn=call.rule_arn)


def _step_functions(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    machine_arn = (f"arn:aws:states:{call.region}:{call.account}:stateMachine:"
                   f"{action['stateMachineName']}")
    require(_documents(call, action["roleArn"]), "states:StartExecution", machine_arn,
            action["roleArn"])
    name = f"{action.get('executionNamePrefix') or ''}{uuid.uuid4()}"[:80]
    started = call.system.client("stepfunctions", call.region).start_execution(
        stateMachineArn=machine_arn, name=name, input=json.dumps(call.message))
    return machine_arn, started["executionArn"]


def _sqs(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    url = action["queueUrl"]
    queue_arn = f"arn:aws:sqs:{call.region}:{call.account}:{url.rstrip('/').rsplit('/', 1)[-1]}"
    require(_documents(call, action["roleArn"]), "sqs:SendMessage", queue_arn, action["roleArn"])
    body = json.dumps(call.message)
    if action.get("useBase64"):
        body = base64.b64encode(body.encode()).decode()
    sent = call.system.client("sqs", call.region).send_message(QueueUrl=url, MessageBody=body)
    return url, sent["MessageId"]


def _lambda(call: ActionCall, action: Mapping[str, Any]) -> tuple[str, str]:
    # IoT invokes Lambda through the function's resource policy (no role); the runtime is
    # the in-process Lambda emulation.
    from tools.local.emulation.lambdas import LambdaRuntime

    function = action["functionArn"]
    try:
        call.system.emulation(LambdaRuntime).invoke(function, dict(call.message))
    except LookupError:
        raise
    except Exception as error:  # asynchronous invoke: the action succeeded, the function failed
        return function, f"invoked; the function raised {type(error).__name__}: {error}"
    return function, "invoked"


ACTIONS: dict[str, ActionRunner] = {
    "stepFunctions": _step_functions,
    "sqs": _sqs,
    "lambda": _lambda,
}


class RulesEngine:
    def __init__(self, system: LocalSystem) -> None:
        self._system = system
        self.deliveries: list[Delivery] = []

    def _rules(self, region: str) -> list[dict[str, Any]]:
        iot = self._system.client("iot", region)
        names = [r["ruleName"] for r in iot.list_topic_rules()["rules"]]
        rules = []
        for name in names:
            fetched = iot.get_topic_rule(ruleName=name)
            rules.append({**fetched["rule"], "ruleArn": fetched["ruleArn"]})
        return rules

    def publish(self, region: str, topic: str, message: Mapping[str, Any]) -> list[Delivery]:
        """Deliver one message published on `topic` in `region` to the matching rules."""
        deliveries: list[Delivery] = []
        for rule in self._rules(region):
            if rule.get("ruleDisabled"):
                continue
            try:
                if not topic_matches(topic_filter(rule["sql"]), topic):
                    continue
            except UnsupportedSql as error:
                deliveries.append(Delivery(rule["ruleName"], "sql", "", False, str(error)))
                continue
            account = rule["ruleArn"].split(":")[4]
            call = ActionCall(self._system, region, account, rule["ruleName"], rule["ruleArn"],
                              topic, message)
            deliveries.extend(self._run_rule(call, rule))
        self.deliveries.extend(deliveries)
        return deliveries

    def _run_rule(self, call: ActionCall, rule: Mapping[str, Any]) -> list[Delivery]:
        out = []
        failures = []
        for entry in rule.get("actions") or []:
            for kind, action in entry.items():
                delivery = self._run_action(call, kind, action)
                out.append(delivery)
                if not delivery.ok:
                    failures.append({"failedAction": kind, "failedResource": delivery.target,
                                     "errorMessage": delivery.detail})
        if failures and rule.get("errorAction"):
            error_message = {
                "ruleName": call.rule_name, "topic": call.topic,
                "cloudwatchTraceId": str(uuid.uuid4()), "clientId": "local",
                "base64OriginalPayload": base64.b64encode(
                    json.dumps(call.message).encode()).decode(),
                "failures": failures}
            error_call = ActionCall(call.system, call.region, call.account, call.rule_name,
                                    call.rule_arn, call.topic, error_message)
            for kind, action in rule["errorAction"].items():
                delivery = self._run_action(error_call, kind, action)
                out.append(Delivery(delivery.rule, f"errorAction:{kind}", delivery.target,
                                    delivery.ok, delivery.detail))
        return out

    def _run_action(self, call: ActionCall, kind: str, action: Mapping[str, Any]) -> Delivery:
        runner = ACTIONS.get(kind)
        if runner is None:
            return Delivery(call.rule_name, kind, "", False,
                            f"the local rules engine has no {kind} action")
        try:
            target, detail = runner(call, action)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            return Delivery(call.rule_name, kind, _target_of(action), False,
                            f"{code}: {error.response['Error'].get('Message', '')}")
        except (AccessDenied, LookupError) as error:
            return Delivery(call.rule_name, kind, _target_of(action), False, str(error))
        return Delivery(call.rule_name, kind, target, True, detail)

    def describe(self) -> str:
        rules = sum(len(self._system.declared("aws:iot/topicRule:TopicRule", r))
                    for r in self._system.regions)
        return f"IoT rules engine: {rules} topic rule(s), actions {', '.join(ACTIONS)}"

    def stop(self) -> None:
        pass


def _target_of(action: Mapping[str, Any]) -> str:
    for key in ("stateMachineName", "queueUrl", "functionArn"):
        if key in action:
            return str(action[key])
    return ""


@emulation("rules-engine")
def start(system: LocalSystem) -> RulesEngine | None:
    if not any(system.declared("aws:iot/topicRule:TopicRule", r) for r in system.regions):
        return None
    return RulesEngine(system)
