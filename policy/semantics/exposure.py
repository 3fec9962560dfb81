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
ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
VPCE_ID = re.compile(r"^vpce-[0-9a-f]{8,17}$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
# IAM unique ids (role AROA..., user AIDA..., ...) name one principal in one account.
UNIQUE_ID = re.compile(r"^(AROA|AIDA|AGPA|AIPA|ANPA|ANVA|APKA|ASCA)[A-Z0-9]{12,}$")

# Keys whose fixed values pin the caller (principal side) or the calling resource (service
# side) to accounts, an organization, ARNs or a network.
# (aws:ResourceAccount is not among them: in a resource policy it names the resource's own
# account and says nothing about the caller.)
ACCOUNT_KEYS = frozenset({"aws:principalaccount", "aws:sourceaccount", "aws:sourceowner",
                          "kms:calleraccount"})
ORG_KEYS = frozenset({"aws:principalorgid", "aws:sourceorgid"})
ORG_PATH_KEYS = frozenset({"aws:principalorgpaths", "aws:sourceorgpaths"})
ARN_KEYS = frozenset({"aws:principalarn", "aws:sourcearn", "aws:sourcevpcarn"})
NETWORK_KEYS = frozenset({"aws:sourcevpc", "aws:sourcevpce"})
SERVICE_SCOPE_KEYS = frozenset({"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid",
                                "aws:sourceorgpaths", "aws:sourceowner"})
# Condition operators whose values are patterns (`*`, `?`); under the others they are literal.
PATTERN_OPERATORS = frozenset({"stringlike", "arnlike", "arnequals"})
# The most addresses an aws:SourceIp condition may admit and still count as a pin: one /16
# of public IPv4 (or one /48 of IPv6). A /8 such as 3.0.0.0/8 is an AWS EC2 range: anyone
# with an AWS account can send from it.
MAX_PUBLIC_IPV4 = 2 ** 16
MAX_PUBLIC_IPV6 = 2 ** 80
_NON_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"))


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


def fixed_arn(value: str, *, pattern: bool = True) -> tuple[bool, str | None]:
    """(pins something, account) for an ARN-valued condition: the service must be fixed, and
    the account field a fixed account; ARNs without one (S3 buckets: names anyone can
    register) must fix the bucket name, not a prefix of it (`arn:aws:s3:::acme-*` is any
    bucket someone calls acme-...). `pattern=False`: wildcards are literal (StringEquals)."""
    match = ARN.match(value.strip())
    if match is None:
        return False, None
    wild = globs.has_wildcard if pattern else (lambda _text: False)
    if wild(match.group("service")) or not match.group("service"):
        return False, None
    account = match.group("account")
    if ACCOUNT.match(account):
        return True, account
    if account == "":
        first = re.split(r"[/:]", match.group("resource"), maxsplit=1)[0]
        if first and not wild(first):
            return True, None  # e.g. arn:aws:s3:::bucket or arn:aws:s3:::bucket/* (one bucket)
    return False, None


def _fixed_org_path(value: str) -> bool:
    first = value.strip().split("/", 1)[0]
    return bool(ORG_ID.match(first))


def _public_addresses(values: Iterable[str]) -> tuple[int, int] | None:
    """(public IPv4, public IPv6) addresses a list of CIDRs admits; None if one is no CIDR.
    Private and link-local ranges admit nobody: aws:SourceIp carries public addresses only."""
    v4 = v6 = 0
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            return None
        if any(network.version == n.version and network.subnet_of(n)  # type: ignore[arg-type]
               for n in _NON_PUBLIC):
            continue
        if network.version == 4:
            v4 += network.num_addresses
        else:
            v6 += network.num_addresses
    return v4, v6


def _narrow_networks(values: Iterable[str]) -> bool:
    counted = _public_addresses(values)
    return counted is not None and counted[0] <= MAX_PUBLIC_IPV4 and counted[1] <= MAX_PUBLIC_IPV6


def _fixed_userid(value: str, pattern: bool) -> bool:
    """aws:userid `AROAEXAMPLEID:*` (one role, any session) or an account id pins; `AROA*`
    (every role of every account) does not."""
    head, _, _ = value.strip().partition(":")
    if pattern and globs.has_wildcard(head):
        return False
    return bool(UNIQUE_ID.match(head) or ACCOUNT.match(head))


def _literal(value: str, pattern: bool) -> bool:
    return not (pattern and globs.has_wildcard(value))


@dataclass(frozen=True)
class Scope:
    """What the positive conditions of a statement pin."""
    accounts: frozenset[str]      # fixed accounts named (principal or source side)
    pinned: bool                  # some condition pins callers to something fixed
    service_pinned: bool          # a Source* key pins the resource a service acts for
    keys: frozenset[str]


def _pins(condition: Condition) -> tuple[bool, set[str]]:
    """Whether one positive condition admits only fixed callers, judged over all its values
    together, and the accounts it names."""
    values = condition.values
    pattern = condition.base in PATTERN_OPERATORS
    if pattern and any(globs.scopes_nothing(v.strip()) for v in values):
        return False, set()  # one "*" among the values admits everyone
    key = condition.key
    accounts: set[str] = set()
    if key in ACCOUNT_KEYS:
        found = [account_of(v) if _literal(v, pattern) else None for v in values]
        accounts.update(a for a in found if a)
        return all(found), accounts
    if key in ORG_KEYS:
        return all(ORG_ID.match(v.strip()) for v in values), accounts
    if key in ORG_PATH_KEYS:
        return all(_fixed_org_path(v) for v in values), accounts
    if key in ARN_KEYS:
        results = [fixed_arn(v, pattern=pattern) for v in values]
        accounts.update(a for _, a in results if a)
        return all(ok for ok, _ in results), accounts
    if key == "aws:sourcevpce":
        return all(VPCE_ID.match(v.strip()) for v in values), accounts
    if key == "aws:sourcevpc":
        return all(VPC_ID.match(v.strip()) for v in values), accounts
    if key == "aws:sourceip":
        return condition.base == "ipaddress" and _narrow_networks(values), accounts
    if key == "aws:userid":
        return all(_fixed_userid(v, pattern) for v in values), accounts
    return False, accounts


def scope(statement: Statement, guards: Iterable[Condition] = ()) -> Scope:
    """What a statement's conditions pin, together with `guards`: conditions a Deny elsewhere
    in the policy imposes on it (see `deny_guards`)."""
    accounts: set[str] = set()
    pinned = service_pinned = False
    keys: set[str] = set()
    for condition in (*statement.conditions, *guards):
        if not condition.positive_match or not condition.values:
            continue
        key = condition.key
        if _arn_valued_context_key(key, condition.values):
            # The calling service sets these (e.g. CloudWatch Logs' encryption context); a
            # direct caller chooses them freely, so they pin services, never principals.
            if all(fixed_arn(v, pattern=condition.base in PATTERN_OPERATORS)[0]
                   for v in condition.values):
                service_pinned = True
                keys.add(key)
            continue
        fixed, named = _pins(condition)
        accounts.update(named)
        if fixed:
            pinned = True
            keys.add(key)
            if key in SERVICE_SCOPE_KEYS:
                service_pinned = True
    return Scope(frozenset(accounts), pinned, service_pinned, frozenset(keys))


_POSITIVE_OF = {"stringnotequals": "stringequals", "stringnotlike": "stringlike",
                "arnnotequals": "arnequals", "arnnotlike": "arnlike",
                "stringnotequalsignorecase": "stringequalsignorecase", "notipaddress": "ipaddress"}


def everyone(principal: Mapping[str, tuple[str, ...]] | None) -> bool:
    """`"*"` or `{"AWS": "*"}`: every principal of every account."""
    if principal is None:
        return False
    return any((kind == "*" or kind.upper() == "AWS") and any(globs.scopes_nothing(i.strip()) for i in ids)
               for kind, ids in principal.items())


def _covers_all(outer: tuple[str, ...] | None, inner: tuple[str, ...] | None,
                ignore_case: bool) -> bool:
    if outer is None:
        return False
    if inner is None:
        return any(globs.scopes_nothing(o.strip()) for o in outer)
    return all(any(globs.covers(o.strip(), i.strip(), ignore_case=ignore_case) for o in outer)
               for i in inner)


def deny_guards(document: Mapping[str, Any] | None, allow: Statement) -> list[Condition]:
    """Conditions Deny statements of the same policy impose on an Allow: a Deny for every
    principal, covering the Allow's actions and resources, whose only condition is a negated
    pin (`StringNotEquals aws:PrincipalOrgID o-...`), admits through the Allow only the
    callers that satisfy the positive form of that condition."""
    guards = []
    for deny in statements(document):
        if not deny.denies or deny.not_principal is not None or deny.not_actions is not None \
                or deny.not_resources is not None or not everyone(deny.principal):
            continue
        if len(deny.conditions) != 1:
            continue  # several conditions narrow the Deny (all must hold)
        condition = deny.conditions[0]
        positive = _POSITIVE_OF.get(condition.base)
        if positive is None or condition.set_qualifier == "forallvalues":
            continue
        if allow.not_actions is not None or not _covers_all(deny.actions, allow.actions, True):
            continue
        resources = allow.resources if allow.not_resources is None else None
        if not _covers_all(deny.resources if deny.resources is not None else ("*",),
                           resources, False):
            continue
        guards.append(Condition(positive, positive, "", False, condition.key, condition.values))
    return guards


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


def statement_findings(statement: Statement, home_accounts: frozenset[str],
                       guards: Iterable[Condition] = ()) -> list[Finding]:
    """Exposure of one Allow statement of a resource policy (`guards`: what Deny statements
    of the same policy add to its conditions)."""
    if not statement.allows:
        return []
    where = statement.where
    found: list[Finding] = []
    pins = scope(statement, guards)
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
        out.extend(statement_findings(statement, home, deny_guards(document, statement)))
    return out


def home_accounts_of(document: Mapping[str, Any] | None,
                     declared: Iterable[str] = ()) -> frozenset[str]:
    """The stack's home accounts: those its provider declares (aws:allowedAccountIds); only
    when it declares none (aws-home-account-declared then fails the stack), the accounts the
    policy's own Resource ARNs live in. A declared home is never widened by the document: a
    Resource ARN in another account does not make that account home."""
    found = {a for a in declared if a}
    if found:
        return frozenset(found)
    for statement in statements(document):
        for resource in statement.resources or ():
            account = account_of(resource)
            if account:
                found.add(account)
    return frozenset(found)


# --- trust policies -----------------------------------------------------------------------

COGNITO_IDENTITY = "cognito-identity.amazonaws.com"
GITHUB_OIDC = "token.actions.githubusercontent.com"


def _fixed(condition: Condition, *, exact: bool = False) -> bool:
    """A positive condition whose values are not `*`; `exact`: no pattern at all (an
    audience is one client or pool, `eu-west-1:*` is every pool of the region)."""
    if not condition.positive_match or not condition.values:
        return False
    pattern = condition.base in PATTERN_OPERATORS
    if pattern and any(globs.scopes_nothing(v.strip()) for v in condition.values):
        return False
    return not (exact and pattern and any(globs.has_wildcard(v) for v in condition.values))


def _pinned(statement: Statement, key: str, *, exact: bool = False) -> list[Condition]:
    return [c for c in statement.condition(key) if _fixed(c, exact=exact)]


def _admits(condition: Condition, value: str) -> bool:
    """Whether the condition (positive) lets a request whose key is `value` through."""
    ignore_case = "ignorecase" in condition.base
    if condition.base in PATTERN_OPERATORS:
        return any(globs.matches(v.strip(), value, ignore_case=ignore_case) for v in condition.values)
    return any((v.strip().lower() == value.lower()) if ignore_case else v.strip() == value
               for v in condition.values)


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
        for finding in statement_findings(statement, home, deny_guards(document, statement)):
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
        if not _pinned(statement, "saml:aud", exact=True):
            return [Finding(where, "public", f"SAML federation {federated} without a fixed "
                                             "saml:aud condition")]
        return []
    if provider == COGNITO_IDENTITY:
        problems = []
        if not _pinned(statement, f"{COGNITO_IDENTITY}:aud", exact=True):
            problems.append(f"{COGNITO_IDENTITY}:aud is not pinned to one identity pool id: "
                            "identities of any pool, in any account, could assume the role")
        # Judged by what the condition admits: a guest identity's amr is "unauthenticated",
        # which `*authenticated` (or `*`) matches too.
        amr = [c for c in statement.condition(f"{COGNITO_IDENTITY}:amr")
               if c.positive_match and c.values]
        if not amr or any(_admits(c, "unauthenticated") for c in amr):
            problems.append(f"{COGNITO_IDENTITY}:amr must be 'authenticated' (guest identities "
                            "must not get this role)")
        return [Finding(where, "public", p) for p in problems]
    problems = []
    if not any(_pinned(statement, f"{provider}:{claim}", exact=True) for claim in ("aud", "azp", "oaud")):
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
