"""tools/botocore_models.py against the installed botocore and boto3: every new session reads
the service models through one loader. A failure here after an upgrade means botocore moved
what that module patches: fix it there."""

from __future__ import annotations

from unittest import mock

import boto3
import botocore.loaders
import botocore.session

from tools.botocore_models import share_service_models


def test_new_sessions_share_one_loader_whose_search_paths_do_not_grow() -> None:
    share_service_models()
    first, second = boto3.session.Session(), boto3.session.Session()
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader, \
        "botocore no longer builds its loader through botocore.session.create_loader: see tools/botocore_models.py"
    paths = list(loader.search_paths)
    boto3.session.Session()
    assert loader.search_paths == paths and len(set(paths)) == len(paths), paths


def test_a_service_model_is_parsed_once_for_every_session() -> None:
    share_service_models()
    boto3.session.Session().client("iot", region_name="eu-west-1")  # whatever came before
    with mock.patch.object(botocore.loaders.JSONFileLoader, "load_file",
                           autospec=True, side_effect=botocore.loaders.JSONFileLoader.load_file) as load:
        for _ in range(3):
            boto3.session.Session().client("iot", region_name="eu-west-1")
            botocore.session.Session().create_client("iot", region_name="eu-west-1")
    assert load.call_count == 0, [call.args[1] for call in load.call_args_list]
