"""One botocore data loader per process, for the tests and the local run.

Every boto3 or botocore session builds its own loader, and a loader parses each service
model's JSON (iot, dynamodb, ... 0.5-3 MB each) the first time that session's clients need
it. The tests and the local run make thousands of sessions: moto's `mock_aws` resets boto3's
default session for each test, and every emulated Lambda cold start builds its own clients.
Parsing the same files again was a third of the CPU time of some test files. Sharing one
loader is what the clients of one session already do, so nothing else changes.

It reaches into botocore's internals (`botocore.session.create_loader`, the loader's search
path list); tests/test_botocore_models.py checks both against the installed botocore and
fails naming this module when an upgrade moves them.
"""

from __future__ import annotations

import functools

import botocore.loaders
import botocore.session


class _SearchPaths(list[str]):
    """boto3 appends its own data folder to the loader's search paths for every Session it
    makes; on a shared loader once is enough (the list would grow by a path per session)."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def _shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    loader = botocore.loaders.create_loader(search_path_string)
    loader._search_paths = _SearchPaths(loader.search_paths)  # type: ignore[attr-defined]
    return loader


def share_service_models() -> None:
    """From now on every new botocore session in this process reads the models through one
    loader (one per AWS_DATA_PATH value). Idempotent."""
    botocore.session.create_loader = _shared_loader
