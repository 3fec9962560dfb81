"""Does a resource (or trust) policy let anyone outside the account in?

One judgement for every resource policy the system could carry (SQS, SNS, S3, Secrets
Manager, KMS, DynamoDB, CloudWatch Logs, EventBridge, Lambda) and for role trust policies.
An Allow statement exposes the resource when its principal is `*` (or NotPrincipal) and no
condition pins the caller to fixed accounts, an organization, ARNs or networks; when it names
an account other than the home accounts; or when it lets an AWS service act for any account
(confused deputy: no fixed aws:SourceAccount / aws:SourceArn / aws:SourceOrgID).

A condition counts only by its value: `*` (or a pattern whose account field is a wildcard)
pins nothing, nor do negated, IfExists or ForAllValues operators, which hold for requests
that lack the key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import globs
from .documents import Condition, Statement, statements

ACCOUNT = re.compile(r"^\d{12}$")
ARN = re.compile(r"^arn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*):"
                 r"(?P<account>[^:]*):(?P<resource>.*)$", re.DOTALL)
ORG_ID = re.compile(r"^o-[a-z0-9]{4,}$")

# Keys whose fixed values pin the caller (principal side) or the calling resource (service
# side) to accounts, an organization, ARNs or a network.
# (aws:ResourceAccount is not among them: in a resource policy it names the resource's own
# account and says nothing about the caller.)
ACCOUNT_KEYS = frozenset({"aws:principalaccount", "aws:sourceaccount", "aws:sourceowner",
                          "kms:calleraccount"})
ORG_KEYS = frozenset({"aws:principalorgid", "aws:sourceorgid"})
ORG_PATH_KEYS = frozenset({"aws:principalorgpaths", "aws:sourceorgpaths"})
ARN_KEYS = frozenset({"aws:principalarn", "aws:sourcearn"})
NETWORK_KEYS = frozenset({"aws:sourcevpc", "aws:sourcevpce"})
SERVICE_SCOPE_KEYS = frozenset({"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid",
                                "aws:sourceorgpaths", "aws:sourceowner"})


@dataclass(frozen=True)
class Finding:
    where: str
    kind: str  # "public", "cross-account", "service-unscoped", "not-principal"
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


def account_of(value: str) -> str | None:
    """The fixed 12-digit account an account id or ARN names; None when absent/wildcarded."""
    text = value.strip()
    if ACCOUNT.match(text):
        return text
    match = ARN.match(text)
    if match and ACCOUNT.match(match.group("account")):
        return match.group("account")
    return None


def fixed_arn(value: str) -> tuple[bool, str | None]:
    """(pins something, account) for an ARN-valued condition: the account field must be a
    fixed account, or (S3-style ARNs without one) the resource name must be fixed."""
    match = ARN.match(value.strip())
    if match is None:
        return False, None
    if globs.has_wildcard(match.group("service")):
        return False, None
    account = match.group("account")
    if ACCOUNT.match(account):
        return True, account
    if account == "" and match.group("resource") and \
            globs.literal_prefix(match.group("resource")).strip("/:") != "":
        return True, None  # e.g. arn:aws:s3:::bucket (names are global)
    return False, None


def _fixed_org_path(value: str) -> bool:
    first = value.strip().split("/", 1)[0]
    return bool(ORG_ID.match(first))


def _narrow_cidr(value: str) -> bool:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return network.prefixlen >= (8 if network.version == 4 else 32)


@dataclass(frozen=True)
class Scope:
    """What the positive conditions of a statement pin."""
    accounts: frozenset[str]      # fixed accounts named (principal or source side)
    pinned: bool                  # some condition pins callers to something fixed
    service_pinned: bool          # a Source* key pins the resource a service acts for
    keys: frozenset[str]


def scope(statement: Statement) -> Scope:
    accounts: set[str] = set()
    pinned = service_pinned = False
    keys: set[str] = set()
    for condition in statement.conditions:
        if not condition.positive_match or not condition.values:
            continue
        values = condition.values
        if any(globs.scopes_nothing(v) for v in values):
            continue  # one "*" among the values admits everyone
        fixed = False
        key = condition.key
        if key in ACCOUNT_KEYS:
            found = [account_of(v) for v in values]
            fixed = all(found)
            accounts.update(a for a in found if a)
        elif key in ORG_KEYS:
            fixed = all(ORG_ID.match(v.strip()) for v in values)
        elif key in ORG_PATH_KEYS:
            fixed = all(_fixed_org_path(v) for v in values)
        elif key in ARN_KEYS:
            results = [fixed_arn(v) for v in values]
            fixed = all(ok for ok, _ in results)
            accounts.update(a for _, a in results if a)
        elif _arn_valued_context_key(key, values):
            # The calling service sets these (e.g. CloudWatch Logs' encryption context); a
            # direct caller chooses them freely, so they pin services, never principals.
            if all(ok for ok, _ in (fixed_arn(v) for v in values)):
                service_pinned = True
                keys.add(key)
            continue
        elif key in NETWORK_KEYS:
            fixed = all(globs.literal_prefix(v).strip() not in ("", "vpc-", "vpce-")
                        for v in values)
        elif key == "aws:sourceip":
            fixed = all(_narrow_cidr(v) for v in values)
        elif key == "aws:userid":
            fixed = all(not globs.scopes_nothing(v.split(":", 1)[0]) for v in values)
        if fixed:
            pinned = True
            keys.add(key)
            if key in SERVICE_SCOPE_KEYS:
                service_pinned = True
    return Scope(frozenset(accounts), pinned, service_pinned, frozenset(keys))


def _arn_valued_context_key(key: str, values: Iterable[str]) -> bool:
    """Service-specific keys that carry the calling resource's ARN, e.g. CloudWatch Logs'
    kms:EncryptionContext:aws:logs:arn."""
    return key.startswith("kms:encryptioncontext:") and all(v.strip().startswith("arn:") for v in values)


def _aws_principals(statement: Statement) -> tuple[str, ...]:
    principal = statement.principal or {}
    found: list[str] = []
    for kind, ids in principal.items():
        if kind == "*" or kind.upper() == "AWS":
            found.extend(ids)
    return tuple(found)


def _services(statement: Statement) -> tuple[str, ...]:
    principal = statement.principal or {}
    return tuple(i for kind, ids in principal.items() if kind.lower() == "service" for i in ids)


def statement_findings(statement: Statement, home_accounts: frozenset[str]) -> list[Finding]:
    """Exposure of one Allow statement of a resource policy."""
    if not statement.allows:
        return []
    where = statement.where
    found: list[Finding] = []
    pins = scope(statement)
    if statement.not_principal is not None:
        found.append(Finding(where, "not-principal",
                             "Allow with NotPrincipal admits every principal not listed, in any "
                             "account"))
    aws_principals = _aws_principals(statement)
    if any(globs.scopes_nothing(p.strip()) for p in aws_principals) and not pins.pinned:
        found.append(Finding(where, "public",
                             "principal '*' with no condition pinning the caller to fixed "
                             "accounts, an organization, ARNs or a network (aws:PrincipalOrgID, "
                             "aws:SourceAccount, aws:SourceArn, aws:SourceVpce...)"))
    if home_accounts:
        named = {account_of(p) for p in aws_principals} | set(pins.accounts)
        foreign = sorted(a for a in named if a and a not in home_accounts)
        if foreign:
            found.append(Finding(where, "cross-account",
                                 f"grants account(s) {', '.join(foreign)} outside this stack's "
                                 f"account(s) {', '.join(sorted(home_accounts))}"))
    services = _services(statement)
    if services and not pins.service_pinned:
        found.append(Finding(where, "service-unscoped",
                             f"service principal(s) {', '.join(services)} may act for any "
                             "account: pin aws:SourceArn or aws:SourceAccount (confused deputy)"))
    return found


def findings(document: Mapping[str, Any] | None,
             home_accounts: Iterable[str] = ()) -> list[Finding]:
    home = frozenset(a for a in home_accounts if a)
    out: list[Finding] = []
    for statement in statements(document):
        out.extend(statement_findings(statement, home))
    return out


def home_accounts_of(document: Mapping[str, Any] | None,
                     extra: Iterable[str] = ()) -> frozenset[str]:
    """The accounts a resource policy's own Resource ARNs live in, plus `extra` (e.g. the
    provider's allowedAccountIds): anything else named in the document is cross-account."""
    found = {a for a in extra if a}
    for statement in statements(document):
        for resource in statement.resources or ():
            account = account_of(resource)
            if account:
                found.add(account)
    return frozenset(found)


