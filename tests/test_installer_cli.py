"""`installer claim` and its --out-dir: a hand-over directory that cannot be written is
refused before signing in (nothing claimed), in one line naming the path; a write that still
fails after the claim says so in one line too, never with a traceback."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from tools import installer

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
IDS = ["--region", "eu-west-1", "--username", "alice", "--user-pool-id", "p",
       "--client-id", "c", "--identity-pool-id", "i", "--template-name", "t"]


class NoSignIn:
    def password(self) -> str:
        raise AssertionError("signed in, so a claim would be created")

    new_password = totp_code = password

    def show_totp_setup(self, secret: str, uri: str) -> None:
        raise AssertionError("signed in, so a claim would be created")


def blocked_out_dir(tmp_path: Path) -> Path:
    """An --out-dir below a regular file: it can be neither created nor written."""
    (tmp_path / "file").write_text("not a directory")
    return tmp_path / "file" / "handover"


@pytest.mark.parametrize("serial", [["--serial", "SN-1"], []])
def test_an_out_dir_that_cannot_be_written_is_refused_before_signing_in(
        tmp_path: Path, serial: list[str]) -> None:
    out_dir = blocked_out_dir(tmp_path)
    args = installer.parser().parse_args(["claim", *IDS, *serial, "--out-dir", str(out_dir)])
    with pytest.raises(installer.HandOverError) as refused:
        installer.run_claim(args, idp=None, identity=None, iot_with=lambda credentials: None,
                            prompter=NoSignIn(), out=io.StringIO(), now=lambda: NOW)
    message = str(refused.value)
    assert message.startswith(f"--out-dir {out_dir} cannot be written")
    assert message.endswith("nothing was claimed")


def test_the_cli_refuses_an_unwritable_out_dir_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = blocked_out_dir(tmp_path)
    code = installer.main(["claim", *IDS, "--serial", "SN-1", "--out-dir", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: --out-dir {out_dir} cannot be written")


def test_a_hand_over_that_fails_after_the_claim_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The directory passed the probe, then went away (a removed USB stick) before the files
    were written: exit 2, one line naming the path and what to do."""
    out_dir = tmp_path / "handover"
    claim = installer.ProvisioningClaim("a" * 64, "PEM", "KEY", NOW + dt.timedelta(minutes=5))

    def claim_then_lose_the_directory(iot: Any, template_name: str) -> installer.ProvisioningClaim:
        if out_dir.is_dir():
            out_dir.rmdir()
        out_dir.write_text("the directory is gone")
        return claim

    monkeypatch.setattr(installer, "sign_in", lambda *a, **k: installer.Tokens("id", "a", None))
    monkeypatch.setattr(installer, "identity_credentials", lambda *a, **k: {
        "AccessKeyId": "x", "SecretKey": "y", "SessionToken": "z"})
    monkeypatch.setattr(installer, "create_claim", claim_then_lose_the_directory)
    monkeypatch.setattr(installer, "ConsolePrompter", lambda: NoSignIn())
    code = installer.main(["claim", *IDS, "--serial", "SN-1", "--out-dir", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: could not write the claim to --out-dir {out_dir}")
    assert f"claim {'a' * 64} cannot be used without its key" in err
