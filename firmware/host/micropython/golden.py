# What the firmware makes from each case of golden_payloads.json, beside what the file says
# it must make: one list, checked under CPython (tests/firmware/test_firmware_golden.py)
# and under a real MicroPython (host/micropython/checks.py). Runs on both; host-only.


def firmware_outputs(golden, mqtt_mode, bthome):
    """[(case name, made, expected)] for every MQTT motion, MQTT status and BTHome case."""
    out = []
    for case in golden["mqtt_motion"]:
        fw = case["firmware"]
        made = mqtt_mode.motion_payload(
            fw["sensor_id"],
            fw["seq"],
            fw["timestamp"],
            fw["late"],
            fw["battery"],
            fw["rssi"],
            fw["firmware_version"],
        )
        out.append((case["name"], made, case["payload"].encode()))
    statuses = [
        mqtt_mode.status_payload(online=True, version="1.0.0"),
        mqtt_mode.status_payload(online=True, version="1.0.0", dropped=3),
        mqtt_mode.status_payload(online=False),
    ]
    if len(statuses) != len(golden["mqtt_status"]):
        raise ValueError("golden_payloads.json: one status case per status_payload call here")
    for case, made in zip(golden["mqtt_status"], statuses):
        out.append((case["name"], made, case["payload"].encode()))
    for case in golden["bthome"]:
        fw = case["firmware"]
        payload = bthome.objects(fw["counter"] & 0xFF, motion=fw["motion"], battery=fw["battery"])
        key = bytes.fromhex(case["bindkey"]) if case["bindkey"] else None
        mac = bthome.parse_mac(case["address"]) if key else None
        data = bthome.service_data(
            payload, bthome.VERSION_2 | bthome.TRIGGER_BASED, key, mac, fw["counter"]
        )
        out.append((case["name"], data, bytes.fromhex(case["service_data"])))
    return out
