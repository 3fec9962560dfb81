"""AWS IoT Core policies as AWS IoT evaluates them, and whether one device could reach
another device's client id, topics or thing.

Resource ARNs are matched the way IoT matches them: `*` and `?` anywhere in the ARN (region
and account included), MQTT's `+` and `#` literal in `topic/` and `topicfilter/` resources
(so `topicfilter/dt/+/x` lets a device *subscribe with* the filter `dt/+/x`, which then
delivers every device's `dt/<any>/x`). Policy variables are filled per connection:
identity variables (thing name, certificate fields) with the connecting device's own
values, `${iot:ClientId}` with whatever client id the policy lets it connect with.

The judgement: substitute device A's identity into the policy, device B's into the topics
that belong to B (its per-thing topics in this policy, `$aws/things/B/...`, its client id and
thing), and ask whether any Allow (not overridden by an unconditional Deny) of A reaches one
of B's. B is tried as an unrelated name and as A's name with a suffix, which catches `${thing}*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.facts import THING_IS_ATTACHED_KEY, THING_NAME_VARIABLE

from . import actions as iam_actions
from . import globs
from .documents import Statement, statements

ATTACKER = "thing-a"
# Another device: unrelated, and neighbours of the attacker's name (extended or prefixed,
# with and without separators: `boiler-1` must not reach `boiler-1-2` nor `2-boiler-1`).
VICTIMS = ("thing-b", "thing-ax", "thing-a-2", "thing-a_2", "thing-a:2", "thing-a2",
           "xthing-a", "2-thing-a")
GROUP_VALUE = "shared-group-value"

_ARN = re.compile(r"^arn:[^:]*:iot:[^:]*:[^:]*:(?P<rest>.*)$", re.DOTALL)
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# Variables that name the connecting device itself.
_IDENTITY_VARIABLES = re.compile(
    r"^iot:(connection\.thing\.thingname|certificateid|certificate\.subject\.commonname|"
    r"certificate\.subject\.serialnumber|certificate\.serialnumber|"
    r"certificate\.subject\.distinguishednamequalifier)$", re.IGNORECASE)
_CLIENT_ID_VARIABLE = re.compile(r"^iot:clientid$", re.IGNORECASE)

TOPIC_ACTIONS = {"iot:publish": "topic", "iot:retainpublish": "topic",
                 "iot:receive": "topic", "iot:getretainedmessage": "topic",
                 "iot:subscribe": "topicfilter"}
CONNECT = "iot:connect"
THING_ACTIONS_PREFIXES = ("iot:getthingshadow", "iot:updatethingshadow",
                          "iot:deletethingshadow", "iot:listnamedshadowsforthing",
                          "iot:describejobexecution", "iot:getpendingjobexecutions",
                          "iot:startnextpendingjobexecution", "iot:updatejobexecution")
ASSUME_ROLE = "iot:assumerolewithcertificate"
DATA_PLANE = frozenset({"iot:connect", "iot:publish", "iot:retainpublish", "iot:receive",
                        "iot:subscribe", "iot:getretainedmessage", "iot:listretainedmessages",
                        ASSUME_ROLE, *THING_ACTIONS_PREFIXES})
# Data-plane actions with no per-device resource, so no cross-device reach to judge: why.
NOT_PER_DEVICE = {
    "iot:listretainedmessages": "its only resource is `*` (AWS IoT does not scope it by topic) and "
                                "it lists topic names, not payloads; a grant of it on `*` is "
                                "iot-policy-no-wildcard-resource's to report",
}
# Topics AWS IoT publishes about one device (its client id or thing), which only that device
# (or the back end) should read: lifecycle events and registry events.
_DEVICE_EVENT_TOPICS = ("$aws/events/presence/connected/{}", "$aws/events/presence/disconnected/{}",
                        "$aws/events/subscriptions/subscribed/{}",
                        "$aws/events/subscriptions/unsubscribed/{}", "$aws/events/thing/{}/*")


def resource_path(resource: str) -> str:
    """`topic/dt/x` from an IoT ARN; `*` for `*`; the text itself otherwise."""
    text = resource.strip()
    match = _ARN.match(text)
    if match:
        return match.group("rest")
    if globs.scopes_nothing(text):
        return "*"
    # arn:aws:iot:eu-west-1:1:* style or arn:*: the part after the fifth colon
    parts = text.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        return parts[5]
    if text.startswith("arn:") and globs.has_wildcard(text):
        return "*"  # e.g. "arn:aws:*": wildcards swallow the rest
    return text


def substitute(pattern: str, identity: str, client_ids: tuple[str, ...]) -> list[str]:
    """The pattern as IoT evaluates it for a device called `identity` that connected with one
    of `client_ids` (globs)."""
    results = [""]
    position = 0
    for match in _VARIABLE.finditer(pattern):
        literal = pattern[position:match.start()]
        name = match.group(1).strip()
        if _IDENTITY_VARIABLES.match(name):
            options: tuple[str, ...] = (identity,)
        elif _CLIENT_ID_VARIABLE.match(name):
            options = client_ids
        elif name.lower().startswith("iot:connection.thing."):
            options = (GROUP_VALUE,)  # attributes, thing type: shared by a group of devices
        else:
            options = (match.group(0),)  # unknown variable: kept as written
        results = [r + literal + o for r in results for o in options]
        position = match.end()
    return [r + pattern[position:] for r in results]


def _uses_identity(pattern: str) -> bool:
    return any(_IDENTITY_VARIABLES.match(m.group(1).strip()) or
               _CLIENT_ID_VARIABLE.match(m.group(1).strip())
               for m in _VARIABLE.finditer(pattern))


@dataclass(frozen=True)
class Grant:
    statement: Statement
    actions: frozenset[str]
    paths: tuple[str, ...] | None     # None: NotResource
    not_paths: tuple[str, ...]
    written: tuple[str, ...] = ()     # the resources as the policy spells them (paths' order)


def grants(document: Mapping[str, Any] | None, effect: str = "allow") -> list[Grant]:
    out = []
    for statement in statements(document):
        if statement.effect != effect:
            continue
        granted = iam_actions.granted(statement.actions, statement.not_actions)
        granted = frozenset(a for a in granted if a.startswith("iot:"))
        if statement.not_resources is not None:
            out.append(Grant(statement, granted, None,
                             tuple(resource_path(r) for r in statement.not_resources)))
        else:
            written = statement.resources or ()
            out.append(Grant(statement, granted, tuple(resource_path(r) for r in written), (),
                             written))
    return out


def _client_id_condition(statement: Statement) -> list[str] | None:
    bound = [c for c in statement.condition("iot:clientid")
             if c.positive_match and c.base in ("stringequals", "stringlike")]
    if not bound:
        return None
    return [v for c in bound for v in c.values]


def bound_to_attached_thing(statement: Statement) -> bool:
    """`Bool iot:Connection.Thing.IsAttached = true`: AWS IoT evaluates the policy for the
    thing named by the client id, and lets the connection through only if the certificate is
    attached to that thing, so the client id can only be a thing of the device's own (AWS IoT
    developer guide, "Thing policy examples" and "Thing policy variables")."""
    attached = [c for c in statement.condition(THING_IS_ATTACHED_KEY)
                if c.base == "bool" and not c.negated and not c.if_exists and not c.set_qualifier]
    return any(v.strip().lower() == "true" for c in attached for v in c.values) and \
        not any(v.strip().lower() != "true" for c in attached for v in c.values)


def connect_client_ids(document: Mapping[str, Any] | None, identity: str) -> tuple[str, ...]:
    """Client-id globs device `identity` may connect with."""
    found: list[str] = []
    for grant in grants(document):
        if CONNECT not in grant.actions:
            continue
        if bound_to_attached_thing(grant.statement):
            found.append(identity)  # only a thing the certificate is attached to: its own
            continue
        if grant.paths is None:
            found.append("*")
            continue
        pinned = _client_id_condition(grant.statement)
        for path in grant.paths:
            for resolved in substitute(path, identity, ("*",)):
                if not globs.intersects(resolved, "client/*"):
                    continue
                client = resolved[len("client/"):] if resolved.startswith("client/") else "*"
                if pinned is not None:
                    found.extend(p for value in pinned
                                 for p in substitute(value, identity, ("*",)))
                else:
                    found.append(client)
    return tuple(dict.fromkeys(found)) or ("*",)


def _reach_path(path: str, kind: str) -> str:
    """For subscriptions: the filter's MQTT wildcards stand for any topic level(s)."""
    if kind != "topicfilter":
        return path
    head, _, name = path.partition("/")
    levels = ["*" if level in ("+", "#") else level for level in name.split("/")]
    return head + "/" + "/".join(levels)


