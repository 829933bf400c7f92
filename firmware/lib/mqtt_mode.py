# MQTT mode (mains-powered, Wi-Fi): the seed topic contract (contracts section 3).
#
#   sensors/{sensorId}/motion, QoS 1: the motion JSON (motion_payload below): event,
#       sensorId, seq, timestamp (once NTP synced), late (when buffered), metadata
#   sensors/{sensorId}/status, QoS 1, retained: online (status_payload), last will offline
#
# `seq` counts motion events from 1 on every boot (the hub drops QoS-1 redeliveries by it,
# and resets its memory when the sensor announces itself online). `timestamp` is epoch
# seconds, present only once NTP has set the clock. Time is integer milliseconds throughout
# (the wall clock in ms, `ticks_diff` in ms): the ESP32's floats are single precision, and
# an epoch in seconds as a float is off by up to 64 s. Motion that happens while the broker is
# unreachable waits in a bounded queue (oldest dropped first, and counted) and is sent
# marked "late" after the reconnect, with the time it happened.
#
# The client is umqtt.simple-shaped (connect / publish / ping / check_msg / set_last_will);
# hw.mqtt_client wraps the real one, tests pass fakes or a paho-backed adapter. Reconnecting
# is ours rather than umqtt.robust's: robust retries with a fixed delay and blocks the PIR,
# this backs off 5 s -> 10 -> 20 -> 40 -> 60 s (capped, forever) while the caller's `sleep`
# keeps watching the PIR.
import json

from config import FIRMWARE_VERSION
from motion import ticks_diff, ticks_ms

MOTION_EVENT = "motion_detected"
QOS = 1
BACKOFF_INITIAL_S = 5
BACKOFF_CAP_S = 60


class RefusedError(OSError):
    """The broker refused the credentials: retrying soon will not help."""


def motion_payload(
    sensor_id,
    seq,
    timestamp=None,
    late=False,
    battery=None,
    rssi=None,
    version=None,
):
    """The motion JSON, byte for byte as the hub's `encode_seed_motion` writes it: compact,
    keys in a fixed order (MicroPython dicts do not keep insertion order, so no dumps of a
    dict here), absent values left out."""
    parts = [
        '"event":"' + MOTION_EVENT + '"',
        '"sensorId":' + json.dumps(sensor_id),
        '"seq":' + str(int(seq)),
    ]
    if timestamp is not None:
        parts.append('"timestamp":' + str(int(timestamp)))
    if late:
        parts.append('"late":true')
    meta = []
    if battery is not None:
        meta.append('"batteryLevel":' + str(int(battery)))
    if rssi is not None:
        meta.append('"signalStrength":' + str(int(rssi)))
    if version is not None:
        meta.append('"firmwareVersion":' + json.dumps(version))
    if meta:
        parts.append('"metadata":{' + ",".join(meta) + "}")
    return ("{" + ",".join(parts) + "}").encode()


def status_payload(online, version=None, dropped=0):
    parts = ['"status":"' + ("online" if online else "offline") + '"']
    if version is not None:
        parts.append('"firmwareVersion":' + json.dumps(version))
    if dropped:
        parts.append('"droppedEvents":' + str(int(dropped)))
    return ("{" + ",".join(parts) + "}").encode()


class Backoff:
    """5 s, 10 s, 20 s, 40 s, then 60 s forever; `reset()` after a successful connect.
    `rand` (0..1) adds up to `jitter` of the delay, so sensors that lost the same broker do
    not all come back in the same second; refused credentials jump to the cap."""

    def __init__(self, initial=BACKOFF_INITIAL_S, cap=BACKOFF_CAP_S, rand=None, jitter=0.2):
        self.initial = initial
        self.cap = cap
        self._rand = rand
        self._jitter = jitter
        self.attempt = 0

    def next(self, refused=False):
        growth = 1 << min(self.attempt, 16)
        delay = self.cap if refused else min(self.cap, self.initial * growth)
        self.attempt += 1
        if self._rand is not None:
            delay -= delay * self._jitter * self._rand()
        return delay

    def reset(self):
        self.attempt = 0


class EventQueue:
    """At most `size` events; when full the oldest goes, and `dropped` counts it."""

    def __init__(self, size):
        self.size = size
        self._items = []
        self.dropped = 0

    def __len__(self):
        return len(self._items)

    def push(self, item):
        if len(self._items) >= self.size:
            self._items.pop(0)
            self.dropped += 1
        self._items.append(item)

    def peek(self):
        return self._items[0]

    def pop(self):
        return self._items.pop(0)

    def items(self):
        return list(self._items)


class _Event:
    __slots__ = ("epoch_ms", "seq", "ticks")

    def __init__(self, seq, ticks, epoch_ms):
        self.seq = seq
        self.ticks = ticks  # when it happened, on the monotonic tick clock
        self.epoch_ms = epoch_ms  # wall clock then (int ms), or None before NTP


