"""The example devices' command lines: a bad option is one line naming it (argparse's exit 2),
never a traceback. What the devices do on the wire: the local run's journeys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from examples.devices import cvm_device, fleet_device, jitr_device


def jitr(ca: str, proxy: str, pem: str) -> list[str]:
    return ["--endpoint", "iot.example.com", "--ca", ca, "--proxy", proxy, "--cert", pem, "--key", pem,
            "--thing", "t", "--topic", "dt/app/t/status"]


def fleet(ca: str, proxy: str, pem: str) -> list[str]:
    return ["--endpoint", "iot.example.com", "--ca", ca, "--proxy", proxy, "--claim-cert", pem,
            "--claim-key", pem, "--template", "t", "--serial", "SN-1", "--client-id", "claim-SN-1",
            "--topic-root", "dt/app"]


def cvm(ca: str, proxy: str, pem: str) -> list[str]:
    return ["--url", "https://register.example.com/registration", "--uid", "U", "--token", "0" * 64,
            "--endpoint", "iot.example.com", "--ca", ca, "--proxy", proxy, "--topic-root", "dt/app"]


DEVICES: list[tuple[Callable[..., int], Callable[[str, str, str], list[str]]]] = [
    (jitr_device.main, jitr), (fleet_device.main, fleet), (cvm_device.main, cvm)]


@pytest.mark.parametrize("main, argv", DEVICES)
@pytest.mark.parametrize("bad, named", [
    ({"ca": "missing.pem"}, "argument --ca: cannot read"),
    ({"proxy": "127.0.0.1"}, "argument --proxy: '127.0.0.1' is not HOST:PORT"),
    ({"proxy": "proxy:http"}, "argument --proxy: 'proxy:http' is not HOST:PORT"),
])
def test_a_bad_option_is_named_in_one_line(main: Callable[..., int], argv: Callable[[str, str, str], list[str]],
                                           bad: dict[str, str], named: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "device.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    options = {"ca": str(pem), "proxy": "127.0.0.1:8080", **bad}
    if options["ca"] == "missing.pem":
        options["ca"] = str(tmp_path / "missing.pem")
    with pytest.raises(SystemExit) as exited:
        main(argv(options["ca"], options["proxy"], str(pem)))
    err = capsys.readouterr().err
    assert exited.value.code == 2 and named in err and "Traceback" not in err


@pytest.mark.parametrize("main, argv", DEVICES[:2])
def test_a_device_file_that_cannot_be_read_is_named(main: Callable[..., int],
                                                    argv: Callable[[str, str, str], list[str]], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(SystemExit) as exited:
        main(argv(str(ca), "127.0.0.1:8080", str(tmp_path)))  # a directory, not a PEM file
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "cannot read" in err and str(tmp_path) in err
