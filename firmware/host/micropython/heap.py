# Run by a real MicroPython: `micropython -X heapsize=N heap.py LIBDIR HERE WORKDIR`, with
# LIBDIR holding the firmware's .mpy files. One encrypted BLE wake (PIR wake -> burst ->
# deep sleep) through ble_mode.main with only machine/bluetooth/esp32 faked. Prints the
# heap in use after the imports and at the end; a MemoryError means N was too small.
import gc
import os
import sys

LIB, HERE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [LIB, HERE + "/fakes"]
os.chdir(WORK)
gc.collect()
base = gc.mem_alloc()
import ble_mode  # noqa: E402
import bluetooth  # noqa: E402
import config  # noqa: E402
import machine  # noqa: E402

cfg = config.validate(
    {
        "sensorId": "bathroom_main",
        "ble": {"bindkey": "231d39c1d7cc1ab1aee224cd096db932"},
        "battery": {"adcPin": 35},
    }
)
gc.collect()
loaded = gc.mem_alloc() - base
ble_mode.main(cfg)
sent = [bytes(advert) for advert in bluetooth.adverts if advert is not None]
assert len(sent) == 1, sent
assert machine.state["slept"][-1][0] == "deep"
print("imports", loaded, "wake", gc.mem_alloc() - base, "advert", sent[0].hex())
