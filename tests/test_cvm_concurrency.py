"""50 concurrent registrations of one device (threads, the real handler, moto): the claim is
conditional, so exactly one certificate is issued and one request succeeds; the others 409.

moto's DynamoDB is made atomic per write (tools/local/moto_fidelity.py), as AWS is; without it
moto itself could let two conditional writes through.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.cvm import api_event, cvm_world, new_csr, token
from tools.harness import StackGraph
from tools.local.pki_material import LocalPki

CONCURRENT_REQUESTS = 50


def test_fifty_concurrent_requests_issue_exactly_one_certificate(local_graph: StackGraph,
                                                                 local_pki: LocalPki) -> None:
    with cvm_world(local_graph, local_pki) as world:
        world.add_batch("B1", "salt-1")
        world.add_device("sensor-50", "B1")
        _, csr = new_csr("sensor-50")
        body = json.dumps({"device_uid": "sensor-50", "device_token": token("salt-1", "sensor-50"),
                           "csr": csr})
        world.call({"device_uid": "warm-up", "device_token": "0" * 64})  # clients, salts loaded
        start = threading.Barrier(CONCURRENT_REQUESTS)

        def register(number: int) -> tuple[int, dict[str, Any]]:
            event = api_event(body)
            start.wait()
            answer = world.invoke(event)
            return answer["statusCode"], json.loads(answer["body"])

        with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
            answers = list(pool.map(register, range(CONCURRENT_REQUESTS)))

        # A request that arrives while the winner holds the claim is refused (409); one that
        # arrives after the winner committed (a slow thread on a loaded machine) is the same
        # device asking again with the same key, and gets the same certificate back (200).
        statuses = Counter(status for status, _ in answers)
        assert set(statuses) <= {200, 409} and statuses[200] >= 1, statuses
        issued = {body["payload"]["certificate_id"] for status, body in answers if status == 200}
        [certificate] = world.certificates()
        assert issued == {certificate["certificateId"]}
        assert certificate["status"] == "ACTIVE"
        assert world.things() == ["sensor-50"]
        assert world.thing_principals("sensor-50") == [certificate["certificateArn"]]
        item = world.inventory("sensor-50")
        assert item["version"] == {"N": "1"}
        assert item["certificateId"] == {"S": certificate["certificateId"]}
        record = world.record("sensor-50")
        assert record["registrationState"] == {"S": "REGISTERED"} and "claimId" not in record
        assert record["attempts"] == {"N": "1"}  # only the winner's claim counted
