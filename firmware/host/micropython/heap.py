# Run by a real MicroPython: `micropython -X heapsize=N heap.py LIBDIR HERE WORKDIR`, with
# LIBDIR holding the firmware's .mpy files. One encrypted BLE wake (PIR wake -> burst ->
# deep sleep) through ble_mode.main with only machine/bluetooth/esp32 faked. The fakes are
# imported first (built into the device's firmware, they take no heap there), then the
# heap in use is printed: `base` before the firmware, `imports` after loading it (with
# the garbage of loading), `live` after the wake and a collection. A MemoryError means N
# was too small: the least N that runs, less `base`, is what the wake needs. With a 4th
# argument `nogc` the collector stays off and `allocated` is every byte the imports and
# the wake allocated. (heap32.mjs runs this on the 32-bit WebAssembly port, with the
# arguments in `ARGS`.)
import gc
import os
import sys

try:
    ARGV = ARGS
except NameError:
    ARGV = sys.argv[1:]
LIB, HERE, WORK = ARGV[:3]
NO_GC = ARGV[3:] == ["nogc"]
sys.path[:0] = [LIB, HERE + "/fakes"]
os.chdir(WORK)
import bluetooth  # noqa: E402
import esp32  # noqa: E402, F401
import machine  # noqa: E402

try:
    import cryptolib
except ImportError:
    sys.path.insert(0, HERE + "/wasm")
    import cryptolib  # noqa: F401
gc.collect()
base = gc.mem_alloc()
if NO_GC:
    gc.disable()
import ble_mode  # noqa: E402
import config  # noqa: E402

cfg = config.validate(
    {
        "sensorId": "bathroom_main",
        "ble": {"bindkey": "231d39c1d7cc1ab1aee224cd096db932"},
        "battery": {"adcPin": 35},
    }
)
loaded = gc.mem_alloc() - base
ble_mode.main(cfg)
allocated = gc.mem_alloc() - base
gc.enable()
gc.collect()
sent = [bytes(advert) for advert in bluetooth.adverts if advert is not None]
assert len(sent) == 1, sent
assert machine.state["slept"][-1][0] == "deep"
gc.collect()
live = gc.mem_alloc() - base
print("base", base, "imports", loaded, "live", live, "advert", sent[0].hex())
if NO_GC:
    print("allocated", allocated)
