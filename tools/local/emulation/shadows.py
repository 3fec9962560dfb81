"""The Device Shadow service's MQTT side, which moto lacks: every accepted shadow update or
delete in a region, whoever made it (a device, an application, a replication function),
publishes what AWS IoT publishes (`.../update/documents`, `.../delete/accepted`) to the rules
engine of that region; what AWS refuses that moto accepts (8 KB sent and stored, nesting, the
client token) and a section set to null, which AWS removes and moto ignores. Messages, quotas
and the less permissive readings:
docs/emulation.md, "IoT rules engine and data plane" (AWS: "/documents response state document",
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html; "/delete/accepted",
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html; Device Shadow quotas,
https://docs.aws.amazon.com/general/latest/gr/iot-core.html#device-shadow-limits).

Messages are queued when the shadow changes and published outside the moto call (`QueuedPublisher`).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.iotdata.exceptions import InvalidRequestException, ResourceNotFoundException
from moto.iotdata.models import FakeShadow, IoTDataPlaneBackend

from tools.local.emulation import emulation
from tools.local.emulation.publishing import QueuedPublisher
from tools.local.moto_fidelity import wrapping
from tools.local.world import World

MAX_STATE_BYTES = 8 * 1024
MAX_CLIENT_TOKEN_BYTES = 64
# "maximum is 6" levels; AWS does not say how they are counted: the section's own object is
# level 1 here (the less permissive reading).
MAX_NESTING = 6
SECTIONS = ("desired", "reported")


class _TooLarge(JsonRESTError):
    code = 413


def _too_large(detail: str) -> JsonRESTError:
    return _TooLarge("RequestEntityTooLargeException", f"The payload exceeds the maximum size allowed ({detail})")


def _depth(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((_depth(child) for child in children), default=0)


def _check_request(payload: str | bytes, request: Any, state: Any) -> None:
    """What AWS refuses before it looks at the shadow (Device Shadow error messages)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_STATE_BYTES:  # counting the whole request: the less permissive reading
        raise _too_large("the request exceeds 8 KB")
    token = request.get("clientToken") if isinstance(request, dict) else None
    if token is not None and (not isinstance(token, str) or len(token.encode()) > MAX_CLIENT_TOKEN_BYTES):
        raise InvalidRequestException("Invalid clientToken")
    for section in SECTIONS:
        if isinstance(state, dict) and _depth(state.get(section)) > MAX_NESTING:
            raise InvalidRequestException(f"JSON contains too many levels of nesting; maximum is {MAX_NESTING}")


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
                             payload: str | bytes, shadow_name: str | None) -> Any:
        request = json.loads(payload) if isinstance(payload, (str, bytes)) else {}
        state = request.get("state") if isinstance(request, dict) else None
        _check_request(payload, request, state)
        thing = backend.iot_backend.describe_thing(thing_name)
        kept = thing.thing_shadows.get(shadow_name)
        previous = _document(kept)
        kept = copy.deepcopy(kept)  # moto merges the update into the stored shadow's dicts
        shadow = original(backend, thing_name, payload, shadow_name)
        cleared = [s for s in SECTIONS if isinstance(state, dict) and s in state and state[s] is None]
        if cleared:  # moto ignores a section set to null; AWS removes the section
            sections = {s: None if s in cleared else getattr(shadow, s) for s in SECTIONS}
            shadow = FakeShadow(sections["desired"], sections["reported"], shadow.requested_payload, shadow.version)
            thing.thing_shadows[shadow_name] = shadow
        stored = {s: getattr(shadow, s) for s in SECTIONS if getattr(shadow, s)}
        if len(json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_STATE_BYTES:
            if kept is None:
                del thing.thing_shadows[shadow_name]
            else:
                thing.thing_shadows[shadow_name] = kept
            raise _too_large("the shadow it would leave exceeds 8 KB")
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