def owned_paths(document: Mapping[str, Any] | None, victim: str,
                client_ids: tuple[str, ...]) -> dict[str, list[str]]:
    """What belongs to device `victim`: kind -> resource paths."""
    owned: dict[str, list[str]] = {
        "client": [f"client/{victim}"],
        "thing": [f"thing/{victim}"],
        "topic": [f"topic/$aws/things/{victim}/*",
                  *(f"topic/{t.format(victim)}" for t in _DEVICE_EVENT_TOPICS)],
        "topicfilter": [f"topicfilter/$aws/things/{victim}/*",
                        *(f"topicfilter/{t.format(victim)}" for t in _DEVICE_EVENT_TOPICS)],
    }
    for grant in grants(document):
        for path in grant.paths or ():
            if not _uses_identity(path):
                continue
            for resolved in substitute(path, victim, (victim,)):
                kind = resolved.split("/", 1)[0]
                name = resolved.split("/", 1)[1] if "/" in resolved else ""
                if kind in ("topic", "topicfilter"):
                    # A device's topics are its topics whichever resource kind named them.
                    owned["topic"].append(f"topic/{name}")
                    owned["topicfilter"].append(f"topicfilter/{name}")
    return {k: list(dict.fromkeys(v)) for k, v in owned.items()}


@dataclass(frozen=True)
class Reach:
    where: str
    actions: tuple[str, ...]
    granted: str
    victim_resources: tuple[str, ...]

    def __str__(self) -> str:
        names = [iam_actions.spelled(a) for a in self.actions]
        return (f"{self.where}: {iam_actions.sample(names)} on {self.granted!r} let one device "
                f"reach another device's {', '.join(repr(v) for v in self.victim_resources[:2])}")


