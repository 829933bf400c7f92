# Run by a real MicroPython (the unix port), not CPython: `micropython checks.py FIRMWARE`.
# Every firmware module imports with only machine/network/bluetooth/esp32 faked (fakes/),
# the golden payloads come out byte for byte, the timing logic runs on the interpreter's
# own ticks_ms/ticks_diff, and motion timestamps stay integers. Prints one line per check
# and "ok N" at the end; any failure raises (non-zero exit).
import json
import sys
import time

FIRMWARE = sys.argv[1]
HERE = sys.argv[2]
sys.path[:0] = [FIRMWARE + "/lib", HERE + "/fakes"]

checks = 0


def check(condition, what):
    global checks  # noqa: PLW0603
    if not condition:
        raise AssertionError(what)
    checks += 1


for name in ("ble_mode", "bthome", "config", "counter", "hw", "motion", "mqtt_mode"):
    __import__(name)
    print("import", name)
    checks += 1

import bthome  # noqa: E402
import mqtt_mode  # noqa: E402
from motion import Debouncer  # noqa: E402

with open(FIRMWARE + "/golden_payloads.json") as f:
    golden = json.load(f)
sys.path.append(HERE)  # not host/: its cryptolib.py would shadow the built-in
from golden import firmware_outputs  # noqa: E402

for name, made, expected in firmware_outputs(golden, mqtt_mode, bthome):
    check(made == expected, name)
print("golden", len(golden["mqtt_motion"]), len(golden["mqtt_status"]), len(golden["bthome"]))

# The plain AES the WebAssembly heap measurement stands in for `cryptolib` agrees with the
# real one, byte for byte.
import cryptolib  # noqa: E402
from pure_aes import PureAes, ecb  # noqa: E402

for size in (16, 32):  # the built-in takes no 24-byte keys
    key = bytes(range(size))
    data = bytes(range(48))
    check(ecb(PureAes(key), data) == cryptolib.aes(key, 1).encrypt(data), "pure AES %d" % size)
print("pure AES agrees with cryptolib")

# The debouncer on the interpreter's own tick clock (ticks wrap on the device).
start = time.ticks_ms()
debouncer = Debouncer(2000, 60000, 0, now=start)
check(debouncer.update(1, time.ticks_add(start, 10), rose=True), "first edge")
check(not debouncer.update(1, time.ticks_add(start, 500), rose=True), "a bounce")
check(debouncer.update(1, time.ticks_add(start, 2600), rose=True), "after the debounce")
check(debouncer.update(1, time.ticks_add(start, 62600)), "still high: repeated")
print("debouncer on ticks_ms")


class _Broker:
    def __init__(self):
        self.published = []


class _Client:
    def __init__(self, broker):
        self.broker = broker

    def set_last_will(self, topic, msg, retain=False, qos=0):
        pass

    def connect(self):
        pass

    def publish(self, topic, msg, retain=False, qos=0):
        self.broker.published.append((topic, msg))

    def ping(self):
        pass

    def check_msg(self):
        pass

    def close(self):
        pass


import config  # noqa: E402

cfg = config.validate(
    {
        "sensorId": "bathroom_main",
        "wifi": {"ssid": "x", "password": "y"},
        "mqtt": {"host": "hub.local", "queueSize": 50},
    }
)
broker = _Broker()
ticks = [time.ticks_ms()]
wall = [1704412800000]
sensor = mqtt_mode.MqttSensor(
    cfg,
    lambda *_: _Client(broker),
    wall_clock=lambda: wall[0],
    ticks=lambda: ticks[0],
)
base = ticks[0]
for i in range(40):  # 150 ms apart, queued while offline
    ticks[0] = time.ticks_add(base, i * 150)
    wall[0] = 1704412800000 + i * 150
    sensor.motion()
# A float anywhere between the clock and the queue shows here (the ESP32's are 32-bit).
check(all(type(e.epoch_ms) is int for e in sensor.queue.items()), "integer epoch ms queued")
ticks[0] = time.ticks_add(base, 60000)
wall[0] = 1704412860000
sensor.connect()
stamps = []
for topic, msg in broker.published:
    if topic.endswith("/motion"):
        stamps.append(json.loads(msg)["timestamp"])
check(stamps == [1704412800 + (i * 150) // 1000 for i in range(40)], "timestamps: %r" % stamps)
check(all(type(s) is int for s in stamps), "integer timestamps")
print("40 queued timestamps exact on", sys.implementation.name)
print("ok", checks)
