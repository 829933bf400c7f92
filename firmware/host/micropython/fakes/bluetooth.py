# A stand-in for MicroPython's `bluetooth` on the unix port (tests only): records adverts.
adverts = []


class BLE:
    def active(self, on=None):
        return True

    def config(self, name):
        if name == "mac":
            return (0, b"\x54\x48\xe6\x8f\x80\xa5")
        raise ValueError(name)

    def gap_advertise(self, interval_us, adv_data=None, connectable=True):
        adverts.append(adv_data)
