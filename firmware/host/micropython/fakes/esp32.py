# A stand-in for MicroPython's `esp32` on the unix port (tests only).
WAKEUP_ANY_HIGH = 1
wakes = []


def wake_on_ext0(pin=None, level=None):
    wakes.append((pin, level))
