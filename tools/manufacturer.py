"""The manufacturer's and operator's tool for the certificate vending machine (CVM).

    python -m tools.manufacturer --stack dev add-batch B2026-01 [--salt-file salt.txt]
    python -m tools.manufacturer --stack dev import B2026-01 devices.csv [--dry-run]
    python -m tools.manufacturer --stack dev rotate-salt B2026-01 [--rekey-unregistered]
    python -m tools.manufacturer --stack dev disable UID... | enable UID... | --batch B
    python -m tools.manufacturer --stack dev revoke UID
    python -m tools.manufacturer --stack dev reissue UID

Salts live in one Secrets Manager secret per region (`<app>-<env>/cvm/batch-salts`, the
regional CMK): every salt command reads all regions, merges them (refusing a conflict), applies
the change and writes every region that differs, so a re-run after a partial failure repairs
it. A salt file (`--salt-file`, one line) serves a factory that flashes the salt into firmware.
Salts and tokens are never printed.

`import` reads a CSV with a `device_uid` column and optional `device_uid_2` and
`device_token` columns (a token read back from a device is checked against the batch salt).
Every row is validated first; any bad row is reported with its line number and nothing is
written. Writes are conditional (`attribute_not_exists`), so a re-run skips what is there.

Exit status: 0 done, 1 conflicts or AWS errors (see the report), 2 invalid input.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from components.naming import INVENTORY_TABLE, PROVISIONING_TABLE, StackNames
from lambdas.contracts import cvm_device, inventory
from lambdas.contracts.cvm_device import Attr, RecordError, State
from lambdas.contracts.inventory import ContractViolation, InventoryItem, Status
from lambdas.contracts.things import device_thing_name, device_uid_problem
from lambdas.cvm_registration.logic.tokens import device_token
from lambdas.cvm_registration.models.requests import TOKEN_PATTERN
from tools.aws_errors import AWS_ERRORS, describe
from tools.harness import load_program_stack

PROJECT_DIR = Path(__file__).resolve().parent.parent
CSV_COLUMNS = ("device_uid", "device_uid_2", "device_token")
_TOKEN = re.compile(TOKEN_PATTERN)


class ToolError(Exception):
    """A problem the operator must fix; `status` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Stack:
    """The stack's names, from the one naming module the program uses (components/naming.py)."""

    names: StackNames
    regions: tuple[str, ...]
    primary_region: str
    thing_name_prefix: str = ""  # the stack's cvm.thingNamePrefix: the function's thing names

    @property
    def provisioning_table(self) -> str:
        return self.names.table(PROVISIONING_TABLE)

    @property
    def inventory_table(self) -> str:
        return self.names.table(INVENTORY_TABLE)

    @property
    def secret_name(self) -> str:
        return self.names.salts_secret

    @classmethod
    def load(cls, name: str, project_dir: Path = PROJECT_DIR) -> Stack:
        config = load_program_stack(project_dir, name).config
        key = "iot-multi-region:"
        return cls(names=StackNames(str(config[key + "appName"]), str(config[key + "environment"])),
                   regions=tuple(config[key + "regions"]),
                   primary_region=str(config[key + "primaryRegion"]),
                   thing_name_prefix=str((config.get(key + "cvm") or {}).get(
                       "thingNamePrefix", "")))


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, out: TextIO, label: str, width: int = 30) -> None:
        self.total, self.out, self.label, self.width, self.done = total, out, label, width, 0

    def step(self) -> None:
        self.done += 1
        filled = self.width * self.done // max(self.total, 1)
        self.out.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                       f"{self.done}/{self.total}")
        if self.done == self.total:
            self.out.write("\n")
        self.out.flush()


# --- salts -----------------------------------------------------------------------------------

Salts = dict[str, dict[str, Any]]  # batch -> {"current": n, "salts": {"n": salt}}


def read_salt_file(path: Path) -> str:
    try:
        salt = path.read_text().strip()
    except OSError as error:
        raise ToolError(f"{path}: cannot read the salt file ({error.strerror})", 2) from None
    except UnicodeDecodeError:
        raise ToolError(f"{path}: the salt file is not UTF-8 text; write the salt on one line",
                        2) from None
    if not salt or "\n" in salt:
        raise ToolError(f"{path}: the salt file must hold the salt on one line", 2)
    return salt


