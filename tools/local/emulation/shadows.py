"""The Device Shadow service's MQTT side, which moto lacks: every accepted shadow update or
delete in a region, whoever made it (a device, an application, a replication function),
publishes what AWS IoT publishes (`.../update/documents`, `.../delete/accepted`) to the rules
engine of that region. Messages, the 8 KB state quota and the less permissive readings:
docs/emulation.md, "IoT rules engine and data plane" (AWS: "/documents response state document",
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html; "/delete/accepted",
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html; Device Shadow quotas,
https://docs.aws.amazon.com/general/latest/gr/iot-core.html#device-shadow-limits).

Messages are queued when the shadow changes and published outside the moto call (`QueuedPublisher`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from moto.iotdata.models import IoTDataPlaneBackend

from tools.local.emulation import emulation
from tools.local.emulation.publishing import QueuedPublisher
from tools.local.moto_fidelity import wrapping
from tools.local.world import World

MAX_STATE_BYTES = 8 * 1024


def _topic(thing: str, shadow: str | None, suffix: str) -> str:
    named = f"/name/{shadow}" if shadow else ""
    return f"$aws/things/{thing}/shadow{named}/{suffix}"


def _document(shadow: Any) -> dict[str, Any] | None:
    if shadow is None or getattr(shadow, "deleted", False):
        return None
    # A deep copy: moto merges the next update into the same nested dicts.
    document: dict[str, Any] = json.loads(json.dumps(shadow.to_dict(include_delta=False)))
    document.pop("timestamp", None)
    return document


class Shadows(QueuedPublisher):
    kind = "shadow messages"

    def __init__(self, world: World) -> None:
        # The shadow service's clock (epoch seconds); scenarios pin it to order writes.
        self.clock: Any = lambda: int(time.time())
        super().__init__(world, [
            wrapping(IoTDataPlaneBackend, "update_thing_shadow", self._update_thing_shadow),
            wrapping(IoTDataPlaneBackend, "delete_thing_shadow", self._delete_thing_shadow)])

    def _update_thing_shadow(self, original: Callable[..., Any], backend: IoTDataPlaneBackend, thing_name: str,
                             payload: str, shadow_name: str | None) -> Any:
        request = json.loads(payload) if isinstance(payload, (str, bytes)) else {}
        state = request.get("state") if isinstance(request, dict) else None
        if len(json.dumps(state or {}).encode()) > MAX_STATE_BYTES:
            from moto.iotdata.exceptions import InvalidRequestException

            raise InvalidRequestException("The payload exceeds the maximum size allowed")
        thing = backend.iot_backend.describe_thing(thing_name)
        previous = _document(thing.thing_shadows.get(shadow_name))
        shadow = original(backend, thing_name, payload, shadow_name)
        message: dict[str, Any] = {"previous": previous, "current": _document(shadow), "timestamp": self.clock()}
        if isinstance(request, dict) and "clientToken" in request:
            message["clientToken"] = request["clientToken"]
        self._enqueue(backend.region_name, _topic(thing_name, shadow_name, "update/documents"), message)
        return shadow

    def _delete_thing_shadow(self, original: Callable[..., Any], backend: IoTDataPlaneBackend, thing_name: str,
                             shadow_name: str | None) -> Any:
        thing = backend.iot_backend.describe_thing(thing_name)
        existing = thing.thing_shadows.get(shadow_name)
        if existing is None or existing.deleted:
            from moto.iotdata.exceptions import ResourceNotFoundException

            raise ResourceNotFoundException()  # AWS: no shadow to delete (moto allows it)
        shadow = original(backend, thing_name, shadow_name)
        self._enqueue(backend.region_name, _topic(thing_name, shadow_name, "delete/accepted"),
                      {"version": existing.version, "timestamp": self.clock()})
        return shadow

    def describe(self) -> str:
        return "device shadows: update/documents and delete/accepted to the rules engine"


@emulation("shadows")
def start(world: World) -> Shadows | None:
    return Shadows(world)
