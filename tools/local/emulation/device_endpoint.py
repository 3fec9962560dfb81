"""AWS IoT Core's device endpoint, per region, on 127.0.0.1: MQTT 3.1.1 over mutual TLS, served
by amqtt (an existing asyncio broker) extended through its plugin hooks and some of its
methods. What a device meets, with the AWS pages it follows: docs/emulation.md, "Device endpoint".

`Gate.tls_context`: the device domain's server certificate, SNI checked, the client certificate
chained to the CAs registered ACTIVE at the handshake (or the Amazon issuer). `RegistryCheck`:
CONNECT (JITR of an unknown certificate, else `IotData.authorize_connect`). `PolicyCheck`: the
policies on every PUBLISH, SUBSCRIBE and delivery (a denied PUBLISH or SUBSCRIBE closes the
connection, AWS's AUTH_ERROR; `AuthorisingHandler` withholds the PUBACK of a denied QoS 1
publish, which amqtt would send before the policy decides, and closes the connection on a
payload over the quota). `Routing`: an accepted JSON publish to the rules engine.
`DeviceBroker._handle_message_delivery`: fleet provisioning's MQTT API on `$aws/` topics (amqtt
closes a client publishing to a `$` topic before any plugin runs), answered on the same connection.
`Address.proxy_port`: a one-route HTTP CONNECT proxy standing in for DNS (the SDK's `http_proxy_options`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from amqtt.broker import Broker, BrokerContext
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import INCOMING, Session
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from examples.devices.mqtt import Endpoint
from tools import pki
from tools.local.emulation import emulation
from tools.local.emulation.iot_data import CA_TYPE, ConnectionRefused, IotData, Registration, certificate_id
from tools.local.emulation.rules_engine import Delivery, RulesEngine
from tools.local.moto_fidelity import amazon_issuer_pem
from tools.local.world import World

DOMAIN_TYPE = "aws:iot/domainConfiguration:DomainConfiguration"
MQTT_PORT = 8883  # what devices dial; the proxy maps it to the broker's ephemeral port
# AWS IoT's publish payload quota, "128 KB", read as 128 000 bytes (the less permissive reading
# of KB); a larger publish closes the connection with CLIENT_ERROR, PAYLOAD_LIMIT_EXCEEDED.
PAYLOAD_LIMIT_BYTES = 128_000
# The topic of the publish being delivered when its policy was decided before its PUBACK.
_AUTHORISED_TOPIC: ContextVar[str | None] = ContextVar("authorised_topic", default=None)


@dataclass(frozen=True)
class Address:
    """How a device reaches one region's endpoint."""
    region: str
    host_name: str  # the device domain (SNI, certificate name)
    port: int  # MQTT_PORT
    proxy_port: int  # 127.0.0.1:<proxy_port> tunnels to host_name:port
    broker_port: int  # the TLS listener itself (for clients that set SNI by hand)


@dataclass(frozen=True)
class Message:
    client_id: str
    topic: str
    payload: bytes