def merge_salts(documents: Iterable[Salts]) -> Salts:
    """The union of the regions' salts; the same batch/version with two salts is a conflict."""
    merged: Salts = {}
    for document in documents:
        for batch, entry in document.items():
            target = merged.setdefault(batch, {"current": entry.get("current", 1), "salts": {}})
            target["current"] = max(int(target["current"]), int(entry.get("current", 1)))
            for version, salt in entry.get("salts", {}).items():
                if target["salts"].setdefault(str(version), salt) != salt:
                    raise ToolError(f"batch {batch} version {version} has different salts in "
                                    "different regions; fix the secrets by hand")
    return merged


class SaltStore:
    """The salts secret of every region of the stack."""

    def __init__(self, clients: dict[str, Any], secret_name: str) -> None:
        self._clients = clients
        self._name = secret_name

    def read(self, region: str) -> Salts:
        try:
            text = self._clients[region].get_secret_value(SecretId=self._name)["SecretString"]
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":  # declared, no value yet
                return {}
            raise ToolError(f"{region}: cannot read {self._name}: {_code(error)}") from None
        batches = json.loads(text).get("batches", {})
        return batches if isinstance(batches, dict) else {}

    def update(self, change: Callable[[Salts], None]) -> list[str]:
        """Apply `change` to the merged salts and write every region that differs; returns
        the regions written."""
        current = {region: self.read(region) for region in self._clients}
        merged = merge_salts(current.values())
        change(merged)
        text = json.dumps({"batches": merged}, sort_keys=True)
        written = []
        for region, document in current.items():
            if document != merged:
                self._clients[region].put_secret_value(SecretId=self._name, SecretString=text)
                written.append(region)
        return written

    def merged(self) -> Salts:
        return merge_salts(self.read(region) for region in self._clients)


# --- CSV import ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceRow:
    line: int
    uid: str
    uid2: str | None


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)


def validate_csv(stream: TextIO, salt: str | None, thing_name_prefix: str = ""
                 ) -> tuple[list[DeviceRow], list[str]]:
    """Every row checked before anything is written: (rows, problems with line numbers).
    A UID is checked with the function's own rule (lambdas/contracts/things.py), prefix
    included: a device imported here is never refused by the function for its UID."""
    reader = csv.DictReader(stream)
    header = [h.strip() for h in (reader.fieldnames or [])]
    problems: list[str] = []
    if "device_uid" not in header:
        return [], ["line 1: the header must name a device_uid column "
                    f"(columns: {', '.join(CSV_COLUMNS)})"]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        return [], [f"line 1: unknown column(s) {', '.join(unknown)}; "
                    f"known: {', '.join(CSV_COLUMNS)}"]
    reader.fieldnames = header
    rows: list[DeviceRow] = []
    first_line: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            problems.append(f"line {line}: more fields than columns")
            continue
        uid = (raw.get("device_uid") or "").strip()
        uid2 = (raw.get("device_uid_2") or "").strip() or None
        presented = (raw.get("device_token") or "").strip()
        uid_problem = device_uid_problem(uid, thing_name_prefix)
        if uid_problem is not None:
            problems.append(f"line {line}: device_uid {uid[:40]!r} {uid_problem}")
            continue
        if uid2 is not None and (uid2_problem := cvm_device.uid2_problem(uid2)):
            problems.append(f"line {line}: {uid2_problem}")
            continue
        if uid in first_line:
            problems.append(f"line {line}: device_uid {uid} repeats line {first_line[uid]}")
            continue
        first_line[uid] = line
        if presented:
            if not _TOKEN.match(presented):
                problems.append(f"line {line}: device_token is not 64 hex digits")
                continue
            if salt is None:
                problems.append(f"line {line}: device_token given but no salt to check it")
                continue
            if device_token(salt, uid, uid2) != presented.lower():
                problems.append(f"line {line}: device_token does not match the batch salt "
                                "(firmware built with another salt?)")
                continue
        rows.append(DeviceRow(line, uid, uid2))
    return rows, problems


# --- the tool ---------------------------------------------------------------------------------