def _denied(document: Mapping[str, Any] | None, action: str, target: str, attacker: str,
            client_ids: tuple[str, ...]) -> bool:
    for grant in grants(document, "deny"):
        if action not in grant.actions:
            continue
        if "Condition" in grant.statement.raw:
            continue  # it may not hold for the device: only an unconditional Deny cancels
        if grant.paths is None:
            excluded = any(globs.intersects(p2, target)
                           for p in grant.not_paths for p2 in substitute(p, attacker, client_ids))
            if not excluded:
                return True
            continue
        for path in grant.paths:
            if any(globs.covers(p2, target) for p2 in substitute(path, attacker, client_ids)):
                return True
    return False


def cross_device_reach(document: Mapping[str, Any] | None) -> list[Reach]:
    """Every way device A could act on device B's client id, topics or thing, one entry per
    (statement, granted resource)."""
    client_ids = connect_client_ids(document, ATTACKER)
    found: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    allows = grants(document)
    for victim in VICTIMS:
        owned = owned_paths(document, victim, (victim,))
        for grant in allows:
            for action in sorted(grant.actions):
                kind = _kind_of(action)
                if kind is None:
                    continue
                if action == CONNECT and bound_to_attached_thing(grant.statement):
                    continue  # the client id can only be the device's own thing
                for target in owned.get(kind, []):
                    hit = _grant_reaches(grant, kind, target, client_ids)
                    if hit and action == "iot:subscribe" and not _receives(
                            document, allows, "topic/" + target.split("/", 1)[1], client_ids):
                        # AWS checks iot:Receive on every message it delivers: a filter wider
                        # than what the device may receive delivers nothing of another's.
                        continue
                    if hit and not _denied(document, action, target, ATTACKER, client_ids):
                        acts, victims = found.setdefault((grant.statement.where, hit), ([], []))
                        if action not in acts:
                            acts.append(action)
                        if target not in victims:
                            victims.append(target)
    return [Reach(where, tuple(acts), granted, tuple(victims))
            for (where, granted), (acts, victims) in found.items()]


def _receives(document: Mapping[str, Any] | None, allows: list[Grant], topic: str,
              client_ids: tuple[str, ...]) -> bool:
    """May the attacker receive messages on (some of) `topic`?"""
    return any("iot:receive" in g.actions and _grant_reaches(g, "topic", topic, client_ids)
               and not _denied(document, "iot:receive", topic, ATTACKER, client_ids)
               for g in allows)


def _kind_of(action: str) -> str | None:
    if action == CONNECT:
        return "client"
    if action == ASSUME_ROLE:
        return "rolealias"
    if action in TOPIC_ACTIONS:
        return TOPIC_ACTIONS[action]
    if action.startswith(THING_ACTIONS_PREFIXES):
        return "thing"
    return None


def _grant_reaches(grant: Grant, kind: str, target: str,
                   client_ids: tuple[str, ...]) -> str | None:
    if grant.paths is None:
        excluded = any(globs.covers(p2, target) for p in grant.not_paths
                       for p2 in substitute(p, ATTACKER, client_ids))
        return None if excluded else f"NotResource {list(grant.not_paths)}"
    for path in grant.paths:
        for resolved in substitute(path, ATTACKER, client_ids):
            if globs.intersects(_reach_path(resolved, kind), target):
                return path
    return None


PROBES = ("client/zq-probe-client", "thing/zq-probe-thing", "topic/zq-probe/level/x",
          "topicfilter/zq-probe/level/x", "rolealias/zq-probe-alias",
          # Basic Ingest: publishing to $aws/rules/<rule>/... feeds that rule directly.
          "topic/$aws/rules/zq_probe_rule/x")