class MqttSensor:
    def __init__(
        self,
        cfg,
        client_factory,
        wall_clock=lambda: None,
        ticks=ticks_ms,
        metadata=lambda: (None, None),
        backoff=None,
        log=print,
    ):
        self.sensor_id = cfg.sensor_id
        mqtt = cfg.mqtt
        self._mqtt = mqtt
        prefix = mqtt["topicPrefix"]
        self.motion_topic = prefix + "/" + self.sensor_id + "/motion"
        self.status_topic = prefix + "/" + self.sensor_id + "/status"
        self._factory = client_factory
        self._wall = wall_clock  # epoch milliseconds (int), or None while NTP has not set it
        self._ticks = ticks
        self._metadata = metadata  # -> (battery %, Wi-Fi RSSI dBm), each may be None
        self.backoff = backoff if backoff is not None else Backoff()
        self._log = log
        self.queue = EventQueue(mqtt["queueSize"])
        self.seq = 0
        self.client = None
        self.connected = False
        self.connects = 0
        self._pinged_at = 0

    # --- motion ----------------------------------------------------------------------

    def motion(self, at_ticks=None):
        """One debounced motion event; True if it went out now, False if it was queued."""
        now = self._ticks()
        at = now if at_ticks is None else at_ticks
        self.seq += 1
        wall = self._wall()
        epoch_ms = None if wall is None else wall - ticks_diff(now, at)
        event = _Event(self.seq, at, epoch_ms)
        if self.connected:
            try:
                self._publish(event, late=False)
            except OSError as exc:
                self._lost("publish", exc)
            else:
                return True
        self.queue.push(event)
        return False

    def _timestamp(self, event):
        """Epoch seconds (int) of the event, or None without a wall clock."""
        epoch_ms = event.epoch_ms
        if epoch_ms is None:
            wall = self._wall()  # NTP may have set the clock since the event was queued
            if wall is None:
                return None
            epoch_ms = wall - ticks_diff(self._ticks(), event.ticks)
        return epoch_ms // 1000

    def _publish(self, event, late):
        battery, rssi = self._metadata()
        payload = motion_payload(
            self.sensor_id,
            event.seq,
            timestamp=self._timestamp(event),
            late=late,
            battery=battery,
            rssi=rssi,
            version=FIRMWARE_VERSION,
        )
        self.client.publish(self.motion_topic, payload, retain=False, qos=QOS)

    def flush(self):
        """Send what waited while the broker was unreachable, oldest first, marked late."""
        while len(self.queue):
            self._publish(self.queue.peek(), late=True)  # OSError leaves it queued
            self.queue.pop()

    # --- the connection --------------------------------------------------------------

    def connect(self):
        mqtt = self._mqtt
        client = self._factory(
            "spottypotty-" + self.sensor_id,
            mqtt["host"],
            mqtt["port"],
            mqtt["username"] or None,
            mqtt["password"] or None,
            mqtt["keepalive"],
        )
        client.set_last_will(self.status_topic, status_payload(online=False), retain=True, qos=QOS)
        self.client = client
        try:
            client.connect()
            dropped = self.queue.dropped
            online = status_payload(online=True, version=FIRMWARE_VERSION, dropped=dropped)
            client.publish(self.status_topic, online, retain=True, qos=QOS)
            self.connected = True
            self._pinged_at = self._ticks()
            self.connects += 1
            self.flush()
        except OSError as exc:
            self._lost("connect", exc)
            raise

    def connect_forever(self, sleep, prepare=None):
        """Try until connected, sleeping 5 s -> 60 s between attempts (forever).

        `prepare()` runs before each attempt (Wi-Fi up, NTP); `sleep(seconds)` should keep
        watching the PIR. Returns the number of failed attempts.
        """
        failures = 0
        while True:
            try:
                if prepare is not None:
                    prepare()
                self.connect()
            except OSError as exc:
                failures += 1
                delay = self.backoff.next(refused=isinstance(exc, RefusedError))
                self._log(
                    "mqtt: attempt %d failed (%s); next in %d s" % (failures, exc, int(delay))
                )
                sleep(delay)
            else:
                self.backoff.reset()
                self._log("mqtt: connected to %s:%d" % (self._mqtt["host"], self._mqtt["port"]))
                return failures

    def service(self):
        """Call often from the main loop: keepalive pings, and notice a dead connection."""
        if not self.connected:
            return
        try:
            if ticks_diff(self._ticks(), self._pinged_at) >= self._mqtt["keepalive"] * 500:
                self.client.ping()
                self._pinged_at = self._ticks()
            self.client.check_msg()
        except OSError as exc:
            self._lost("keepalive", exc)

    def _lost(self, where, exc):
        if self.connected:
            self._log("mqtt: connection lost during %s (%s)" % (where, exc))
        self.connected = False
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except OSError:
                pass


def main(cfg):
    """The device's main loop in MQTT mode (never returns)."""
    import hw  # noqa: PLC0415 - device only
    from motion import Debouncer, PirInput  # noqa: PLC0415

    wdt = hw.Watchdog()
    wifi = hw.Wifi(cfg.wifi)
    clock = hw.WallClock(cfg.mqtt["ntpHost"])
    battery = hw.Battery(cfg.battery)
    pir_cfg = cfg.pir
    debouncer = Debouncer(
        pir_cfg["debounceMs"],
        pir_cfg["repeatMs"],
        pir_cfg["warmupMs"] if hw.cold_boot() else 0,
        now=ticks_ms(),
    )
    pir = PirInput(hw.pir_pin(pir_cfg), debouncer)
    sensor = MqttSensor(
        cfg,
        hw.mqtt_client,
        wall_clock=clock.epoch_ms,
        metadata=lambda: (battery.percent(), wifi.rssi()),
        backoff=Backoff(rand=hw.random01),
    )

    def poll():
        wdt.feed()
        at = pir.poll()
        if at is not None:
            sensor.motion(at)

    def wait(seconds):
        hw.wait_polling(int(seconds * 1000), poll)

    def prepare():
        wifi.connect(poll)
        clock.sync()

    print(cfg.summary())
    while True:
        if not sensor.connected:
            sensor.connect_forever(wait, prepare)
        poll()
        sensor.service()
        hw.sleep_ms(20)