class Manufacturer:
    def __init__(self, stack: Stack, region: str, session: Any, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> None:
        if region not in stack.regions:
            raise ToolError(f"{region} is not a region of the stack ({', '.join(stack.regions)})",
                            2)
        self.stack, self.region, self.out, self.err = stack, region, out, err
        self.ddb = session.client("dynamodb", region_name=region)
        self.iot = session.client("iot", region_name=region)
        self.salts = SaltStore({r: session.client("secretsmanager", region_name=r)
                                for r in stack.regions}, stack.secret_name)

    # --- batches and salts ---------------------------------------------------------------
    def add_batch(self, batch: str, salt_file: Path | None) -> None:
        check_batch(batch)
        salt = read_salt_file(salt_file) if salt_file else secrets.token_hex(32)

        def add(salts: Salts) -> None:
            existing = salts.get(batch)
            if existing is None:
                salts[batch] = {"current": 1, "salts": {"1": salt}}
            elif salt_file is None or salt not in existing["salts"].values():
                raise ToolError(f"batch {batch} exists; use rotate-salt to change its salt")

        written = self.salts.update(add)
        self.out.write(f"batch {batch}: salt version 1 in {len(self.stack.regions)} region(s) "
                       f"(written: {', '.join(written) or 'none, already there'})\n")

    def rotate_salt(self, batch: str, salt_file: Path | None, rekey_unregistered: bool) -> None:
        check_batch(batch)
        salt = read_salt_file(salt_file) if salt_file else secrets.token_hex(32)
        versions: dict[str, int] = {}

        def rotate(salts: Salts) -> None:
            entry = salts.get(batch)
            if entry is None:
                raise ToolError(f"batch {batch} does not exist; add-batch first")
            versions["old"] = int(entry["current"])
            versions["new"] = max(int(v) for v in entry["salts"]) + 1
            entry["salts"][str(versions["new"])] = salt
            entry["current"] = versions["new"]

        self.salts.update(rotate)
        self.out.write(f"batch {batch}: salt version {versions['new']} is current; devices "
                       f"imported from now on use it\n")
        if rekey_unregistered:
            moved = 0
            for item in self._records(batch):
                if cvm_device.value(item, Attr.STATE) != State.UNREGISTERED:
                    continue
                try:
                    self.ddb.update_item(
                        TableName=self.stack.provisioning_table, Key={Attr.DEVICE_UID: item[Attr.DEVICE_UID]},
                        **cvm_device.expressions("SET #version = :new, #updatedAt = :at", "#state = :u AND #version = :old"),
                        ExpressionAttributeValues={
                            ":new": {"N": str(versions["new"])}, ":old": item[Attr.SALT_VERSION],
                            ":u": {"S": State.UNREGISTERED}, ":at": {"S": now_iso()}})
                    moved += 1
                except ClientError as error:
                    if _code(error) != "ConditionalCheckFailedException":
                        raise
            self.out.write(f"batch {batch}: {moved} unregistered device(s) now need the new "
                           "salt (re-flash them)\n")

    # --- devices -------------------------------------------------------------------------
    def import_devices(self, batch: str, csv_path: Path, *, salt_file: Path | None,
                       salt_version: int | None, dry_run: bool) -> ImportReport:
        check_batch(batch)
        if not csv_path.is_file():  # before the salts are read from every region
            raise ToolError(f"{csv_path}: not a file (give the CSV of the batch's devices)", 2)
        if salt_file is not None:
            salt, version = read_salt_file(salt_file), salt_version or 1
        else:
            entry = self.salts.merged().get(batch)
            if entry is None:
                raise ToolError(f"batch {batch} has no salt; run add-batch first", 2)
            version = salt_version or int(entry["current"])
            salt = entry["salts"].get(str(version))
            if salt is None:
                raise ToolError(f"batch {batch} has no salt version {version}", 2)
        try:
            with csv_path.open(newline="") as stream:
                rows, problems = validate_csv(stream, salt, self.stack.thing_name_prefix)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ToolError(f"{csv_path}: cannot read the CSV ({error})", 2) from None
        if problems:
            raise ToolError("\n".join([f"{csv_path}: {len(problems)} bad row(s), nothing was "
                                       "written:", *problems]), 2)
        report = ImportReport(rows=len(rows))
        if dry_run:
            self.out.write(f"dry run: {len(rows)} valid row(s) for batch {batch} (salt version "
                           f"{version}); nothing written\n")
            return report
        progress = Progress(len(rows), self.err, f"importing {batch}")
        at = now_iso()
        for row in rows:
            try:
                self.ddb.put_item(TableName=self.stack.provisioning_table,
                                  Item=cvm_device.new_record(row.uid, batch, version, at, row.uid2),
                                  **cvm_device.expressions(None, "attribute_not_exists(#uid)"))
                report.imported += 1
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise ToolError(f"line {row.line}: {_code(error)}; re-run to resume "
                                    f"({report.imported} written so far)") from None
                existing = self._record(row.uid) or {}
                same = (cvm_device.value(existing, Attr.BATCH) == batch
                        and cvm_device.value(existing, Attr.DEVICE_UID_2) == row.uid2)
                if same:
                    report.unchanged += 1
                else:
                    report.conflicts.append(f"line {row.line}: device_uid {row.uid} already "
                                            "exists with another batch or second identifier")
            progress.step()
        self.out.write(f"batch {batch}: {report.imported} imported, {report.unchanged} already "
                       f"there, {len(report.conflicts)} conflict(s)\n")
        for conflict in report.conflicts:
            self.out.write(f"  {conflict}\n")
        return report

    def set_enabled(self, uids: Sequence[str], batch: str | None, enabled: bool) -> int:
        targets = [self._key(uid) for uid in uids]
        targets += [{Attr.DEVICE_UID: i[Attr.DEVICE_UID]} for i in self._records(batch)] if batch else []
        # A revoked record stays disabled (REVOKED is final): enabling it is refused.
        condition = "attribute_exists(#uid)" + (" AND #state <> :revoked" if enabled else "")
        missing = []
        for key in targets:
            try:
                self.ddb.update_item(
                    TableName=self.stack.provisioning_table, Key=key,
                    **cvm_device.expressions("SET #enabled = :e, #updatedAt = :at", condition),
                    ExpressionAttributeValues={":e": {"BOOL": enabled}, ":at": {"S": now_iso()},
                                               **({":revoked": {"S": State.REVOKED}} if enabled else {})})
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                missing.append(key[Attr.DEVICE_UID]["S"])
        word = "enabled" if enabled else "disabled"
        self.out.write(f"{len(targets) - len(missing)} device(s) {word}\n")
        for uid in missing:
            self.out.write(f"  unknown{' or revoked' if enabled else ''} device {uid}\n")
        return len(missing)

    def revoke(self, uid: str) -> None:
        """Never again: the record refuses registration, the certificate is revoked here and
        the inventory item becomes REVOKED (final), which revokes it in every region."""
        # One write, then act on the record as it left it: a registration that committed
        # before it is revoked below; one that commits after it is refused (its commit needs
        # the record CLAIMED and enabled). Reading first would miss the first kind.
        try:
            record = self.ddb.update_item(
                TableName=self.stack.provisioning_table, Key=self._key(uid),
                **cvm_device.expressions("SET #state = :r, #enabled = :f, #updatedAt = :at", "attribute_exists(#uid)"),
                ExpressionAttributeValues={":r": {"S": State.REVOKED}, ":f": {"BOOL": False},
                                           ":at": {"S": now_iso()}},
                ReturnValues="ALL_NEW")["Attributes"]
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            raise ToolError(f"unknown device {uid}", 2) from None
        # The record may not show a registration that committed in another region moments
        # ago (the record replicates on its own): the thing is named by the uid, so its
        # inventory item is looked up either way and revoked wherever it has arrived.
        thing = cvm_device.value(record, Attr.THING_NAME) or device_thing_name(
            self.stack.thing_name_prefix, uid)
        item = self._inventory(str(thing))
        if item is None:
            self.out.write(f"{uid}: registration refused from now on (not registered as far as "
                           f"{self.region} knows; if it registered in another region moments ago, "
                           "run revoke again once replication has caught up)\n")
            return
        certificate_id = item.certificate_id
        self._revoke_certificate(item.thing_name, certificate_id)
        if item.status != Status.REVOKED:
            self._write_next(item, status=Status.REVOKED)
        self.out.write(f"{uid}: revoked (certificate {certificate_id[:12]}..., inventory item "
                       "REVOKED: replication revokes it in every region)\n")

    def reissue(self, uid: str) -> None:
        """Operator re-issue: revoke the current certificate (here; everywhere through the
        inventory item) and let the device register again with its token."""
        record = self._require_record(uid)
        if cvm_device.value(record, Attr.STATE) != State.REGISTERED:
            raise ToolError(f"{uid} is not registered; nothing to re-issue")
        thing = str(cvm_device.value(record, Attr.THING_NAME))
        item = self._inventory(thing)
        if item is None or item.status != Status.ACTIVE:
            raise ToolError(f"{uid}: the inventory has no ACTIVE certificate for {thing}")
        certificate_id = item.certificate_id
        self._revoke_certificate(thing, certificate_id)
        self._write_next(item, status=Status.INACTIVE, revoke=certificate_id)
        self.ddb.update_item(
            TableName=self.stack.provisioning_table, Key=self._key(uid),
            **cvm_device.expressions("SET #state = :u, #reopened = :old, #updatedAt = :at "
                           "REMOVE #claim, #claimedAt, #claimRegion",
                           "#state = :registered AND #certificateId = :old"),
            ExpressionAttributeValues={":u": {"S": State.UNREGISTERED}, ":old": {"S": certificate_id},
                                       ":registered": {"S": State.REGISTERED},
                                       ":at": {"S": now_iso()}})
        self.out.write(f"{uid}: certificate {certificate_id[:12]}... revoked; the device may "
                       "register again with its token\n")

    # --- helpers ---------------------------------------------------------------------------
    def _records(self, batch: str | None) -> Iterable[dict[str, Any]]:
        if batch is None:
            return []
        check_batch(batch)
        pages = self.ddb.get_paginator("scan").paginate(
            TableName=self.stack.provisioning_table, FilterExpression="#batch = :b",
            ExpressionAttributeNames=cvm_device.expression_names("#batch"),  # a DynamoDB reserved word
            ExpressionAttributeValues={":b": {"S": batch}}, ConsistentRead=True)
        return [item for page in pages for item in page.get("Items", [])]

    def _key(self, uid: str) -> dict[str, Any]:
        """The record's key; a uid no device can have (e.g. an allow-list entry's `fleet#...`
        key in the same table) is refused, naming the rule, before anything is read."""
        try:
            return cvm_device.key(uid, self.stack.thing_name_prefix)
        except RecordError as error:
            raise ToolError(str(error), 2) from None

    def _record(self, uid: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.stack.provisioning_table, Key=self._key(uid),
                                 ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def _require_record(self, uid: str) -> dict[str, Any]:
        record = self._record(uid)
        if record is None:
            raise ToolError(f"unknown device {uid}", 2)
        return record

    def _inventory(self, thing: str) -> InventoryItem | None:
        item = self.ddb.get_item(TableName=self.stack.inventory_table,
                                 Key={inventory.TABLE_KEY: {"S": thing}},
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        try:
            return InventoryItem.from_attribute_values(item)
        except ContractViolation as broken:
            raise ToolError(f"{broken}; repair the item before changing it") from None

    def _revoke_once(self, certificate_id: str) -> None:
        """REVOKED is final, and AWS may refuse to set it again (undocumented; the emulation
        refuses, the less permissive reading): already revoked is done."""
        try:
            self.iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
        except ClientError as error:
            if _code(error) != "CertificateStateException":
                raise

    def _revoke_certificate(self, thing: str, certificate_id: str) -> None:
        """Here, what the replication machine does in every other region with a REVOKED item
        (replication.asl.json, "Revoked or disabled"): unusable first, then detached from
        the thing and from the device policy, so `tools.reconcile` finds every region alike."""
        try:
            arn = self.iot.describe_certificate(certificateId=certificate_id)[
                "certificateDescription"]["certificateArn"]
            self._revoke_once(certificate_id)
            self.iot.detach_thing_principal(thingName=thing, principal=arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":  # not in this region (yet)
                raise
            return
        try:
            self.iot.detach_policy(policyName=self.stack.names.device_policy, target=arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":  # not attached (any more)
                raise

    def _write_next(self, item: InventoryItem, *, status: str, revoke: str | None = None) -> None:
        """The inventory contract's change: the next version of the item read, written only
        if it is still the version read."""
        changed = item.changed(writer_region=self.region,
                               updated_at=inventory.timestamp(dt.datetime.now(dt.timezone.utc)),
                               status=status, revoke=[revoke] if revoke else ())
        try:
            self.ddb.put_item(**inventory.put_request(self.stack.inventory_table, changed,
                                                      replaces=item))
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            if self._inventory(item.thing_name) == changed:
                return  # our own write: its answer was lost and the SDK's retry found it done
            raise ToolError(f"{item.thing_name}: the inventory item changed while this ran "
                            f"(it is no longer version {item.version}); run the command "
                            "again") from None


def check_batch(batch: str) -> None:
    problem = cvm_device.batch_problem(batch)
    if problem:
        raise ToolError(problem, 2)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m tools.manufacturer",
                                   description=__doc__.split("\n\n")[0])
    root.add_argument("--stack", required=True, help="Pulumi stack (reads Pulumi.<stack>.yaml)")
    root.add_argument("--region", help="region whose tables and registry to use "
                      "(default: the stack's primary region)")
    commands = root.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-batch", help="create a batch and its salt in every region")
    add.add_argument("batch")
    add.add_argument("--salt-file", type=Path)
    rotate = commands.add_parser("rotate-salt", help="give a batch a new current salt")
    rotate.add_argument("batch")
    rotate.add_argument("--salt-file", type=Path)
    rotate.add_argument("--rekey-unregistered", action="store_true",
                        help="move the batch's unregistered devices to the new salt")
    imp = commands.add_parser("import", help="import device records of a batch from a CSV")
    imp.add_argument("batch")
    imp.add_argument("csv", type=Path)
    imp.add_argument("--salt-file", type=Path, help="the batch salt (factory), instead of "
                     "reading Secrets Manager")
    imp.add_argument("--salt-version", type=int)
    imp.add_argument("--dry-run", action="store_true")
    for name, text in (("disable", "refuse registration"), ("enable", "allow registration")):
        toggle = commands.add_parser(name, help=text)
        toggle.add_argument("devices", nargs="*")
        toggle.add_argument("--batch", help="every device of this batch")
    for name, text in (("revoke", "revoke a device for good"),
                       ("reissue", "revoke the current certificate; the device registers again")):
        commands.add_parser(name, help=text).add_argument("device")
    return root


def main(argv: Sequence[str] | None = None, *, session: Any = None,
         project_dir: Path = PROJECT_DIR, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    # Resolved per call, not at import: a caller that redirects the streams is written to.
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    try:
        stack = Stack.load(args.stack, project_dir)
        tool = Manufacturer(stack, args.region or stack.primary_region,
                            session or boto3.session.Session(), out, err)
        if args.command == "add-batch":
            tool.add_batch(args.batch, args.salt_file)
        elif args.command == "rotate-salt":
            tool.rotate_salt(args.batch, args.salt_file, args.rekey_unregistered)
        elif args.command == "import":
            report = tool.import_devices(args.batch, args.csv, salt_file=args.salt_file,
                                         salt_version=args.salt_version, dry_run=args.dry_run)
            return 1 if report.conflicts else 0
        elif args.command in ("disable", "enable"):
            if not args.devices and not args.batch:
                raise ToolError("name device(s) or --batch", 2)
            return 1 if tool.set_enabled(args.devices, args.batch,
                                         args.command == "enable") else 0
        elif args.command == "revoke":
            tool.revoke(args.device)
        elif args.command == "reissue":
            tool.reissue(args.device)
    except ToolError as error:
        err.write(f"error: {error}\n")
        return error.status
    except (FileNotFoundError, KeyError, ValueError) as error:  # StackFileError is a ValueError
        err.write(f"error: {error}\n")
        return 2
    except AWS_ERRORS as error:  # refused, or no credentials, region or network: one line
        err.write(f"error: {describe(error)}\n")
        return 1
    except KeyboardInterrupt:  # every write is conditional or idempotent: a re-run completes it
        err.write("\ninterrupted: what was written stays written; the same command resumes\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
