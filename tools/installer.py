"""Installer CLI for fleet provisioning by trusted user (see components/fleet_provisioning).

Installers:

    python -m tools.installer claim --stack prod --region eu-west-1 \\
        --username alice --serial SN-0001 --out-dir ./handover

(the user pool, app client, identity pool and template come from the stack outputs -
`pulumi stack output --json`, or `--outputs FILE` holding them; `--user-pool-id`,
`--client-id`, `--identity-pool-id` and `--template-name` give them explicitly)

signs in with SRP (the password never leaves this machine) and TOTP MFA — on the first
sign-in it asks for a new password and enrols an authenticator app — exchanges the ID token
at the identity pool for credentials that may only create claims for that template, calls
CreateProvisioningClaim and writes the claim certificate and private key (mode 0600) for
hand-over to the device, with the expiry (five minutes) shown.

Administrators (their own AWS credentials, e.g. an SSO profile):

    python -m tools.installer admin create  --stack S --region R --username alice --email a@example.com
    python -m tools.installer admin disable --stack S --region R --username alice
    python -m tools.installer admin list    --stack S --region R
    python -m tools.installer admin allow-serial   --stack S --region R --serial SN-0001 [--reset]
    python -m tools.installer admin disable-serial --stack S --region R --serial SN-0001

(`--user-pool-id P` and `--table T` instead of `--stack S` give them explicitly.)
`--table` is the provisioning table (`<app>-<env>-cvm-provisioning`); allow-list entries are
`fleet#<serial>` items with `kind = FLEET_SERIAL` (the CVM's records there are keyed by device
uid and never touched). Every installer is a member of the `installers` group: only its role
may create claims.

Exit status: 0 done; 1 AWS refused or could not be reached (one line naming the fix); 2 the
command cannot go on as given (a bad flag or serial, an --out-dir that cannot be written, a
prompt without an answer) - before signing in nothing was claimed; a hand-over that fails
after the claim says so (the unused claim expires by itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import quote

# The allow-list entry's contract: standard library only, so the CLI starts without Pulumi.
from lambdas.contracts import fleet_allow_list as allow_list
from tools.files import writable_directory

INSTALLERS_GROUP = "installers"
TOTP_ISSUER = "IoT installers"


class SignInError(Exception):
    """Sign-in cannot go on; the message says why (never a secret)."""


class HandOverError(Exception):
    """The claim's files cannot be written to --out-dir; the message names the path and says
    whether a claim was made."""


def _why(err: OSError) -> str:
    return f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")


class Prompter(Protocol):
    def password(self) -> str: ...

    def new_password(self) -> str: ...

    def totp_code(self) -> str: ...

    def show_totp_setup(self, secret: str, uri: str) -> None: ...


class ConsolePrompter:
    """Asks on the terminal; secrets are read without echo and never printed back."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out

    def password(self) -> str:
        return getpass.getpass("Password: ")

    def new_password(self) -> str:
        first = getpass.getpass("First sign-in: choose a new password: ")
        if first != getpass.getpass("Repeat the new password: "):
            raise SignInError("the two new passwords differ")
        return first

    def totp_code(self) -> str:
        return input("6-digit code from your authenticator app: ").strip()

    def show_totp_setup(self, secret: str, uri: str) -> None:
        print("MFA is required. Add this account to your authenticator app:\n"
              f"  secret: {secret}\n  or URI: {uri}", file=self.out)


@dataclass(frozen=True)
class Tokens:
    id_token: str
    access_token: str
    refresh_token: str | None