# --- trust policies -----------------------------------------------------------------------

COGNITO_IDENTITY = "cognito-identity.amazonaws.com"
GITHUB_OIDC = "token.actions.githubusercontent.com"


def _fixed(condition: Condition) -> bool:
    return condition.positive_match and bool(condition.values) and \
        not any(globs.scopes_nothing(v) for v in condition.values)


def _pinned(statement: Statement, key: str) -> list[Condition]:
    return [c for c in statement.condition(key) if _fixed(c)]


def _provider_of(federated: str) -> str:
    """`token.actions.githubusercontent.com` from an OIDC provider ARN (or a bare host)."""
    text = federated.strip()
    for marker in ("oidc-provider/", "saml-provider/"):
        if marker in text:
            return text.split(marker, 1)[1].lower()
    return text.lower()


def _github_subject_pins_repository(values: Iterable[str]) -> bool:
    """`repo:owner/name:...` (any ref pattern); `repo:*`, `repo:owner*` pin nothing."""
    for value in values:
        match = re.match(r"^repo:([^/*?]+)/([^:*?]+)", value.strip())
        if match is None:
            return False
    return True


def trust_findings(document: Mapping[str, Any] | None,
                   home_accounts: Iterable[str] = ()) -> list[Finding]:
    """Who may assume the role: wildcard or foreign principals without a pin, NotPrincipal,
    and web-identity federation without a pinned audience and subject (Cognito identity
    pools: a pinned `aud` and `amr` = authenticated)."""
    home = frozenset(a for a in home_accounts if a)
    out: list[Finding] = []
    for statement in statements(document):
        if not statement.allows:
            continue
        where = statement.where
        for finding in statement_findings(statement, home):
            if finding.kind != "service-unscoped":  # advisory for trust: see confused deputy
                out.append(finding)
        principal = statement.principal or {}
        for kind, ids in principal.items():
            if kind.lower() != "federated":
                continue
            for federated in ids:
                out.extend(_federated_findings(statement, where, federated))
    return out


