"""AWS IoT's rules engine for the topic rules stored in moto (which never runs them):
`publish(region, topic, message)` runs every enabled rule whose FROM filter matches and whose
WHERE holds, each action under its role, the error action on a failure. Only a strict subset
of AWS IoT SQL is understood (`evaluate`), any other SQL is refused, never half-run; a new
action type is a row in `ACTIONS`. AWS pages: docs/emulation.md, "IoT rules engine and data plane".
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from tools.local.calls import RegionDown
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


# --- a strict subset of AWS IoT SQL (https://docs.aws.amazon.com/iot/latest/developerguide/
# iot-sql-reference.html): SELECT items `*`, `topic(n)`, a 'string literal' or a field path
# `a.b.c`, each `AS alias` (a bare single field keeps its name); WHERE terms joined by OR
# (no AND, no parentheses), each `isUndefined(path)` or `[NOT] startswith(path, 'literal')`
# (iot-sql-functions.html). A function of an undefined value is undefined, and a WHERE that
# is not true does not fire the rule; an undefined SELECTed value is left out of the
# message (iot-sql-select.html). Anything else is UnsupportedSql.
_ITEM = re.compile(r"^(?P<expr>topic\((?P<level>\d+)\)|'(?P<literal>[^']*)'|(?P<path>[A-Za-z_][\w.]*|\*))"
                   r"(?:\s+AS\s+(?P<alias>[A-Za-z_]\w*))?$", re.IGNORECASE)
_TERM = re.compile(r"^(?P<not>NOT\s+)?(?P<fn>isUndefined|startswith)\((?P<path>[A-Za-z_][\w.]*)"
                   r"(?:,\s*'(?P<literal>[^']*)')?\)$", re.IGNORECASE)
_UNDEFINED = object()


def _split_items(select: str) -> list[str]:
    items, depth, quoted, current = [], 0, False, ""
    for char in select:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        if char == "," and depth == 0 and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return items


def _field(message: Mapping[str, Any], path: str) -> Any:
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _UNDEFINED
        value = value[part]
    return value


def _term(term: str, message: Mapping[str, Any], sql: str) -> bool | None:
    match = _TERM.match(term.strip())
    if match is None:
        raise UnsupportedSql(f"the local rules engine does not understand WHERE term {term!r}: {sql!r}")
    value = _field(message, match.group("path"))
    if match.group("fn").lower() == "isundefined":
        if match.group("literal") is not None:
            raise UnsupportedSql(f"isUndefined takes one argument: {sql!r}")
        result: bool | None = value is _UNDEFINED
    else:
        if match.group("literal") is None:
            raise UnsupportedSql(f"startswith takes a path and a 'literal': {sql!r}")
        result = value.startswith(match.group("literal")) if isinstance(value, str) else None
    if match.group("not"):
        return None if result is None else not result
    return result


def evaluate(sql: str, topic: str, message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The message a rule's actions receive, or None when its WHERE does not hold."""
    match = _SQL.match(sql)
    if match is None:
        raise UnsupportedSql(f"the local rules engine runs only SELECT ... FROM '<topic>' [WHERE ...]: {sql!r}")
    rest = match.group("rest").strip()
    if rest:
        if not rest.upper().startswith("WHERE "):
            raise UnsupportedSql(f"the local rules engine understands only a WHERE after FROM: {sql!r}")
        condition = rest[len("WHERE "):]
        if re.search(r"\bAND\b|\(\s*\(", condition, re.IGNORECASE):
            raise UnsupportedSql(f"the local rules engine's WHERE joins terms with OR only: {sql!r}")
        if not any(_term(term, message, sql) is True
                   for term in re.split(r"\s+OR\s+", condition, flags=re.IGNORECASE)):
            return None
    levels = topic.split("/")
    out: dict[str, Any] = {}
    for item in _split_items(match.group("select")):
        parsed = _ITEM.match(item)
        if parsed is None:
            raise UnsupportedSql(f"the local rules engine does not understand SELECT item {item!r}: {sql!r}")
        alias, path = parsed.group("alias"), parsed.group("path")
        if path == "*":
            if alias:
                raise UnsupportedSql(f"* takes no alias: {sql!r}")
            out.update(message)
            continue
        if parsed.group("level") is not None:
            index = int(parsed.group("level"))
            value: Any = levels[index - 1] if 1 <= index <= len(levels) else _UNDEFINED
        elif parsed.group("literal") is not None:
            value = parsed.group("literal")
        else:
            value = _field(message, path)
        name = alias or (path if path and "." not in path else None)
        if name is None:
            raise UnsupportedSql(f"SELECT item {item!r} needs AS <name> locally: {sql!r}")
        if value is not _UNDEFINED:
            out[name] = value
    return out


@dataclass(frozen=True)
class Delivery:
    rule: str
    action: str  # stepFunctions, sqs, lambda; "errorAction:sqs" for an error action
    target: str
    ok: bool
    detail: str  # execution ARN, message id, or the error
    topic: str = ""  # of the message the rule selected


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
    from tools.local.emulation.lambdas import InvokeDenied, LambdaRuntime

    function = action["functionArn"]
    try:
        call.world.emulation(LambdaRuntime).invoke_as_service(
            function, dict(call.message), principal="iot.amazonaws.com",
            source_arn=call.rule_arn, source_account=call.account)
    except InvokeDenied as denied:  # AWS IoT could not invoke it: the action failed, its error action runs
        raise AccessDenied(str(denied)) from denied
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
        self._account = world.account
        self.deliveries: list[Delivery] = []

    def rules(self, region: str) -> list[dict[str, Any]]:
        """The region's rules as GetTopicRule answers them, read from moto's rule store as it is
        now: the rules engine is AWS's own reader of its rules (and two API round trips per rule
        for every message were a sixth of the local run's CPU)."""
        from moto.iot.models import iot_backends

        if region in self._world.calls.down:  # its rules engine is down with the region
            raise RegionDown(f"the rules engine of {region}, which is down")
        return [rule.to_get_dict() for rule in list(iot_backends[self._account][region].rules.values())]

    def publish(self, region: str, topic: str, message: Mapping[str, Any]) -> list[Delivery]:
        """Deliver one message published on `topic` in `region` to the matching rules."""
        deliveries: list[Delivery] = []
        for fetched in self.rules(region):
            rule = fetched["rule"]
            if rule.get("ruleDisabled"):
                continue
            try:  # a rule for another topic is none of this message's business
                if not topic_matches(topic_filter(rule["sql"], only_select_star=False), topic):
                    continue
                selected = evaluate(rule["sql"], topic, message)
            except UnsupportedSql as error:
                deliveries.append(Delivery(rule["ruleName"], "sql", "", False, str(error), topic))
                continue
            if selected is None:
                continue  # the WHERE clause did not hold
            call = ActionCall(self._world, region, fetched["ruleArn"], topic, selected)
            deliveries += [replace(d, topic=topic) for d in self._run_rule(call, rule)]
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
        return (f"IoT rules engine: actions {', '.join(ACTIONS)}; SQL SELECT */topic(n)/'literal'/path "
                f"AS name FROM '<topic>' [WHERE isUndefined/startswith OR ...]")

    def stop(self) -> None:
        pass


@emulation("rules_engine")
def start(world: World) -> RulesEngine | None:
    return RulesEngine(world) if world.declared("aws:iot/topicRule:TopicRule") else None