def totp_uri(secret: str, username: str) -> str:
    label = quote(f"{TOTP_ISSUER}:{username}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(TOTP_ISSUER)}"


def sign_in(idp: Any, *, user_pool_id: str, client_id: str, username: str,
            prompter: Prompter) -> Tokens:
    """USER_SRP_AUTH (pycognito's SRP maths), then every challenge Cognito sets: a new
    password on first sign-in, TOTP enrolment if none yet, the TOTP code."""
    from pycognito.aws_srp import AWSSRP

    srp = AWSSRP(username=username, password=prompter.password(), pool_id=user_pool_id,
                 client_id=client_id, client=idp)
    auth_parameters = srp.get_auth_params()
    response = idp.initiate_auth(AuthFlow="USER_SRP_AUTH", AuthParameters=auth_parameters,
                                 ClientId=client_id)
    if response.get("ChallengeName") != "PASSWORD_VERIFIER":
        raise SignInError(f"unexpected challenge {response.get('ChallengeName')!r}")
    # Cognito's internal user name (the sign-in name may be an alias); later challenges
    # are answered for it.
    user = response["ChallengeParameters"].get("USERNAME", username)
    response = idp.respond_to_auth_challenge(
        ClientId=client_id, ChallengeName="PASSWORD_VERIFIER",
        ChallengeResponses=srp.process_challenge(response["ChallengeParameters"],
                                                 auth_parameters))
    for _ in range(4):  # at most: new password, MFA setup, MFA code
        challenge = response.get("ChallengeName")
        if challenge is None:
            result = response["AuthenticationResult"]
            return Tokens(id_token=result["IdToken"], access_token=result["AccessToken"],
                          refresh_token=result.get("RefreshToken"))
        session = response["Session"]
        if challenge == "NEW_PASSWORD_REQUIRED":
            response = idp.respond_to_auth_challenge(
                ClientId=client_id, ChallengeName=challenge, Session=session,
                ChallengeResponses={"USERNAME": user, "NEW_PASSWORD": prompter.new_password()})
        elif challenge == "MFA_SETUP":
            association = idp.associate_software_token(Session=session)
            prompter.show_totp_setup(association["SecretCode"],
                                     totp_uri(association["SecretCode"], username))
            verified = idp.verify_software_token(Session=association["Session"],
                                                 UserCode=prompter.totp_code(),
                                                 FriendlyDeviceName="installer")
            if verified.get("Status") != "SUCCESS":
                raise SignInError("the authenticator code was not accepted")
            response = idp.respond_to_auth_challenge(
                ClientId=client_id, ChallengeName="MFA_SETUP", Session=verified["Session"],
                ChallengeResponses={"USERNAME": user})
        elif challenge == "SOFTWARE_TOKEN_MFA":
            response = idp.respond_to_auth_challenge(
                ClientId=client_id, ChallengeName=challenge, Session=session,
                ChallengeResponses={"USERNAME": user,
                                    "SOFTWARE_TOKEN_MFA_CODE": prompter.totp_code()})
        else:
            raise SignInError(f"challenge {challenge} is not supported by this tool")
    raise SignInError("too many challenges")


def provider_name(region: str, user_pool_id: str) -> str:
    return f"cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def identity_credentials(identity: Any, *, region: str, user_pool_id: str,
                         identity_pool_id: str, id_token: str) -> dict[str, Any]:
    """Enhanced (simplified) flow: the identity pool picks the installers' role."""
    logins = {provider_name(region, user_pool_id): id_token}
    identity_id = identity.get_id(IdentityPoolId=identity_pool_id, Logins=logins)["IdentityId"]
    return dict(identity.get_credentials_for_identity(IdentityId=identity_id,
                                                      Logins=logins)["Credentials"])


@dataclass(frozen=True)
class ProvisioningClaim:
    certificate_id: str
    certificate_pem: str
    private_key: str
    expiration: dt.datetime


def create_claim(iot: Any, template_name: str) -> ProvisioningClaim:
    response = iot.create_provisioning_claim(templateName=template_name)
    expiration = response["expiration"]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=dt.timezone.utc)
    return ProvisioningClaim(certificate_id=response["certificateId"],
                             certificate_pem=response["certificatePem"],
                             private_key=response["keyPair"]["PrivateKey"],
                             expiration=expiration)


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start (never readable by others, even briefly);
    refuse to overwrite an earlier hand-over."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)


def claim_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """The claim's two files in `out_dir`, named after `name` (a serial or the claim id's
    start): a name that is not a valid serial, or a path that would leave `out_dir`, is
    refused (the private key never lands elsewhere)."""
    allow_list.checked_serial(name)  # letters, digits, ':', '_', '-' only: no separators
    root = out_dir.resolve()
    certificate = root / f"{name}.claim.pem.crt"
    key = root / f"{name}.claim.pem.key"
    if any(path.resolve().parent != root for path in (certificate, key)):
        raise ValueError(f"--serial {name!r} would write outside --out-dir {out_dir}")
    return certificate, key