def _federated_findings(statement: Statement, where: str, federated: str) -> list[Finding]:
    provider = _provider_of(federated)
    if "saml-provider/" in federated:
        if not _pinned(statement, "saml:aud"):
            return [Finding(where, "public", f"SAML federation {federated} without a fixed "
                                             "saml:aud condition")]
        return []
    if provider == COGNITO_IDENTITY:
        problems = []
        if not _pinned(statement, f"{COGNITO_IDENTITY}:aud"):
            problems.append(f"{COGNITO_IDENTITY}:aud is not pinned to the identity pool id: "
                            "identities of any pool, in any account, could assume the role")
        amr = [c for c in statement.condition(f"{COGNITO_IDENTITY}:amr")
               if not c.negated and not c.if_exists and c.values]
        amr_values = {v.strip().lower() for c in amr for v in c.values}
        if not amr or any(globs.scopes_nothing(v) for v in amr_values) \
                or "unauthenticated" in amr_values:
            problems.append(f"{COGNITO_IDENTITY}:amr must be 'authenticated' (guest identities "
                            "must not get this role)")
        return [Finding(where, "public", p) for p in problems]
    problems = []
    if not _pinned(statement, f"{provider}:aud") and not _pinned(statement, f"{provider}:azp") \
            and not _pinned(statement, f"{provider}:oaud"):
        problems.append(f"web identity {provider} without a fixed {provider}:aud condition")
    subjects = _pinned(statement, f"{provider}:sub")
    if not subjects:
        problems.append(f"web identity {provider} without a fixed {provider}:sub condition: "
                        "any identity of that provider could assume the role")
    elif provider == GITHUB_OIDC and not all(_github_subject_pins_repository(c.values)
                                             for c in subjects):
        problems.append(f"{provider}:sub does not pin a repository (repo:<owner>/<name>:...): "
                        "workflows of other repositories could assume the role")
    return [Finding(where, "public", p) for p in problems]


def service_trust_findings(document: Mapping[str, Any] | None) -> list[Finding]:
    """Service principals in a trust policy without a Source* pin (confused deputy)."""
    out = []
    for statement in statements(document):
        if statement.allows and _services(statement) and not scope(statement).service_pinned:
            out.append(Finding(statement.where, "service-unscoped",
                               f"service principal(s) {', '.join(_services(statement))} without "
                               "a fixed aws:SourceAccount or aws:SourceArn (confused deputy)"))
    return out
