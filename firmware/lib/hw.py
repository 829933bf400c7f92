# The thin hardware layer: everything that touches machine, network, bluetooth, umqtt,
# ntptime and esp32 lives here, so the logic modules run under CPython with fakes.
# Only the device imports this module (main.py, mqtt_mode.main, ble_mode.main); imports of
# MicroPython modules are inside the functions that need them.
import time

try:
    from time import sleep_ms, ticks_diff, ticks_ms
except ImportError:  # CPython: importable for mpy-cross and docs, never used on the host

    def sleep_ms(ms):
        time.sleep(ms / 1000)

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


MQTT_SOCKET_TIMEOUT_S = 5  # a dead broker must not block the PIR loop forever
_EPOCH_2000 = 946684800  # seconds from 1970 to 2000: some ports count from 2000
_SANE_EPOCH = 1704067200  # 2024-01-01: an RTC before this was never set by NTP


def wait_polling(ms, poll, step_ms=50):
    """Sleep `ms` while calling `poll()` every `step_ms` (the PIR is watched meanwhile)."""
    start = ticks_ms()
    while ticks_diff(ticks_ms(), start) < ms:
        poll()
        sleep_ms(step_ms)


def random01():
    import random  # noqa: PLC0415

    return random.getrandbits(16) / 65536


def cold_boot():
    """True after power-on or a hard reset; False when waking from deep sleep."""
    import machine  # noqa: PLC0415

    return machine.reset_cause() != machine.DEEPSLEEP_RESET


def wake_reason():
    """'pir' (ext0), 'timer', or 'cold' (anything else: power-on, reset, crash)."""
    import machine  # noqa: PLC0415

    if machine.reset_cause() != machine.DEEPSLEEP_RESET:
        return "cold"
    reason = machine.wake_reason()
    if reason == machine.EXT0_WAKE:
        return "pir"
    if reason == machine.TIMER_WAKE:
        return "timer"
    return "cold"


class Watchdog:
    def __init__(self, timeout_ms=120000):
        import machine  # noqa: PLC0415

        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()


# --- the PIR ---------------------------------------------------------------------------


class _Pir:
    def __init__(self, pin):
        self._pin = pin

    def value(self):
        return self._pin.value()

    def irq(self, handler):
        from machine import Pin  # noqa: PLC0415

        self._pin.irq(trigger=Pin.IRQ_RISING, handler=handler)


def pir_pin(pir_cfg):
    from machine import Pin  # noqa: PLC0415

    pull = {"down": Pin.PULL_DOWN, "up": Pin.PULL_UP, "none": None}[pir_cfg["pull"]]
    return _Pir(Pin(pir_cfg["pin"], Pin.IN, pull))


def pir_level(pin_number):
    from machine import Pin  # noqa: PLC0415

    return Pin(pin_number, Pin.IN).value()


def deep_sleep(ms=None, wake_pin=None):
    """Deep sleep; wake on the PIR going high (ext0) and/or after `ms`. Never returns."""
    import esp32  # noqa: PLC0415
    import machine  # noqa: PLC0415

    if wake_pin is not None:
        pin = machine.Pin(wake_pin, machine.Pin.IN)
        esp32.wake_on_ext0(pin=pin, level=esp32.WAKEUP_ANY_HIGH)
    if ms is None:
        machine.deepsleep()
    machine.deepsleep(ms)


def light_sleep(ms):
    import machine  # noqa: PLC0415

    machine.lightsleep(ms)


# --- battery ---------------------------------------------------------------------------