def write_claim(claim: ProvisioningClaim, out_dir: Path, name: str) -> tuple[Path, Path]:
    """The claim's two files (`claim_paths`), refused before anything is written."""
    certificate, key = claim_paths(out_dir, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_new(certificate, claim.certificate_pem, 0o644)
    _write_new(key, claim.private_key, 0o600)
    return certificate, key


def describe_expiry(expiration: dt.datetime, now: dt.datetime) -> str:
    left = int((expiration - now).total_seconds())
    when = expiration.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if left <= 0:
        return f"expired at {when}: request a new claim"
    return f"expires at {when} (in {left // 60} min {left % 60:02d} s)"


# --- admin ------------------------------------------------------------------------------

def create_installer(idp: Any, *, user_pool_id: str, username: str, email: str) -> str:
    """Cognito e-mails a temporary password; the installer sets a new one and enrols TOTP
    on the first sign-in. Returns the user's status."""
    user = idp.admin_create_user(
        UserPoolId=user_pool_id, Username=username, DesiredDeliveryMediums=["EMAIL"],
        UserAttributes=[{"Name": "email", "Value": email},
                        {"Name": "email_verified", "Value": "true"}])["User"]
    idp.admin_add_user_to_group(UserPoolId=user_pool_id, Username=username,
                                GroupName=INSTALLERS_GROUP)
    return str(user["UserStatus"])


def disable_installer(idp: Any, *, user_pool_id: str, username: str) -> None:
    """No new sign-in, and the refresh tokens already issued stop working."""
    idp.admin_disable_user(UserPoolId=user_pool_id, Username=username)
    idp.admin_user_global_sign_out(UserPoolId=user_pool_id, Username=username)


def list_installers(idp: Any, *, user_pool_id: str) -> list[dict[str, Any]]:
    installers: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"UserPoolId": user_pool_id, "GroupName": INSTALLERS_GROUP}
    while True:
        page = idp.list_users_in_group(**kwargs)
        for user in page.get("Users", []):
            email = next((a["Value"] for a in user.get("Attributes", [])
                          if a["Name"] == "email"), "")
            installers.append({"username": user["Username"], "email": email,
                               "enabled": bool(user.get("Enabled")),
                               "status": user.get("UserStatus", "")})
        if not page.get("NextToken"):
            return installers
        kwargs["NextToken"] = page["NextToken"]


def allow_serial(table: Any, serial: str, *, now: dt.datetime, reset: bool = False,
                 claim_prefix: str = allow_list.DEFAULT_CLAIM_PREFIX) -> None:
    """Create (or re-enable) the allow-list entry, with the contract's writes (the web app's
    allow-list view makes the same ones). `reset` makes a PROVISIONED entry provisionable
    again (e.g. a device that was decommissioned); never a CLAIMED one. A serial the hook
    would never allow (the contract's serial rule, with the stack's claim prefix) is refused
    before any write (SerialError, a ValueError naming the rule)."""
    from botocore.exceptions import ClientError

    allow_list.checked_serial(serial, claim_prefix)
    stamp = allow_list.timestamp(now)
    try:
        table.put_item(**allow_list.new_entry(serial, stamp))
        return
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    table.update_item(**allow_list.update("enableAndReset" if reset else "enable", serial, stamp))


def disable_serial(table: Any, serial: str, *, now: dt.datetime | None = None) -> None:
    stamp = allow_list.timestamp(now or dt.datetime.now(dt.timezone.utc))
    table.update_item(**allow_list.update("disable", serial, stamp))


# --- command line -----------------------------------------------------------------------