@dataclass
class Log:
    """What one region's endpoint decided, for the journeys and the report."""
    messages: list[Message] = field(default_factory=list)  # accepted publishes
    registrations: list[tuple[Registration, list[Delivery]]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    # fleet provisioning MQTT API: (client id, request topic, (answer topic, payload) or None)
    provisioning: list[tuple[str, str, tuple[str, Any] | None]] = field(default_factory=list)


class DeviceBroker(Broker):
    """amqtt's broker with the region's TLS context and the registry behind its plugins."""

    def __init__(self, config: dict[str, Any], *, gate: Gate, region: str, loop: asyncio.AbstractEventLoop) -> None:
        self.gate, self.region = gate, region
        super().__init__(config, loop=loop)

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:
        return self.gate.tls_context(self.region)

    async def _handle_client_session(self, reader: Any, writer: Any, client_session: Session,
                                     handler: BrokerProtocolHandler, *args: Any, **kwargs: Any) -> None:
        # before the handler reads any PUBLISH (amqtt builds it from the CONNECT, then comes here)
        handler.__class__ = AuthorisingHandler
        authorising = cast(AuthorisingHandler, handler)
        authorising.broker, authorising.authorised = self, {}
        await super()._handle_client_session(reader, writer, client_session, handler, *args, **kwargs)

    async def _handle_subscription(self, client_session: Session, handler: Any, subscribe_waiter: Any) -> None:
        """AWS IoT supports QoS 0 and 1 only: no SUBACK for a QoS 2 subscription. Whether it
        also disconnects is undocumented: the emulation does (the less permissive reading)."""
        qos_2 = [topic for topic, qos in subscribe_waiter.result().topics if qos == 2]
        if qos_2:
            self.gate.logs[self.region].refusals.append(
                f"iot:Subscribe {qos_2[0]} by {client_session.client_id}: QoS 2 is not supported (no SUBACK)")
            self.close_session(client_session)
            return
        await super()._handle_subscription(client_session, handler, subscribe_waiter)

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        if action == Action.PUBLISH and _AUTHORISED_TOPIC.get() == topic:
            return True  # decided before its PUBACK (AuthorisingHandler): one decision per publish
        return bool(await super()._topic_filtering(session, topic, action))

    async def _handle_message_delivery(self, client_session: Session, handler: Any, wait_deliver: Any) -> bool:
        message = wait_deliver.result()
        authorised = isinstance(handler, AuthorisingHandler) and message is not None \
            and handler.authorised.pop(id(message), None) is message
        # this delivery's task only (amqtt delivers each client's messages in that client's task)
        token = _AUTHORISED_TOPIC.set(message.topic if authorised else None)
        try:
            return await self._deliver(client_session, handler, wait_deliver, message)
        finally:
            _AUTHORISED_TOPIC.reset(token)

    async def _deliver(self, client_session: Session, handler: Any, wait_deliver: Any, message: Any) -> bool:
        if message is None or not str(message.topic or "").startswith("$aws/"):
            return bool(await super()._handle_message_delivery(client_session, handler, wait_deliver))
        if not await self._topic_filtering(client_session, message.topic, Action.PUBLISH):
            return True  # PolicyCheck logged it and is closing the connection
        answer = await self._loop.run_in_executor(None, self.gate.reserved, self.region, client_session,
                                                  message.topic, bytes(message.data or b""))
        if answer is None:
            return False  # no API of this emulation: closed, as amqtt closes any `$` topic
        topic, payload = answer
        qos = max((q for f, subscribers in self._subscriptions.items() if self._matches(topic, f)
                   for s, q in subscribers if s.client_id == client_session.client_id), default=None)
        if qos is None or not await self._topic_filtering(client_session, topic, Action.RECEIVE):
            self.gate.logs[self.region].refusals.append(
                f"{topic} not delivered to {client_session.client_id}: not subscribed or not allowed to receive")
            return True
        # as amqtt's own deliveries: not awaited here (a QoS 1 answer waits for the PUBACK)
        self.gate.keep(asyncio.ensure_future(
            handler.mqtt_publish(topic, json.dumps(payload, default=str).encode(), qos, retain=False)))
        return True

    def close_session(self, session: Session) -> None:
        """Drop a client's network connection (AWS IoT: AUTH_ERROR)."""
        found = self._sessions.get(session.client_id or "")
        if found is None:
            return
        handler = found[1]

        async def close() -> None:
            with contextlib.suppress(Exception):
                await handler.handle_connection_closed()
                await handler.stop()
        self.gate.keep(asyncio.ensure_future(close()))


class AuthorisingHandler(BrokerProtocolHandler):
    """No PUBACK for a QoS 1 publish the policy denies. amqtt queues the message and answers
    PUBACK at once, the policy deciding later; AWS IoT closes the connection (AUTH_ERROR) and
    acknowledges nothing, so the device learns its publish failed. AWS does not document the
    PUBACK either way: the emulation takes the less permissive reading. A publish over the
    payload quota is refused before either."""

    broker: DeviceBroker
    # the queued messages already allowed, by id (amqtt's messages take no attributes; kept
    # here until delivered, so an id is never another message's)
    authorised: dict[int, Any]

    async def handle_publish(self, publish_packet: Any) -> None:
        size = len(publish_packet.data or b"")
        if size > PAYLOAD_LIMIT_BYTES and self.session is not None:  # any QoS: nothing acknowledged
            self.broker.gate.logs[self.broker.region].refusals.append(
                f"iot:Publish {publish_packet.topic_name} by {self.session.client_id}: payload of {size} bytes "
                f"exceeds {PAYLOAD_LIMIT_BYTES} (CLIENT_ERROR, PAYLOAD_LIMIT_EXCEEDED)")
            self.broker.close_session(self.session)
            return
        await super().handle_publish(publish_packet)

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING and self.session is not None:
            if not await self.broker._topic_filtering(self.session, app_message.topic, Action.PUBLISH):
                return  # PolicyCheck logged the refusal and is closing the connection
            self.authorised[id(app_message)] = app_message
        await super()._handle_qos1_message_flow(app_message)


def _peer_pem(session: Session) -> str:
    der = session.ssl_object.getpeercert(binary_form=True) if session.ssl_object else None
    if not der:
        raise ConnectionRefused("no client certificate")
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


class RegistryCheck(BaseAuthPlugin):
    """At CONNECT: JITR for an unknown certificate, else IoT's connect authorisation."""

    async def authenticate(self, *, session: Session) -> bool | None:
        broker = self.context._broker_instance
        return bool(broker.gate.connect(broker.region, session))


class PolicyCheck(BaseTopicPlugin):
    """The device policy on every PUBLISH, SUBSCRIBE and delivery."""

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        broker = self.context._broker_instance
        if session is None or topic is None or action is None:
            return False
        allowed = broker.gate.allowed(broker.region, session, action, topic)
        if not allowed and action in (Action.PUBLISH, Action.SUBSCRIBE):
            broker.close_session(session)
        return allowed


class Gate:
    """The registry and policy decisions of every region's endpoint (one per world)."""

    def __init__(self, world: World, domains: dict[str, str], material: Path) -> None:
        self._world, self.domains, self.material = world, domains, material
        self.logs = {region: Log() for region in domains}
        self.tasks: set[asyncio.Future[Any]] = set()
        # amqtt keeps a refused client's session as connected (it answered CONNACK 5 and
        # closed the socket); AWS IoT has no connection for it: GetConnection finds none.
        self.refused: dict[str, Session] = {}  # client id -> its last refused session

    def keep(self, task: asyncio.Future[Any]) -> None:
        """A task of the endpoint's loop, cancelled at stop if still running."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- TLS -------------------------------------------------------------------------------
    def _trusted(self, region: str) -> str:
        """PEMs of the CAs registered ACTIVE in `region` now, plus the Amazon issuer (moto has
        no ListCACertificates: the registrations are the declared ones, their state moto's)."""
        iot = self._world.client("iot", region)
        pems = [amazon_issuer_pem()]
        for resource in self._world.declared(CA_TYPE, region):
            try:
                described = iot.describe_ca_certificate(
                    certificateId=self._world.resolver(resource.id))["certificateDescription"]
            except iot.exceptions.ResourceNotFoundException:
                continue
            if described["status"] == "ACTIVE":
                pems.append(described["certificatePem"])
        return "\n".join(pems)

    def _base_context(self, region: str, cadata: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.material / "server.pem", self.material / "server.key")
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a registered intermediate is a trust anchor
        context.load_verify_locations(cadata=cadata)
        return context

    def tls_context(self, region: str) -> ssl.SSLContext:
        """The listener's context: the SNI callback refuses other names and swaps in a context
        trusting the CAs registered at the moment of this handshake."""
        context = self._base_context(region, amazon_issuer_pem())
        domain = self.domains[region]

        def on_sni(connection: Any, server_name: str | None, _: ssl.SSLContext) -> int | None:
            if server_name != domain:
                self.logs[region].refusals.append(f"TLS: SNI {server_name!r} is not {domain}")
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            try:
                connection.context = self._base_context(region, self._trusted(region))
            except Exception as error:  # refuse, never serve with a stale trust store
                self.logs[region].refusals.append(f"TLS: {type(error).__name__}: {error}")
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            return None

        context.sni_callback = on_sni
        return context

    # --- MQTT ------------------------------------------------------------------------------
    def connect(self, region: str, session: Session) -> bool:
        data = self._world.emulation(IotData)
        client_id = session.client_id or ""
        try:
            pem = _peer_pem(session)
            if not self._registered(region, pem) and data.claim_allows(region, pem, "iot:Connect",
                                                                         f"client/{client_id}") is None:
                registration = data.auto_register(region, pem)  # raises when not eligible
                deliveries = data.publish_registered(registration)
                self.logs[region].registrations.append((registration, deliveries))
                raise ConnectionRefused(f"certificate {certificate_id(pem)[:10]}… auto-registered "
                                        "PENDING_ACTIVATION (JITR); the connection is refused")
            allowed, why = data.authorize_connect(region, pem, client_id)
        except ConnectionRefused as refused:
            allowed, why = False, str(refused)
        if not allowed:
            self.logs[region].refusals.append(f"CONNECT {client_id}: {why}")
            self.refused[client_id] = session
        return allowed

    def _registered(self, region: str, pem: str) -> bool:
        iot = self._world.client("iot", region)
        try:
            iot.describe_certificate(certificateId=certificate_id(pem))
        except iot.exceptions.ResourceNotFoundException:
            return False
        return True

    def allowed(self, region: str, session: Session, action: Action, topic: str) -> bool:
        verb, kind = {Action.PUBLISH: ("iot:Publish", "topic"), Action.SUBSCRIBE: ("iot:Subscribe", "topicfilter"),
                      Action.RECEIVE: ("iot:Receive", "topic")}[action]
        client_id = session.client_id or ""
        try:
            ok, why = self._world.emulation(IotData).authorize(region, _peer_pem(session), client_id, verb,
                                                               f"{kind}/{topic}")
        except ConnectionRefused as refused:
            ok, why = False, str(refused)
        if not ok:
            self.logs[region].refusals.append(f"{verb} {topic} by {client_id}: {why}")
        return ok

    def reserved(self, region: str, session: Session, topic: str, payload: bytes) -> tuple[str, Any] | None:
        """A publish to a `$aws/` topic the policy allowed: the fleet provisioning MQTT API's
        answer (topic, payload), or None when no emulated API serves the topic."""
        from tools.local.emulation.fleet_provisioning import FleetProvisioning

        answer = None
        if FleetProvisioning in self._world.emulations:
            answer = self._world.emulation(FleetProvisioning).mqtt_request(
                region, certificate_id(_peer_pem(session)), session.client_id or "", topic, payload)
        self.logs[region].provisioning.append((session.client_id or "", topic, answer))
        if answer is None:
            self.logs[region].refusals.append(f"{topic} by {session.client_id}: a reserved topic this "
                                              "endpoint does not serve")
        return answer

    def published(self, region: str, client_id: str, topic: str, payload: bytes) -> None:
        self.logs[region].messages.append(Message(client_id, topic, payload))
        try:
            message = json.loads(payload)
        except ValueError:
            return  # the rules engine's SQL here is JSON-only (SELECT * FROM)
        if isinstance(message, dict) and RulesEngine in self._world.emulations:
            self._world.emulation(RulesEngine).publish(region, topic, message)


class Routing(BasePlugin[BrokerContext]):
    """Hands every accepted publish to the gate (log, rules engine)."""

    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        broker = self.context._broker_instance
        broker.gate.published(broker.region, client_id, message.topic, bytes(message.data))


async def _tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: tuple[str, int],
                  broker_port: int) -> None:
    """One HTTP CONNECT to `route` spliced to the broker; anything else is a 403."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or parts[0] != "CONNECT" or parts[1] != f"{route[0]}:{route[1]}":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", broker_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            with contextlib.suppress(OSError):
                sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


class DeviceEndpoints:
    """Every region's endpoint, on one thread with one asyncio loop."""

    def __init__(self, world: World, domains: dict[str, str]) -> None:
        self._root_pem = world.pki.root_pem
        self._directory = tempfile.TemporaryDirectory(prefix="local-iot-endpoint-")
        material = Path(self._directory.name)
        names = sorted(set(domains.values()))
        server = pki.create_server_cert(world.pki.intermediate, names[0])  # one name: one domain per stack
        if len(names) > 1:
            raise ValueError(f"regions declare different device domains: {names}")
        (material / "server.pem").write_bytes(pki.pem_certs(server.cert, world.pki.intermediate.cert))
        (material / "server.key").write_bytes(pki.pem_private_key(server.key))
        (material / "server.key").chmod(0o600)
        self.gate = Gate(world, domains, material)
        self.addresses: dict[str, Address] = {}
        self._brokers: list[DeviceBroker] = []
        self._proxies: list[asyncio.Server] = []
        # amqtt logs every refused client and closed socket at ERROR: the log decides instead
        self._quiet = [(logging.getLogger(n), logging.getLogger(n).level) for n in ("amqtt", "transitions")]
        for logger, _ in self._quiet:
            logger.setLevel(logging.CRITICAL)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="device-endpoint", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(domains), self._loop).result(30)
        except BaseException:
            self.stop()
            raise

    @property
    def ca_pem(self) -> str:
        """What a device trusts for the endpoint's server certificate (the run's root)."""
        return self._root_pem

    async def _start(self, domains: dict[str, str]) -> None:
        for region, domain in sorted(domains.items()):
            broker = DeviceBroker({
                "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0", "ssl": True,
                                          # the files of the region's context (_create_ssl_context)
                                          "certfile": str(self.gate.material / "server.pem"),
                                          "keyfile": str(self.gate.material / "server.key")}},
                "plugins": {f"{__name__}.RegistryCheck": {}, f"{__name__}.PolicyCheck": {},
                            f"{__name__}.Routing": {}},
            }, gate=self.gate, region=region, loop=self._loop)
            await broker.start()
            self._brokers.append(broker)
            broker_port = broker._servers["default"].instance.sockets[0].getsockname()[1]
            route = (domain, MQTT_PORT)

            def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          route: tuple[str, int] = route, port: int = broker_port) -> None:
                self.gate.keep(asyncio.ensure_future(_tunnel(reader, writer, route, port)))

            proxy = await asyncio.start_server(connected, "127.0.0.1", 0)
            self._proxies.append(proxy)
            self.addresses[region] = Address(region, domain, MQTT_PORT, proxy.sockets[0].getsockname()[1],
                                             broker_port)

    async def _stop(self) -> None:
        for proxy in self._proxies:
            proxy.close()
        for task in list(self.gate.tasks):
            task.cancel()
        await asyncio.gather(*self.gate.tasks, return_exceptions=True)
        for broker in self._brokers:
            with contextlib.suppress(Exception):
                await broker.shutdown()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def endpoint(self, region: str) -> Endpoint:
        """What a device SDK connects to for `region` (the example devices take it)."""
        address = self.addresses[region]
        return Endpoint(address.host_name, self.ca_pem, address.port, ("127.0.0.1", address.proxy_port))

    def publish(self, region: str, topic: str, message: Any) -> None:
        """The cloud side's Publish (AWS IoT's data-plane API): delivered to every subscriber
        whose policy allows iot:Receive on the topic."""
        broker = next(b for b in self._brokers if b.region == region)
        asyncio.run_coroutine_threadsafe(
            broker.internal_message_broadcast(topic, json.dumps(message).encode(), 1), self._loop).result(10)

    def log(self, region: str) -> Log:
        return self.gate.logs[region]

    def wait_for_message(self, region: str, client_id: str, topic: str, timeout: float = 5.0) -> Message | None:
        """The publish `client_id` made on `topic`, once the endpoint accepted it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.log(region).messages:
                if message.client_id == client_id and message.topic == topic:
                    return message
            time.sleep(0.02)
        return None

    def connected(self, region: str, client_id: str) -> bool:
        """Whether `client_id` holds a connection to `region`'s endpoint (GetConnection)."""
        broker = next(b for b in self._brokers if b.region == region)
        found = broker._sessions.get(client_id)
        return found is not None and found[0].transitions.state == "connected" \
            and self.gate.refused.get(client_id) is not found[0]

    def disconnect(self, region: str, client_id: str) -> bool:
        """Close `client_id`'s connection to `region` (DeleteConnection); False: none."""
        if not self.connected(region, client_id):
            return False
        broker = next(b for b in self._brokers if b.region == region)
        session = broker._sessions[client_id][0]
        self._loop.call_soon_threadsafe(broker.close_session, session)
        deadline = time.monotonic() + 5  # answered once the connection is closed
        while self.connected(region, client_id) and time.monotonic() < deadline:
            time.sleep(0.01)
        return True

    def resolving(self, choose: Callable[[], str]) -> Endpoint:
        """The device domain through a proxy that asks `choose()` for the region at every
        connection: a device whose name resolution can change (the DNS emulation's)."""
        domain = next(iter(self.addresses.values())).host_name

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            port = self.addresses[choose()].broker_port
            self.gate.keep(asyncio.ensure_future(_tunnel(reader, writer, (domain, MQTT_PORT), port)))

        async def start() -> asyncio.Server:
            return await asyncio.start_server(connected, "127.0.0.1", 0)
        proxy = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self._proxies.append(proxy)
        return Endpoint(domain, self.ca_pem, MQTT_PORT, ("127.0.0.1", proxy.sockets[0].getsockname()[1]))

    def describe(self) -> str:
        return "device endpoints (MQTT over mutual TLS, amqtt): " + ", ".join(
            f"{a.region} {a.host_name} via 127.0.0.1:{a.proxy_port}" for a in self.addresses.values())

    def stop(self) -> None:
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self._directory.cleanup()
        for logger, level in self._quiet:
            logger.setLevel(level)


def declared_domains(world: World) -> dict[str, str]:
    """Region -> the device domain its DATA domain configuration serves."""
    found: dict[str, str] = {}
    for resource in world.declared(DOMAIN_TYPE):
        state = world.state(resource)
        if resource.region and state.get("serviceType", "DATA") == "DATA" and state.get("domainName"):
            found[resource.region] = str(state["domainName"])
    return found


@emulation("device_endpoint")
def start(world: World) -> DeviceEndpoints | None:
    domains = declared_domains(world)
    if not domains or IotData not in world.emulations:
        return None
    return DeviceEndpoints(world, domains)