def account_wide(document: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(where, resource) of Allow grants covering every client, thing or topic of the
    account: `*`, `topic/*`, `client/*`, `topicfilter/#`, NotResource..."""
    out = []
    client_ids = connect_client_ids(document, ATTACKER)
    for grant in grants(document):
        actions = grant.actions
        if bound_to_attached_thing(grant.statement):
            actions = actions - {CONNECT}  # iot:Connect on `*` bound to the attached thing
        if not actions:
            continue
        if grant.paths is None:
            out.append((grant.statement.where, f"NotResource {list(grant.not_paths)}"))
            continue
        for path, written in zip(grant.paths, grant.written, strict=True):
            for resolved in substitute(path, ATTACKER, client_ids):
                kind = resolved.split("/", 1)[0]
                if any(globs.intersects(_reach_path(resolved, kind if kind == "topicfilter" else ""),
                                        probe) for probe in PROBES):
                    out.append((grant.statement.where, written))
                    break
    return list(dict.fromkeys(out))


def connect_bound_to_thing(statement: Statement) -> list[str]:
    """Problems of an Allow iot:Connect statement, which must tie the client id to the thing
    the certificate is attached to: `Bool iot:Connection.Thing.IsAttached = true` does (AWS
    evaluates the policy for the thing the client id names, on any resource, `*` included);
    client/${iot:Connection.Thing.ThingName} alone does not (without the condition a
    certificate attached to no thing is not refused by every other statement)."""
    problems = []
    if statement.not_resources is not None:
        problems.append("iot:Connect with NotResource allows almost every client id")
    if not bound_to_attached_thing(statement):
        problems.append(f"iot:Connect without Condition Bool {THING_IS_ATTACHED_KEY} = true: "
                        "a certificate could connect as a thing it is not attached to")
        paths = [resource_path(r) for r in statement.resources or ()]
        pinned = _client_id_condition(statement)
        for path in paths:
            if path == f"client/{THING_NAME_VARIABLE}" or (
                    pinned and all(v == THING_NAME_VARIABLE for v in pinned)):
                continue
            problems.append(f"iot:Connect on {path!r}: the client id must be "
                            f"client/{THING_NAME_VARIABLE} (or bound by {THING_IS_ATTACHED_KEY})")
    return problems


def literal_mqtt_wildcards_in_deny(document: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    out = []
    for statement in statements(document):
        if not statement.denies:
            continue
        for resource in (statement.resources or ()) + (statement.not_resources or ()):
            path = resource_path(resource)
            name = path.split("/", 1)[1] if "/" in path else path
            if "#" in name or "+" in name:
                out.append((statement.where, resource))
    return out


def policy_covers(broad: Mapping[str, Any] | None, narrow: Mapping[str, Any] | None) -> list[str]:
    """What `narrow` allows that `broad` does not (each as 'Action on resource'); empty when
    every Allow of `narrow` is within an Allow of `broad`."""
    broad_grants = grants(broad)
    extra = []
    for grant in grants(narrow):
        if grant.paths is None:
            extra.append(f"{grant.statement.where}: NotResource {list(grant.not_paths)}")
            continue
        for action in sorted(grant.actions):
            for path in grant.paths:
                if not any(action in b.actions and b.paths is not None and
                           any(globs.covers(bp, path) for bp in b.paths)
                           for b in broad_grants):
                    extra.append(f"{iam_actions.spelled(action)} on {path!r}")
    return extra


def wildcard_actions(document: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(where, pattern) of Allow action patterns broader than one data-plane action, and
    NotAction (everything else)."""
    out = []
    for statement in statements(document):
        if not statement.allows:
            continue
        if statement.not_actions is not None:
            out.append((statement.where, f"NotAction {list(statement.not_actions)}"))
            continue
        for pattern in statement.actions or ():
            if not globs.has_wildcard(pattern):
                continue
            expanded = iam_actions.expand(pattern)
            if len(expanded) != 1 or not expanded <= DATA_PLANE:
                out.append((statement.where, pattern))
    return out


def unknown_actions(document: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(where, pattern) of Allow actions the action database does not know: what they grant
    cannot be judged, so they count as dangerous (AWS adds IoT actions the database lacks)."""
    return [(s.where, p) for s in statements(document) if s.allows
            for p in iam_actions.unknown(s.actions if s.actions is not None else s.not_actions)]


def iter_actions(document: Mapping[str, Any] | None) -> Iterable[tuple[Statement, frozenset[str]]]:
    for statement in statements(document):
        if statement.allows:
            yield statement, iam_actions.granted(statement.actions, statement.not_actions)