def run_claim(args: argparse.Namespace, *, idp: Any, identity: Any,
              iot_with: Callable[[dict[str, Any]], Any], prompter: Prompter,
              out: TextIO, now: Callable[[], dt.datetime]) -> int:
    if args.serial is not None:  # checked before anything happens (a typo costs no claim)
        allow_list.checked_serial(args.serial, args.claim_prefix)
    try:  # created and written to now: a claim whose key cannot be saved is a claim lost
        writable_directory(Path(args.out_dir))
    except OSError as err:
        raise HandOverError(f"--out-dir {args.out_dir} cannot be written: {_why(err)}; pass a "
                            "directory you can write to; nothing was claimed") from None
    if args.serial is not None:
        taken = [p for p in claim_paths(Path(args.out_dir), args.serial) if p.exists()]
        if taken:  # the files are created exclusively: found after the claim, it would be lost
            raise FileExistsError(f"{taken[0]} exists (an earlier hand-over of --serial {args.serial}): "
                             "move it away or pass another --out-dir; nothing was claimed")
    tokens = sign_in(idp, user_pool_id=args.user_pool_id, client_id=args.client_id,
                     username=args.username, prompter=prompter)
    credentials = identity_credentials(identity, region=args.region,
                                       user_pool_id=args.user_pool_id,
                                       identity_pool_id=args.identity_pool_id,
                                       id_token=tokens.id_token)
    claim = create_claim(iot_with(credentials), args.template_name)
    try:
        certificate, key = write_claim(claim, Path(args.out_dir),
                                       args.serial or claim.certificate_id[:12])
    except OSError as err:
        raise HandOverError(
            f"could not write the claim to --out-dir {args.out_dir}: {_why(err)}; claim "
            f"{claim.certificate_id} cannot be used without its key (it expires by itself): "
            "fix --out-dir and run claim again") from None
    print(f"claim certificate: {certificate}\nprivate key:       {key}\n"
          f"claim {describe_expiry(claim.expiration, now())}; hand both to the device now",
          file=out)
    return 0


# Flag -> (stack-output key, where): what the tool can read from the stack outputs
# (tools/stack_outputs.py) instead of asking for it. "fleet" is the capability's outputs of
# the region, "region" the region's own outputs.
FROM_OUTPUTS: dict[str, dict[str, tuple[str, str]]] = {
    "claim": {"--user-pool-id": ("userPoolId", "fleet"),
              "--client-id": ("userPoolClientId", "fleet"),
              "--identity-pool-id": ("identityPoolId", "fleet"),
              "--template-name": ("templateName", "fleet")},
    "admin": {"--user-pool-id": ("userPoolId", "fleet")},
    "serials": {"--table": ("provisioning", "tables")},
}


def stack_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--stack", help="read the ids and names below from this stack's outputs")
    sub.add_argument("--outputs", type=Path, default=None,
                     help="the stack outputs as JSON (`pulumi stack output --json`); default: "
                          "ask the Pulumi CLI")


def fill_from_outputs(args: argparse.Namespace) -> None:
    """Every id or name not given on the command line, from the stack outputs; a ValueError
    names the flag and the fix when neither is there."""
    from tools import stack_outputs

    group = "claim" if args.command == "claim" else (
        "serials" if args.action in ("allow-serial", "disable-serial") else "admin")
    missing = {flag: spec for flag, spec in FROM_OUTPUTS[group].items()
               if getattr(args, flag[2:].replace("-", "_")) is None}
    if not missing:
        return
    if not args.stack:
        raise ValueError(f"give {', '.join(missing)}, or --stack to read them from the "
                         "stack outputs")
    outputs = stack_outputs.load(args.stack, outputs_file=args.outputs)
    for flag, (key, where) in missing.items():
        if where == "fleet":
            source = stack_outputs.capability(outputs, args.region, "fleetProvisioning")
        else:
            source = stack_outputs.region(outputs, args.region).get("tableNames", {})
        if key not in source:
            raise ValueError(f"the stack outputs have no {key} for {args.region}; give {flag}")
        setattr(args, flag[2:].replace("-", "_"), str(source[key]))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m tools.installer", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    claim = commands.add_parser("claim", help="sign in and create a provisioning claim")
    for flag in ("--region", "--username"):
        claim.add_argument(flag, required=True)
    for flag in FROM_OUTPUTS["claim"]:
        claim.add_argument(flag, help="default: from the stack outputs (--stack)")
    stack_arguments(claim)
    claim.add_argument("--serial", help="names the files after the device")
    claim.add_argument("--out-dir", default=".")
    claim_prefix_argument(claim)
    admin = commands.add_parser("admin", help="manage installers and allowed serials")
    actions = admin.add_subparsers(dest="action", required=True)
    for action in ("create", "disable", "list"):
        sub = actions.add_parser(action)
        sub.add_argument("--region", required=True)
        sub.add_argument("--user-pool-id", help="default: from the stack outputs (--stack)")
        stack_arguments(sub)
        if action != "list":
            sub.add_argument("--username", required=True)
        if action == "create":
            sub.add_argument("--email", required=True)
    for action in ("allow-serial", "disable-serial"):
        sub = actions.add_parser(action)
        sub.add_argument("--region", required=True)
        sub.add_argument("--table", help="the provisioning table; default: from the stack "
                                         "outputs (--stack)")
        stack_arguments(sub)
        sub.add_argument("--serial", required=True)
        if action == "allow-serial":
            sub.add_argument("--reset", action="store_true",
                             help="make a PROVISIONED serial provisionable again")
            claim_prefix_argument(sub)
    return top


