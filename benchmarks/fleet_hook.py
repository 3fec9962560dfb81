"""How fast the fleet-provisioning hook answers when it matters: AWS IoT waits 5 seconds,
cold start included ("Pre-provisioning hooks", AWS IoT developer guide).

    python benchmarks/fleet_hook.py [--repeat 5]

Figures (median of `--repeat` runs):
* import: a fresh `python` importing the hook's handler module (powertools, pydantic, boto3)
  — the floor of a cold start's init phase on this machine (Lambda's arm64 differs);
* deny, table silent: a DynamoDB endpoint that accepts connections and never answers;
* deny, table refused: nothing listens on the endpoint.
Target: every figure + import well under 5 s; the silent-table deny under the 3 s budget.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

REGION = "eu-west-1"
TEMPLATE_ARN = f"arn:aws:iot:{REGION}:123456789012:provisioningtemplate/bench-fleet"
EVENT = {"claimCertificateId": "c" * 64, "certificateId": "a" * 64, "certificatePem": "x",
         "templateArn": TEMPLATE_ARN, "clientId": "provision-SN-1",
         "parameters": {"SerialNumber": "SN-1"}}


class Context:
    function_name = "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "bench"

    def __init__(self) -> None:
        self.deadline = time.monotonic() + 5

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def silent_endpoint() -> tuple[str, socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", server


def refused_endpoint() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def deny_seconds(app: Any, endpoint: str) -> float:
    import boto3

    from lambdas.fleet_provisioning_hook.data import CLIENT_CONFIG

    app._dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG)
    started = time.monotonic()
    answer = app.handler(EVENT, Context())
    elapsed = time.monotonic() - started
    assert answer["allowProvisioning"] is False
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    from lambdas.contracts.environment import FleetHookEnvironment

    os.environ.update({
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        **FleetHookEnvironment[str](
            provisioning_table_name="p", inventory_table_name="i", template_arn=TEMPLATE_ARN,
            claim_client_id_prefix="provision-",
            hook_budget_ms="3000").variables(),
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    imports = []
    for _ in range(repeat):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import lambdas.fleet_provisioning_hook.app"],
                       cwd=PROJECT_DIR, check=True, env=os.environ.copy())
        imports.append(time.monotonic() - started)
    from lambdas.fleet_provisioning_hook import app

    url, server = silent_endpoint()
    silent = [deny_seconds(app, url) for _ in range(repeat)]
    server.close()
    refused = [deny_seconds(app, refused_endpoint()) for _ in range(repeat)]
    print(f"{'figure':<34}{'median s':>10}{'max s':>8}")
    for name, values in (("import handler (fresh process)", imports),
                         ("deny, table silent", silent), ("deny, table refused", refused)):
        print(f"{name:<34}{statistics.median(values):>10.2f}{max(values):>8.2f}")


if __name__ == "__main__":
    main()
