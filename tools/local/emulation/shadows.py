"""The Device Shadow service's MQTT side, which moto lacks: every accepted shadow update or
delete in a region, whoever made it (a device, an application, a replication function),
publishes what AWS IoT publishes, to the rules engine of that region:

* update: `$aws/things/<thing>/shadow[/name/<shadow>]/update/documents` with `previous`,
  `current` (state, metadata, version), `timestamp` (epoch seconds) and the request's
  `clientToken` when it had one (Device Shadow service documents, "/documents response
  state document": https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html);
* delete: `$aws/things/<thing>/shadow[/name/<shadow>]/delete/accepted` with `version` and
  `timestamp` (Device Shadow MQTT topics, "/delete/accepted":
  https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html).
  DeleteThingShadow over HTTP carries no client token, so neither does this message.

Stricter than AWS: an update whose state is larger than 8 KB is refused (AWS IoT Device
Shadow quotas: https://docs.aws.amazon.com/general/latest/gr/iot-core.html#device-shadow-limits)
and a thing must exist (AWS does not require a registry thing for a shadow: the less
permissive reading here makes a replicated shadow wait for its replicated thing).

Messages are queued when the shadow changes and published outside the moto call that made
the change: by `settle()` (which repeats with the streams until both are quiet) or, with
`world.background`, by a thread of its own.
"""

from __future__ import annotations

import json
import time
from typing import Any
from unittest import mock

from moto.iotdata.models import IoTDataPlaneBackend

from tools.local.emulation import emulation
from tools.local.emulation.publishing import QueuedPublisher
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
            mock.patch.object(IoTDataPlaneBackend, "update_thing_shadow", self._update()),
            mock.patch.object(IoTDataPlaneBackend, "delete_thing_shadow", self._delete())])

    def _update(self) -> Any:
        original = IoTDataPlaneBackend.update_thing_shadow
        shadows = self

        def update_thing_shadow(backend: IoTDataPlaneBackend, thing_name: str, payload: str,
                                shadow_name: str | None) -> Any:
            request = json.loads(payload) if isinstance(payload, (str, bytes)) else {}
            state = request.get("state") if isinstance(request, dict) else None
            if len(json.dumps(state or {}).encode()) > MAX_STATE_BYTES:
                from moto.iotdata.exceptions import InvalidRequestException

                raise InvalidRequestException("The payload exceeds the maximum size allowed")
            thing = backend.iot_backend.describe_thing(thing_name)
            previous = _document(thing.thing_shadows.get(shadow_name))
            shadow = original(backend, thing_name, payload, shadow_name)
            message: dict[str, Any] = {"previous": previous, "current": _document(shadow),
                                       "timestamp": shadows.clock()}
            if isinstance(request, dict) and "clientToken" in request:
                message["clientToken"] = request["clientToken"]
            shadows._enqueue(backend.region_name, _topic(thing_name, shadow_name,
                                                         "update/documents"), message)
            return shadow
        return update_thing_shadow

    def _delete(self) -> Any:
        original = IoTDataPlaneBackend.delete_thing_shadow
        shadows = self

        def delete_thing_shadow(backend: IoTDataPlaneBackend, thing_name: str,
                                shadow_name: str | None) -> Any:
            thing = backend.iot_backend.describe_thing(thing_name)
            existing = thing.thing_shadows.get(shadow_name)
            if existing is None or existing.deleted:
                from moto.iotdata.exceptions import ResourceNotFoundException

                raise ResourceNotFoundException()  # AWS: no shadow to delete (moto allows it)
            shadow = original(backend, thing_name, shadow_name)
            shadows._enqueue(backend.region_name, _topic(thing_name, shadow_name, "delete/accepted"),
                             {"version": existing.version, "timestamp": shadows.clock()})
            return shadow
        return delete_thing_shadow

    def describe(self) -> str:
        return "device shadows: update/documents and delete/accepted to the rules engine"


@emulation("shadows")
def start(world: World) -> Shadows | None:
    return Shadows(world)