def _claim_prefix(value: str) -> str:
    problem = allow_list.claim_prefix_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def claim_prefix_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--claim-prefix", type=_claim_prefix,
                     default=allow_list.DEFAULT_CLAIM_PREFIX,
                     help="the stack's fleetProvisioning claimClientIdPrefix (default: "
                          f"{allow_list.DEFAULT_CLAIM_PREFIX}); serials may not begin with it")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    import boto3

    from tools.aws_errors import AWS_ERRORS, describe

    args = parser().parse_args(argv)
    now = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731
    try:
        fill_from_outputs(args)
        if args.command == "claim":
            def iot_with(credentials: dict[str, Any]) -> Any:
                return boto3.client("iot", region_name=args.region,
                                    aws_access_key_id=credentials["AccessKeyId"],
                                    aws_secret_access_key=credentials["SecretKey"],
                                    aws_session_token=credentials["SessionToken"])
            return run_claim(args, idp=boto3.client("cognito-idp", region_name=args.region),
                             identity=boto3.client("cognito-identity", region_name=args.region),
                             iot_with=iot_with, prompter=ConsolePrompter(), out=out, now=now)
        if args.action in ("allow-serial", "disable-serial"):
            table = boto3.resource("dynamodb", region_name=args.region).Table(args.table)
            if args.action == "allow-serial":
                allow_serial(table, args.serial, now=now(), reset=args.reset,
                             claim_prefix=args.claim_prefix)
            else:
                disable_serial(table, args.serial)
            print(f"{args.action}: {args.serial}", file=out)
            return 0
        idp = boto3.client("cognito-idp", region_name=args.region)
        if args.action == "create":
            status = create_installer(idp, user_pool_id=args.user_pool_id,
                                      username=args.username, email=args.email)
            print(f"created {args.username} ({status}); Cognito e-mailed a temporary password",
                  file=out)
        elif args.action == "disable":
            disable_installer(idp, user_pool_id=args.user_pool_id, username=args.username)
            print(f"disabled {args.username} and signed them out everywhere", file=out)
        else:
            for user in list_installers(idp, user_pool_id=args.user_pool_id):
                state = "enabled" if user["enabled"] else "DISABLED"
                print(f"{user['username']}\t{user['email']}\t{state}\t{user['status']}",
                      file=out)
        return 0
    except (SignInError, HandOverError, ValueError, FileExistsError) as err:  # OutputsError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except AWS_ERRORS as err:  # refused, or no credentials, region or network: one line
        print(f"error: {describe(err)}", file=sys.stderr)
        return 1
    except OSError as err:  # a file the command needs (e.g. --outputs): one line, its path
        print(f"error: {_why(err)}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt) as stopped:  # a prompt got no answer: nothing was claimed
        why = "no answer to a prompt (input closed)" if isinstance(stopped, EOFError) else "interrupted"
        print(f"\nerror: {why}; `claim` asks for your password and MFA code: run it in a terminal",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
