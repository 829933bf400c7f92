# A stand-in for MicroPython's `machine` on the unix port (tests only): what firmware/lib/hw.py
# touches, recording what the firmware asked for instead of touching hardware.
PWRON_RESET = 1
DEEPSLEEP_RESET = 4
EXT0_WAKE = 2
TIMER_WAKE = 4

state = {"reset_cause": DEEPSLEEP_RESET, "wake_reason": EXT0_WAKE, "pir": 1, "slept": []}
_rtc_memory = bytearray()


def reset_cause():
    return state["reset_cause"]


def wake_reason():
    return state["wake_reason"]


def deepsleep(ms=0):
    state["slept"].append(("deep", ms))


def lightsleep(ms=0):
    state["slept"].append(("light", ms))
    state["pir"] = 0  # the person left while the board dozed


def reset():
    raise SystemExit("machine.reset()")


class Pin:
    IN = 1
    PULL_DOWN = 2
    PULL_UP = 3
    IRQ_RISING = 1

    def __init__(self, number, mode=IN, pull=None):
        self.number = number

    def value(self):
        return state["pir"]

    def irq(self, trigger=None, handler=None):
        pass


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        pass

    def read_uv(self):
        return 2_000_000  # 4.0 V behind a 2:1 divider


class RTC:
    def memory(self, data=None):
        if data is None:
            return bytes(_rtc_memory)
        _rtc_memory[:] = data
        return None


class WDT:
    def __init__(self, timeout=0):
        pass

    def feed(self):
        pass
