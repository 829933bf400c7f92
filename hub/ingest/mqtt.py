"""The MQTT link: broker ⇄ hub. The only module that imports aiomqtt.

`MqttLink.run()` keeps one connection to the broker alive forever (until cancelled or
`publish_offline()`): connect with a persistent session (fixed client id,
`clean_session=False`, so QoS-1 motion published while the hub restarts is delivered when it
comes back) → subscribe (QoS 1) → publish retained `online` on `spottypotty/hub/status` (last
will: retained `offline`) → flush pending publishes → take messages: decode
(`mqtt_decode.TopicRouter`), drop QoS-1 redeliveries by `seq`, hand each on.

Reading is aiomqtt's public API: `async for message in client.messages`, decode, and
`await inbox.put(...)` — the runner's bounded inbox. QoS-1 messages are acknowledged by
the hub, not by paho on receipt (paho's `manual_ack`), and only once their rows are
committed: behind each group of up to ACK_BATCH messages the reader queues a `Receipt`,
which the runner settles after the commit that holds them. A kill at any moment therefore
loses nothing the broker accepted: what was not acknowledged is sent again after the
reconnect, and a redelivery of what was committed is dropped by its `seq` (the window is
rebuilt from SQLite at start, `remember_seqs`).

Back-pressure, so that a flood faster than the hub waits at the broker and the hub's memory
stays bounded: paho reads the socket and aiomqtt queues what it decodes as fast as it
comes, and mosquitto 2.0 does not keep to its in-flight window once acknowledgements flow
(measured), so neither stops by itself. `_PahoFlow` takes the socket out of the event
loop while aiomqtt's queue holds PAUSE_AT messages and puts it back at RESUME_AT: the
flood waits in the kernel's socket buffer and at the broker (`max_queued_messages` in
deploy/mosquitto bounds what the broker keeps).

On a broker error the link logs once per outage, sleeps a full-jitter capped backoff
(`uniform(0, min(cap, base * 2**attempt))`, cap 0.4 s: resubscribed within 0.5 s of a broker
restart; refused credentials wait 60 s), and makes a new `Client`. The attempt counter
resets after every successful connect.

The hub status topic always ends `offline`: `publish_offline()` sends what is pending, then
`offline`, then disconnects (and `run()` returns); cancelling `run()` publishes `offline` (best
effort, 1 s) before aiomqtt's graceful DISCONNECT, which would otherwise discard the will; a
killed process or a cut connection leaves it to the broker's last will.

`publish()` is fire-and-remember: it keeps only the latest payload per topic until the
connection's publisher task has sent it (QoS 1), now if connected, else after the next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Final

import aiomqtt
import aiomqtt.exceptions

from hub.config import HubConfig
from hub.errors import ParseError, TransientError
from hub.ingest.mqtt_decode import Inbound, SeqDeduplicator, StatusUpdate, TopicRouter
from hub.model import MotionEvent, Receipt
from hub.secrets import read_secret

_LOGGER = logging.getLogger(__name__)

HUB_STATUS_TOPIC: Final = "spottypotty/hub/status"
HA_STATUS_TOPIC: Final = "homeassistant/status"  # Home Assistant's birth and last will
ONLINE: Final = b"online"
OFFLINE: Final = b"offline"
QOS: Final = 1
KEEPALIVE: Final = 15  # seconds; the broker declares us gone (last will) after 1.5x this
CALL_TIMEOUT: Final = 10.0  # seconds for CONNACK / SUBACK / PUBACK
SHUTDOWN_TIMEOUT: Final = 1.5  # publish_offline: PUBACKs + disconnect, within the 5 s stop
# A LAN broker that comes back is found within the (jittered) BACKOFF_CAP, so the hub has
# resubscribed within 0.5 s of a broker restart: a refused TCP connect costs nothing.
# Refused credentials wait longer: only a person can fix them.
BACKOFF_BASE: Final = 0.2
BACKOFF_CAP: Final = 0.4
AUTH_REFUSED_BACKOFF: Final = 60.0
# Where the broker password may also come from (hub.secrets): env var, systemd credential.
CREDENTIAL_ENV: Final = "SPOTTYPOTTY_MQTT_PASSWORD"
CREDENTIAL_NAME: Final = "mqtt_password"
# aiomqtt's queue of decoded messages: reading the socket stops at PAUSE_AT, starts again
# at RESUME_AT (back-pressure, see the module docstring).
PAUSE_AT: Final = 500
RESUME_AT: Final = 100
ACK_BATCH: Final = 100  # messages acknowledged together at most (once committed)
UNKNOWN_SENSOR: Final = "unknown"  # counter label for topics of no configured sensor
PARSE_LOG_INTERVAL: Final = 10.0  # seconds between DEBUG lines about one sensor's bad payloads

# CONNACK refusals a retry cannot fix by itself: MQTT 3.1.1 return codes 4 (bad user name or
# password) and 5 (not authorised), and their MQTT 5 reason codes 134 and 135.
_AUTH_REFUSED: Final = frozenset({4, 5, 134, 135})
_MAX_EXPONENT: Final = 32  # 2**attempt stays a small float


class _PahoFlow:
    """What the hub controls of one connection's flow: when a message is acknowledged, and
    whether paho reads the socket (see the module docstring).

    aiomqtt 2.x passes neither paho's `manual_ack` through nor a way to stop reading, so
    this — the one place the hub reaches into aiomqtt — uses paho's public API on the
    paho client aiomqtt wraps (`manual_ack_set`, `ack`, `socket()`, `loop_read()`) and
    asyncio's `remove_reader` / `add_reader`. While paused, the socket's data waits in the
    kernel and at the broker; resumed, paho reads it as aiomqtt's own callback would
    have. Should aiomqtt ever stop registering the socket with the loop, nothing pauses
    (and nothing breaks). Made before the connection: paho must not acknowledge the
    first messages itself.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._paho = client._client  # noqa: SLF001 - see the class docstring
        self._paho.manual_ack_set(on=True)
        self._paused: int | None = None  # the socket's file descriptor while paused

    def acknowledge(self, mids: list[int]) -> None:
        """Acknowledge the QoS-1 messages `mids` together (one write of PUBACKs)."""
        if self._paho.is_connected():  # else the broker sends them again anyway
            for mid in mids:
                self._paho.ack(mid, QOS)

    def taken(self, queued: int) -> None:
        """The reader took a message and `queued` wait behind it."""
        if self._paused is None:
            if queued >= PAUSE_AT:
                sock = self._paho.socket()
                loop = asyncio.get_running_loop()
                if sock is not None and loop.remove_reader(sock.fileno()):
                    self._paused = sock.fileno()
        elif queued <= RESUME_AT:
            self.resume()

    def resume(self) -> None:
        """Read the socket again (also when the reader stops: PUBACKs must still come in)."""
        if self._paused is None:
            return
        sock = self._paho.socket()
        if sock is not None and sock.fileno() == self._paused:
            asyncio.get_running_loop().add_reader(self._paused, self._read)
        self._paused = None

    def _read(self) -> None:
        try:
            self._paho.loop_read()  # a broken connection ends in paho's on_disconnect
        except Exception:
            _LOGGER.debug("reading from the broker failed; disconnecting", exc_info=True)
            self._paho.disconnect()


