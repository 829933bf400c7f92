# Boot: load config.json, choose the mode. Copied to the device's root; the modules live in
# /lib (on MicroPython's default sys.path). A broken config never deep-sleeps, so the REPL
# stays reachable; an unexpected error restarts the device after a pause.
import sys
import time

import config

CRASH_PAUSE_S = 10  # mains: pause, then reset (no tight crash loop)
CRASH_SLEEP_MS = 60000  # battery: deep sleep, then start over


def run():
    try:
        cfg = config.load()
    except config.ConfigError as exc:
        for problem in exc.problems:
            print("config.json:", problem)
        print("fix config.json (mpremote cp config.json :config.json), then reset")
        return None
    print("spottypotty sensor firmware", config.FIRMWARE_VERSION, "-", cfg.summary())
    if cfg.mode == "ble":
        import ble_mode  # noqa: PLC0415

        ble_mode.main(cfg)
    else:
        import mqtt_mode  # noqa: PLC0415

        mqtt_mode.main(cfg)
    return cfg


def restart():
    import machine  # noqa: PLC0415

    try:
        battery = config.load().mode == "ble"
    except config.ConfigError:
        battery = False
    if battery:
        machine.deepsleep(CRASH_SLEEP_MS)
    time.sleep(CRASH_PAUSE_S)
    machine.reset()


try:
    run()
except KeyboardInterrupt:
    print("stopped: REPL")
except Exception as exc:  # noqa: BLE001 - the device must never stay down
    sys.print_exception(exc)
    restart()
