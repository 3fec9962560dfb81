"""The operator tools' AWS clients: one boto3 session, one client per (service, region).

With an endpoint URL configured (`AWS_ENDPOINT_URL`, e.g. the system `python -m tools.local
--keep` serves), botocore's host prefixes are turned off: StartSyncExecution would otherwise
send to `sync-127.0.0.1`, a host that does not exist. Against AWS nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


def boto3_clients(profile: str | None = None) -> ClientFactory:
    import boto3
    from botocore.config import Config

    session: Any = boto3.Session(profile_name=profile)  # services chosen at run time
    config = Config(inject_host_prefix=not os.environ.get("AWS_ENDPOINT_URL"))
    cache: dict[tuple[str, str], Any] = {}

    def client(service: str, region: str) -> Any:
        if (service, region) not in cache:
            cache[(service, region)] = session.client(service, region_name=region, config=config)
        return cache[(service, region)]
    return client