def _as_bytes(payload: object) -> bytes:
    """aiomqtt's payload (bytes, bytearray, str, int, float or None) as bytes."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


def _auth_refused(error: aiomqtt.MqttError) -> bool:
    # Only a CONNACK refuses credentials: a publish failing because the connection just
    # dropped carries paho's MQTT_ERR_NO_CONN (4), the same number as "bad credentials".
    if not isinstance(error, aiomqtt.exceptions.MqttConnectError):
        return False
    rc = error.rc
    value = rc if isinstance(rc, int) else getattr(rc, "value", None)
    return value in _AUTH_REFUSED


def _only_mqtt_error(group: BaseExceptionGroup[BaseException]) -> aiomqtt.MqttError | None:
    """The first MqttError of a group made only of MqttErrors, else None."""
    matched, rest = group.split(aiomqtt.MqttError)
    if rest is not None or matched is None:
        return None
    leaf: BaseException = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf if isinstance(leaf, aiomqtt.MqttError) else None


class MqttLink:
    """Sensors' MQTT messages in (onto `inbox`), the hub's retained state out."""

    def __init__(
        self,
        config: HubConfig,
        inbox: asyncio.Queue[Inbound],
        *,
        client_id: str = "spottypotty-hub",
        clock: Callable[[], float] = time.time,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        if backoff_base <= 0 or backoff_cap <= 0:
            raise ValueError("backoff_base and backoff_cap must be positive")
        self._config = config
        self._inbox = inbox
        self._client_id = client_id
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._router = TopicRouter.from_config(config)
        self._dedup = SeqDeduplicator()
        self._known_sensors = frozenset(sensor.id for sensor in config.sensors)
        self._counters: Counter[str] = Counter()
        self._pending: dict[str, tuple[bytes, bool]] = {}
        self._retained: dict[str, bytes] = {}  # the latest retained payload per topic
        self._pending_changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._finished = asyncio.Event()  # set while run() is not running
        self._finished.set()
        self._session_started = False  # the current attempt got a CONNACK
        self._parse_logged_at: dict[str, float] = {}
        self._reading = True  # False once `stop_reading()`: no more messages decided
        self._reader: asyncio.Task[None] | None = None
        self._queued: Callable[[], int] = lambda: 0  # the current connection's backlog
        self.connected_event = asyncio.Event()
        self.ha_online = asyncio.Event()  # set when Home Assistant says "online": re-announce

    # --- state ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.connected_event.is_set()

    @property
    def backlog(self) -> int:
        """Messages aiomqtt has decoded that the reader has not taken yet (bounded by the
        back-pressure: about PAUSE_AT at most)."""
        return self._queued()

    @property
    def counters(self) -> Mapping[str, int]:
        """A read-only snapshot: `messages`, `connects`, `reconnects`, `connect_failures`,
        `parse_error:{sensor}`, `decode_failed:{sensor}` (a bug of ours),
        `duplicate:{sensor}` (`{sensor}` is a configured sensor id or
        `unknown`, so a flood of made-up topics cannot grow this without bound)."""
        return MappingProxyType(dict(self._counters))

    def remember_seqs(self, seqs: Mapping[str, list[int]]) -> None:
        """Start the redelivery window with each sensor's committed seqs, oldest first
        (`SensorRepository.recent_seqs`): a message committed but not acknowledged before
        the hub stopped comes again, and is not counted twice."""
        for sensor_id, values in seqs.items():
            for seq in values:
                self._dedup.is_duplicate(sensor_id, seq)

    # --- outbound ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = True) -> None:
        """Queue `payload` for `topic` (QoS 1); a newer payload replaces an unsent one.

        Retained payloads are also kept and sent again on every (re)connect: a broker that
        crashed without persistence has lost them, and the LAN must still see the state.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        self._pending[topic] = (data, retain)
        if retain:
            self._retained[topic] = data
        self._pending_changed.set()

    async def publish_offline(self) -> None:
        """Graceful shutdown: send what is pending, retained `offline` on the hub status
        topic, then disconnect; `run()` returns and does not reconnect.

        Waits (at most SHUTDOWN_TIMEOUT seconds) for `run()` to finish. When the link is not
        connected there is no one to tell: the broker already published the last will.
        """
        self._stop.set()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await self._finished.wait()
        except TimeoutError:
            _LOGGER.warning("MQTT link did not stop within %.1f s", SHUTDOWN_TIMEOUT)

    # --- the connection loop -------------------------------------------------------------

    async def run(self) -> None:
        """Connect, read and reconnect until cancelled or `publish_offline()`."""
        self._finished.clear()
        try:
            await self._run()
        finally:
            self._finished.set()

    async def _run(self) -> None:
        mqtt = self._config.mqtt
        attempt = 0
        outage_logged = False
        while not self._stop.is_set():
            password = await asyncio.to_thread(_broker_password, self._config)
            self._session_started = False
            try:
                await self._connection(password)
            except aiomqtt.MqttError as exc:
                error: aiomqtt.MqttError = exc
            except BaseExceptionGroup as group:
                found = _only_mqtt_error(group)
                if found is None:
                    raise
                error = found
            else:
                return  # stopped by publish_offline()
            if self._stop.is_set():
                return
            if self._session_started:  # this attempt connected: a new outage starts
                attempt = 0
                _LOGGER.warning(
                    "lost the connection to MQTT broker %s:%d (%s); reconnecting",
                    mqtt.host,
                    mqtt.port,
                    error,
                )
                outage_logged = True
            elif not outage_logged:
                _LOGGER.warning(
                    "cannot connect to MQTT broker %s:%d (%s); retrying in the background",
                    mqtt.host,
                    mqtt.port,
                    error,
                )
                outage_logged = True
            else:
                _LOGGER.debug("MQTT connect attempt %d failed: %s", attempt + 1, error)
            if not self._session_started:
                self._counters["connect_failures"] += 1
            delay = self._backoff(attempt, auth_refused=_auth_refused(error))
            attempt += 1
            try:
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            except TimeoutError:
                pass

    def _backoff(self, attempt: int, *, auth_refused: bool) -> float:
        """Full jitter, capped; refused credentials back off hard (they will not fix
        themselves, and a broker should not see a login storm)."""
        if auth_refused:
            return max(self._backoff_cap, AUTH_REFUSED_BACKOFF)
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** min(attempt, _MAX_EXPONENT))
        return self._rng.uniform(0, ceiling)

    async def _connection(self, password: str | None) -> None:
        """One connection, from connect to its end. Returns only when stopped."""
        mqtt = self._config.mqtt
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            username=mqtt.username or None,
            password=password if mqtt.username else None,
            identifier=self._client_id,
            clean_session=False,
            keepalive=KEEPALIVE,
            timeout=CALL_TIMEOUT,
            will=aiomqtt.Will(HUB_STATUS_TOPIC, OFFLINE, qos=QOS, retain=True),
            logger=logging.getLogger(f"{__name__}.aiomqtt"),
        )
        flow = _PahoFlow(client)
        async with client:
            self._session_started = True
            try:
                await self._established(client, flow)
            except asyncio.CancelledError:
                # Cancelled without publish_offline(): the graceful DISCONNECT on the way
                # out discards the last will, so say offline ourselves (best effort).
                if self.connected and not self._stop.is_set():
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(
                            HUB_STATUS_TOPIC, OFFLINE, qos=QOS, retain=True, timeout=1.0
                        )
                raise
            finally:
                self.connected_event.clear()

    async def _established(self, client: aiomqtt.Client, flow: _PahoFlow) -> None:
        mqtt = self._config.mqtt
        async with asyncio.TaskGroup() as group:
            # Reading starts first: what the broker kept for this session may come before
            # the SUBACK, and the back-pressure only works while the reader takes.
            if self._reading:
                self._reader = group.create_task(self._read(client, flow), name="mqtt-reader")
            filters = [*self._router.subscriptions(), HA_STATUS_TOPIC]
            granted = await client.subscribe([(topic, QOS) for topic in filters])
            for topic, code in zip(filters, granted, strict=False):
                value = getattr(code, "value", code)  # an int (MQTT 3.1.1) or a ReasonCode
                if isinstance(value, int) and value >= 0x80:  # noqa: PLR2004 - SUBACK failure
                    _LOGGER.warning("broker refused the subscription to %s", topic)
            await client.publish(HUB_STATUS_TOPIC, ONLINE, qos=QOS, retain=True)
            self._counters["connects"] += 1
            if self._counters["connects"] > 1:
                self._counters["reconnects"] += 1
            _LOGGER.info("connected to MQTT broker %s:%d", mqtt.host, mqtt.port)
            self.connected_event.set()
            for topic, data in self._retained.items():
                self._pending.setdefault(topic, (data, True))
            self._pending_changed.set()
            publisher = group.create_task(self._publish_pending(client), name="mqtt-publisher")
            await self._stop.wait()
            self.stop_reading()
            # Python 3.11's wait_for (inside aiomqtt's publish) can swallow a cancel that
            # lands as the PUBACK arrives (gh-86296): the publisher also checks _stop itself.
            self._pending_changed.set()
            publisher.cancel()
        # Stopping gracefully: what is pending goes out, then "offline" as the last word.
        await self._send_pending(client)
        await client.publish(HUB_STATUS_TOPIC, OFFLINE, qos=QOS, retain=True)
        self.connected_event.clear()
        _LOGGER.info("disconnecting from MQTT broker %s:%d", mqtt.host, mqtt.port)

    async def _publish_pending(self, client: aiomqtt.Client) -> None:
        while not self._stop.is_set():
            await self._pending_changed.wait()
            self._pending_changed.clear()
            if self._stop.is_set():
                return  # the graceful stop sends what is pending itself
            await self._send_pending(client)

    async def _send_pending(self, client: aiomqtt.Client) -> None:
        while self._pending:
            topic = next(iter(self._pending))
            payload, retain = self._pending.pop(topic)
            try:
                # No PUBACK deadline: under back-pressure the PUBACK waits behind the motion
                # the broker sent first; a dead connection still ends this (keepalive).
                await client.publish(topic, payload, qos=QOS, retain=retain, timeout=math.inf)
            except BaseException:
                # Not sent (or not acknowledged): keep it unless something newer came.
                self._pending.setdefault(topic, (payload, retain))
                raise

    def stop_reading(self) -> None:
        """Decide no more messages (shutdown); publishing goes on until `publish_offline()`."""
        self._reading = False
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def _read(self, client: aiomqtt.Client, flow: _PahoFlow) -> None:
        """Every message in arrival order into the inbox (waiting while it is full); each
        group of them is acknowledged once the runner has committed it (a `Receipt` queued
        behind the group). Reading the socket pauses while too many wait (back-pressure)."""
        self._queued = lambda: len(client.messages)
        # QoS-1 messages in the inbox with no receipt behind them yet: their ids only (a
        # flood keeps thousands waiting for their commit; the messages themselves can go).
        taken: list[int] = []
        try:
            async for message in client.messages:
                queued = len(client.messages)
                flow.taken(queued)
                value = self._accept(message)
                if value is not None:
                    try:
                        await self._inbox.put(value)
                    except asyncio.CancelledError:
                        # Not handed on, not acknowledged: the broker sends it again after
                        # the reconnect, and that redelivery must not count as a duplicate.
                        if isinstance(value, MotionEvent):
                            self._dedup.forget(value.sensor_id, value.seq)
                        raise
                if message.qos > 0:
                    taken.append(message.mid)
                if taken and (not queued or len(taken) >= ACK_BATCH or self._inbox.full()):
                    # One receipt per group: one write of PUBACKs once the group is
                    # committed, not one per message (a third of the hub's time under a
                    # flood when acknowledged singly).
                    await self._inbox.put(Receipt(partial(flow.acknowledge, taken)))
                    taken = []
        finally:
            # Stopping: a last receipt if there is room; else the broker sends what is
            # left again, and the seq window (kept in SQLite) knows what was committed.
            if taken:
                with contextlib.suppress(asyncio.QueueFull):
                    self._inbox.put_nowait(Receipt(partial(flow.acknowledge, taken)))
            flow.resume()
            self._queued = lambda: 0

    def _accept(self, message: aiomqtt.Message) -> Inbound | None:
        """The message decoded, or None when it is not for the inbox (counted, logged)."""
        self._counters["messages"] += 1
        topic = message.topic.value
        payload = _as_bytes(message.payload)
        if topic == HA_STATUS_TOPIC:
            if payload.strip() == ONLINE:
                self.ha_online.set()
            return None
        try:
            value = self._router.decode(
                topic, payload, self._clock(), retained=bool(message.retain)
            )
        except ParseError as exc:
            self._parse_error(topic, exc)
            return None
        except Exception:
            # Our bug, not the sensor's: drop this message (it is acknowledged, so the
            # broker will not redeliver it into a crash loop) and keep ingesting.
            label = self._label(self._sensor_of(topic))
            self._counters[f"decode_failed:{label}"] += 1
            _LOGGER.exception("could not decode a message on %r", topic[:120])
            return None
        if isinstance(value, StatusUpdate):
            # A live "online" (not a retained replay) means the sensor (re)booted: its
            # seq counter starts again.
            if value.online and not message.retain:
                self._dedup.reset(value.sensor_id)
        elif (
            isinstance(value, MotionEvent)
            and value.sensor_id in self._known_sensors  # the rest is dropped anyway
            and self._dedup.is_duplicate(value.sensor_id, value.seq)
        ):
            self._counters[f"duplicate:{self._label(value.sensor_id)}"] += 1
            _LOGGER.debug("dropped redelivery of %s seq %s", value.sensor_id, value.seq)
            return None
        return value

    def _sensor_of(self, topic: str) -> str:
        route = self._router.foreign.get(topic)
        if route is not None:
            return route.sensor_id
        head = self._router.prefix + "/"
        return topic[len(head) :].split("/", 1)[0] if topic.startswith(head) else ""

    def _label(self, sensor_id: str) -> str:
        return sensor_id if sensor_id in self._known_sensors else UNKNOWN_SENSOR

    def _parse_error(self, topic: str, exc: ParseError) -> None:
        label = self._label(self._sensor_of(topic))
        key = f"parse_error:{label}"
        self._counters[key] += 1
        now = time.monotonic()
        last = self._parse_logged_at.get(label)
        if last is None or now - last >= PARSE_LOG_INTERVAL:
            self._parse_logged_at[label] = now
            _LOGGER.debug(
                "dropped malformed message on %r (%d so far for %s): %s",
                topic[:120],
                self._counters[key],
                label,
                exc,
            )