class Battery:
    """Battery level in % from an ADC pin behind a divider; None without `adc_pin`."""

    def __init__(self, battery_cfg):
        self._cfg = battery_cfg
        self._adc = None
        if battery_cfg["adcPin"] is not None:
            from machine import ADC, Pin  # noqa: PLC0415

            self._adc = ADC(Pin(battery_cfg["adcPin"]), atten=ADC.ATTN_11DB)

    def millivolts(self):
        if self._adc is None:
            return None
        return self._adc.read_uv() * self._cfg["divider"] // 1000

    def percent(self):
        mv = self.millivolts()
        if mv is None:
            return None
        empty, full = self._cfg["emptyMv"], self._cfg["fullMv"]
        return max(0, min(100, (mv - empty) * 100 // (full - empty)))


# --- Wi-Fi and time --------------------------------------------------------------------


class Wifi:
    def __init__(self, wifi_cfg):
        import network  # noqa: PLC0415

        self._cfg = wifi_cfg
        self._wlan = network.WLAN(network.STA_IF)

    def connect(self, poll=None):
        """Join the network (watching the PIR through `poll`); OSError on timeout."""
        wlan = self._wlan
        if wlan.isconnected():
            return
        wlan.active(True)
        wlan.connect(self._cfg["ssid"], self._cfg["password"])
        start = ticks_ms()
        while not wlan.isconnected():
            if ticks_diff(ticks_ms(), start) > self._cfg["connectTimeoutMs"]:
                wlan.disconnect()
                raise OSError("Wi-Fi: no connection to " + self._cfg["ssid"])
            if poll is not None:
                poll()
            sleep_ms(100)

    def rssi(self):
        try:
            return self._wlan.status("rssi") if self._wlan.isconnected() else None
        except (OSError, ValueError):
            return None


def epoch_offset_ms(gmtime=time.gmtime):
    """What to add to the port's `time` to count from 1970: the ESP32 port (before
    MicroPython 1.22) counts from 2000."""
    return _EPOCH_2000 * 1000 if gmtime(0)[0] == 2000 else 0  # noqa: PLR2004


def port_time_ms():
    """The port's wall clock in integer milliseconds: `time_ns` where there is one, never
    a float (`time.time()` is a float on the unix port, and floats are 32-bit on the ESP32)."""
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1_000_000
    return int(time.time()) * 1000


class WallClock:
    """Epoch milliseconds (1970, an int) once NTP has set the RTC, else None."""

    def __init__(self, ntp_host, now_ms=port_time_ms, offset_ms=None):
        self._host = ntp_host
        self._now_ms = now_ms
        self._offset_ms = epoch_offset_ms() if offset_ms is None else offset_ms
        self.synced = False

    def sync(self):
        if not self._host or self.synced:
            return self.synced
        try:
            import ntptime  # noqa: PLC0415

            ntptime.host = self._host
            ntptime.settime()
            self.synced = True
        except (OSError, OverflowError, IndexError):
            pass  # no NTP yet: timestamps stay out of the payload, the hub uses its clock
        return self.synced

    def epoch_ms(self):
        now = self._now_ms() + self._offset_ms
        if not self.synced and now < _SANE_EPOCH * 1000:
            return None
        return now


# --- MQTT ------------------------------------------------------------------------------


class _Umqtt:
    """umqtt.simple behind the interface mqtt_mode uses, with every error as OSError."""

    def __init__(self, client):
        self._c = client

    def _call(self, fn, *args, **kwargs):
        from umqtt.simple import MQTTException  # noqa: PLC0415

        try:
            return fn(*args, **kwargs)
        except MQTTException as exc:
            import mqtt_mode  # noqa: PLC0415

            code = exc.args[0] if exc.args else 0
            if code in (4, 5):  # CONNACK: bad user name or password / not authorised
                raise mqtt_mode.RefusedError("broker refused the credentials (%d)" % code) from None
            raise OSError("MQTT protocol error %r" % (code,)) from None

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self._c.set_last_will(topic, msg, retain, qos)

    def connect(self):
        self._call(self._c.connect, True)
        self._c.sock.settimeout(MQTT_SOCKET_TIMEOUT_S)

    def publish(self, topic, msg, retain=False, qos=0):
        self._call(self._c.publish, topic, msg, retain, qos)

    def ping(self):
        self._call(self._c.ping)

    def check_msg(self):
        self._c.sock.setblocking(False)
        try:
            self._call(self._c.check_msg)
        finally:
            if self._c.sock is not None:
                self._c.sock.settimeout(MQTT_SOCKET_TIMEOUT_S)

    def close(self):
        sock = self._c.sock
        if sock is not None:
            sock.close()


class TimedSockets:
    """Stands in for the `socket` module inside umqtt.simple: every socket it makes gets
    MQTT_SOCKET_TIMEOUT_S before `connect()`, so a broker that accepts TCP but never sends
    CONNACK raises OSError (ETIMEDOUT) instead of blocking the PIR loop until the watchdog
    resets the board. (umqtt.simple's own `connect()` takes no timeout in every version.)"""

    def __init__(self, real, timeout_s=MQTT_SOCKET_TIMEOUT_S):
        self._real = real
        self._timeout_s = timeout_s

    def socket(self, *args):
        sock = self._real.socket(*args)
        sock.settimeout(self._timeout_s)
        return sock

    def getaddrinfo(self, *args):
        return self._real.getaddrinfo(*args)


def timed(module):
    """Give `module` (umqtt.simple) timed sockets, once."""
    if not isinstance(module.socket, TimedSockets):
        module.socket = TimedSockets(module.socket)
    return module


def mqtt_client(client_id, host, port, user, password, keepalive):
    import umqtt.simple  # noqa: PLC0415 - frozen into ESP32 builds

    simple = timed(umqtt.simple)
    return _Umqtt(simple.MQTTClient(client_id, host, port, user, password, keepalive))


# --- BLE -------------------------------------------------------------------------------


class Ble:
    def __init__(self):
        import bluetooth  # noqa: PLC0415

        self._ble = bluetooth.BLE()
        self._ble.active(True)

    def mac(self):
        """The public address, as six bytes in the order it is written (54:48:...)."""
        return bytes(self._ble.config("mac")[1])

    def advertise(self, adv_data, interval_us):
        self._ble.gap_advertise(interval_us, adv_data=adv_data, connectable=False)

    def stop(self):
        self._ble.gap_advertise(None)
        self._ble.active(False)


# --- persistence -----------------------------------------------------------------------


class RtcSlot:
    """RTC slow memory: survives deep sleep, lost on power-off."""

    def __init__(self):
        import machine  # noqa: PLC0415

        self._rtc = machine.RTC()

    def read(self):
        return bytes(self._rtc.memory())

    def write(self, data):
        self._rtc.memory(data)
