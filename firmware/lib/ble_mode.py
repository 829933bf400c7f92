# BLE mode (battery): sleep, wake on the PIR, advertise one BTHome v2 burst, sleep again.
#
# Every wake that advertises takes the next value of the persistent counter: its low byte
# is the BTHome packet id (so receivers, and BlueZ, which drops identical adverts, see a new
# packet every time) and, with a bindkey, the whole value is the AES-CCM counter, which
# therefore keeps increasing across deep sleep, resets and battery swaps.
#
# Wake reasons and what they do (`plan`):
#   pir    -> motion detected
#   timer  -> PIR still high: motion detected again (someone is still there);
#             PIR low: "clear" if report_clear, else nothing
#   cold   -> power-on/reset: motion if the PIR is high, else a hello (packet id + battery)
#             so the hub can see the sensor while it is being paired
# Then: PIR high -> deep sleep with a timer only (ext0 on a high level would fire at once);
# PIR low -> deep sleep until the PIR rises (ext0), plus a timer when a "clear" is owed.
from bthome import TRIGGER_BASED, VERSION_2, advertisement, objects, parse_bindkey, service_data

SETTLE_MS = 3000  # after the burst, wait up to this long (light sleep) for the PIR to drop
SETTLE_STEP_MS = 100
COLD_BOOT_GRACE_MS = 3000  # time to press Ctrl-C (mpremote) before the first deep sleep

MOTION = True
CLEAR = False
HELLO = None


def plan(wake, pir_high, report_clear):
    """(advertise?, motion value) for a wake reason and the PIR level."""
    if wake == "pir":
        return True, MOTION
    if wake == "timer":
        if pir_high:
            return True, MOTION
        return report_clear, CLEAR
    return True, MOTION if pir_high else HELLO


def sleep_after(pir_high, advertised_motion, report_clear, recheck_ms):
    """(timer ms or None, wake on the PIR?) for the deep sleep that follows."""
    if pir_high:
        return recheck_ms, False
    if report_clear and advertised_motion:
        return recheck_ms, True
    return None, True


class BleSensor:
    def __init__(
        self, cfg, counter, radio, pir_level, battery, sleep_ms, light_sleep_ms=None, mac=None
    ):
        ble = cfg.ble
        self._ble = ble
        self._counter = counter
        self._radio = radio  # .advertise(adv bytes, interval_us), .stop(), .mac()
        self._pir_level = pir_level  # () -> 0/1
        self._battery = battery  # () -> % or None
        self._sleep_ms = sleep_ms  # while advertising (the radio must keep running)
        self._light_sleep_ms = light_sleep_ms or sleep_ms  # while waiting, radio off
        self._bindkey = parse_bindkey(ble["bindkey"]) if ble["bindkey"] else None
        self._mac = mac

    def frame(self, motion):
        """The next advertisement (bumps the persistent counter)."""
        count = self._counter.next()
        payload = objects(count & 0xFF, motion=motion, battery=self._battery())
        if self._bindkey is None:
            data = service_data(payload, VERSION_2 | TRIGGER_BASED)
        else:
            mac = self._mac if self._mac is not None else self._radio.mac()
            data = service_data(payload, VERSION_2 | TRIGGER_BASED, self._bindkey, mac, count)
        return advertisement(data, self._ble["name"])

    def burst(self, motion):
        adv = self.frame(motion)
        self._radio.advertise(adv, self._ble["intervalMs"] * 1000)
        self._sleep_ms(self._ble["burstMs"])
        self._radio.stop()
        return adv

    def settle(self, limit_ms=SETTLE_MS, step_ms=SETTLE_STEP_MS):
        """Wait (briefly) for the PIR to drop; True if it is still high."""
        waited = 0
        while self._pir_level() and waited < limit_ms:
            self._light_sleep_ms(step_ms)
            waited += step_ms
        return bool(self._pir_level())

    def handle(self, wake):
        """One wake: maybe a burst; answers (timer ms or None, wake on PIR?) for the sleep."""
        advertise, motion = plan(wake, bool(self._pir_level()), self._ble["reportClear"])
        if advertise:
            self.burst(motion)
        still_high = self.settle()
        return sleep_after(
            pir_high=still_high,
            advertised_motion=advertise and motion is MOTION,
            report_clear=self._ble["reportClear"],
            recheck_ms=self._ble["recheckMs"],
        )


class _LazyRadio:
    """Start the Bluetooth stack only on a wake that advertises (it costs ~100 ms awake)."""

    def __init__(self, make):
        self._make = make
        self._radio = None

    def _get(self):
        if self._radio is None:
            self._radio = self._make()
        return self._radio

    def advertise(self, adv, interval_us):
        self._get().advertise(adv, interval_us)

    def stop(self):
        if self._radio is not None:
            self._radio.stop()

    def mac(self):
        return self._get().mac()


def main(cfg):
    """The device's BLE mode: one wake, then deep sleep (never returns)."""
    import hw  # noqa: PLC0415 - device only
    from counter import FileSlot, PersistentCounter  # noqa: PLC0415

    wake = hw.wake_reason()
    pin = cfg.pir["pin"]
    battery = hw.Battery(cfg.battery)
    counter = PersistentCounter(hw.RtcSlot(), FileSlot("counter.bin"))
    sensor = BleSensor(
        cfg,
        counter,
        _LazyRadio(hw.Ble),
        lambda: hw.pir_level(pin),
        battery.percent,
        hw.sleep_ms,
        hw.light_sleep,
    )
    timer_ms, on_pir = sensor.handle(wake)
    if wake == "cold":
        print("deep sleep in %d ms: Ctrl-C now for the REPL" % COLD_BOOT_GRACE_MS)
        hw.sleep_ms(COLD_BOOT_GRACE_MS)
    hw.deep_sleep(timer_ms, pin if on_pir else None)