# --- one-shot clients for the CLI and the demo ----------------------------------------------


@contextlib.asynccontextmanager
async def _one_shot(
    config: HubConfig, client_id: str | None = None
) -> AsyncIterator[aiomqtt.Client]:
    """A short-lived client with the hub's broker credentials; an unreachable broker is a
    TransientError naming it."""
    password = await asyncio.to_thread(_broker_password, config)
    try:
        async with aiomqtt.Client(
            config.mqtt.host,
            config.mqtt.port,
            identifier=client_id,
            username=config.mqtt.username or None,
            password=password,
            timeout=10,
        ) as client:
            yield client
    except aiomqtt.MqttError as exc:
        where = f"{config.mqtt.host}:{config.mqtt.port}"
        raise TransientError(f"cannot reach the broker at {where}: {exc}") from exc


async def publish_messages(
    config: HubConfig,
    messages: list[tuple[str, bytes, bool]],
    *,
    client_id: str | None = None,
    interval: float = 0.0,
) -> None:
    """Connect, publish each (topic, payload, retain) at QoS 1 `interval` s apart, disconnect."""
    async with _one_shot(config, client_id) as client:
        for index, (topic, payload, retain) in enumerate(messages):
            if index and interval > 0:
                await asyncio.sleep(interval)
            await client.publish(topic, payload, qos=QOS, retain=retain)


async def watch(
    config: HubConfig, topic_filter: str, deliver: Callable[[str, bytes], None]
) -> None:
    """Subscribe to `topic_filter` and hand every message to `deliver` until cancelled."""
    async with _one_shot(config) as client:
        await client.subscribe(topic_filter, qos=QOS)
        async for message in client.messages:
            deliver(str(message.topic), _as_bytes(message.payload))


async def read_retained(
    config: HubConfig, topics: list[str], *, wait: float = 1.0
) -> dict[str, bytes]:
    """The retained payloads of `topics` (what the broker holds now), waiting at most
    `wait` seconds for them."""
    found: dict[str, bytes] = {}
    async with _one_shot(config) as client:
        for topic in topics:
            await client.subscribe(topic, qos=QOS)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if message.retain:
                        found[str(message.topic)] = _as_bytes(message.payload)
                    if len(found) == len(topics):
                        break
    return found


def _broker_password(config: HubConfig) -> str | None:
    """Read per connection attempt, so a rotated password file is picked up."""
    if not config.mqtt.username:
        return None
    return read_secret(CREDENTIAL_NAME, env=CREDENTIAL_ENV, path=config.mqtt.password_file)
