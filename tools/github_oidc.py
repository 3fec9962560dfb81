"""The AWS side of CI/CD: GitHub's OIDC provider and, per stack, the two roles the workflows
assume, each trusted only by this repository *in one GitHub environment*.

    python -m tools.github_oidc --repository acme/iot-multi-region            # every stack
    python -m tools.github_oidc --repository acme/iot-multi-region --stack prod --json

Run once per AWS account by an administrator, before the first push (the workflows cannot
create the roles they need to run). It prints, per stack:

* `ci-<app>-<env>-preview`, trusted by environment `<stack>-preview` (pull-request previews
  and the scheduled drift check; no reviewers): AWS's `ReadOnlyAccess` managed policy.
* `ci-<app>-<env>-deploy`, trusted by environment `<stack>` (`pulumi up` on main; `prod` has
  required reviewers): `PowerUserAccess` plus an inline policy that lets it manage IAM only for
  the stack's own names (`<app>-<env>-*` roles) and pass only those roles. Its own name is
  outside that pattern, so it cannot rewrite its own trust or permissions.

A job that names an environment gets an OIDC token whose `sub` is
`repo:<owner>/<repo>:environment:<name>` ("About security hardening with OpenID Connect",
https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect),
so no branch, fork or other workflow of the repository can assume a role whose environment it
does not run in; environments themselves restrict which branches may deploy (README, "CI/CD").
AWS's side: "Configuring OpenID Connect in Amazon Web Services",
https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/configuring-openid-connect-in-amazon-web-services
and IAM's "Create a role for OpenID Connect federation".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
ROOT = Path(__file__).resolve().parent.parent
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class CiRole:
    name: str
    environment: str  # the GitHub environment whose jobs may assume it
    managed_policies: tuple[str, ...]
    inline_policy: dict[str, Any] | None
    purpose: str


def preview_environment(stack: str) -> str:
    return f"{stack}-preview"


def deploy_environment(stack: str) -> str:
    return stack


def trust_policy(*, account: str, repository: str, environment: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "GitHubActionsInOneEnvironmentOfOneRepository",
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{ISSUER}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{ISSUER}:aud": AUDIENCE,
            f"{ISSUER}:sub": f"repo:{repository}:environment:{environment}"}}}]}


def stack_prefix(stack: str) -> str:
    """`<appName>-<environment>` from the stack file (the program's naming rule)."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return f"{config['iot-multi-region:appName']}-{config['iot-multi-region:environment']}"


def roles(stack: str, account: str) -> tuple[CiRole, CiRole]:
    prefix = stack_prefix(stack)
    own_roles = f"arn:aws:iam::{account}:role/{prefix}-*"
    deploy_iam = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ManageTheStacksOwnRoles", "Effect": "Allow",
         "Action": ["iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                    "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole",
                    "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
                    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                    "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                    "iam:ListInstanceProfilesForRole"],
         "Resource": own_roles},
        {"Sid": "PassOnlyTheStacksOwnRoles", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": own_roles},
        {"Sid": "ServiceLinkedRolesTheServicesCreate", "Effect": "Allow",
         "Action": "iam:CreateServiceLinkedRole", "Resource": "*"},
    ]}
    return (
        CiRole(f"ci-{prefix}-preview", preview_environment(stack),
               ("arn:aws:iam::aws:policy/ReadOnlyAccess",), None,
               "pull-request previews and the scheduled drift check (read only)"),
        CiRole(f"ci-{prefix}-deploy", deploy_environment(stack),
               ("arn:aws:iam::aws:policy/PowerUserAccess",), deploy_iam,
               "`pulumi up` on main (PowerUser + IAM for the stack's own roles only)"),
    )


def plan(repository: str, stacks: list[str], account: str) -> dict[str, Any]:
    return {
        "oidcProvider": {
            "url": f"https://{ISSUER}", "clientIds": [AUDIENCE],
            "create": f"aws iam create-open-id-connect-provider --url https://{ISSUER} "
                      f"--client-id-list {AUDIENCE}"},
        "stacks": {stack: [{
            "role": role.name, "githubEnvironment": role.environment, "purpose": role.purpose,
            "environmentVariable": {"AWS_ROLE_ARN": f"arn:aws:iam::{account}:role/{role.name}"},
            "trustPolicy": trust_policy(account=account, repository=repository,
                                        environment=role.environment),
            "managedPolicies": list(role.managed_policies),
            "inlinePolicy": role.inline_policy,
        } for role in roles(stack, account)] for stack in stacks},
    }


def _commands(result: dict[str, Any]) -> str:
    lines = ["# once per account:", result["oidcProvider"]["create"], ""]
    for stack, entries in result["stacks"].items():
        for entry in entries:
            name = entry["role"]
            lines += [f"# stack {stack}: {entry['purpose']}; GitHub environment "
                      f"'{entry['githubEnvironment']}', variable AWS_ROLE_ARN="
                      f"{entry['environmentVariable']['AWS_ROLE_ARN']}",
                      f"aws iam create-role --role-name {name} --assume-role-policy-document "
                      f"'{json.dumps(entry['trustPolicy'], separators=(',', ':'))}'"]
            lines += [f"aws iam attach-role-policy --role-name {name} --policy-arn {arn}"
                      for arn in entry["managedPolicies"]]
            if entry["inlinePolicy"]:
                lines.append(f"aws iam put-role-policy --role-name {name} --policy-name "
                             f"stack-iam --policy-document "
                             f"'{json.dumps(entry['inlinePolicy'], separators=(',', ':'))}'")
            lines.append("")
    return "\n".join(lines)


ACCOUNT_PLACEHOLDER = "<ACCOUNT_ID>"


def account_id(value: str) -> str:
    """--account: an AWS account id is exactly 12 digits; anything else makes unusable ARNs."""
    if not re.fullmatch(r"[0-9]{12}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an AWS account id: 12 digits "
                                         "(`aws sts get-caller-identity --query Account`)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.github_oidc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", required=True, help="owner/name of the GitHub repository")
    parser.add_argument("--stack", action="append", help="a stack (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--account", type=account_id, default=None,
                        help="the AWS account id, 12 digits (default: a placeholder to fill in)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = parser.parse_args(argv)
    if not _REPOSITORY.match(args.repository):
        print(f"error: --repository {args.repository!r} must be owner/name, e.g. "
              "acme/iot-multi-region", file=sys.stderr)
        return 2
    known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    stacks = args.stack or known
    unknown = [s for s in stacks if s not in known]
    if unknown:
        print(f"error: no stack {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    result = plan(args.repository, stacks, args.account or ACCOUNT_PLACEHOLDER)
    print(json.dumps(result, indent=2) if args.json else _commands(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
