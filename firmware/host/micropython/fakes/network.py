# A stand-in for MicroPython's `network` on the unix port (tests only).
STA_IF = 0


class WLAN:
    def __init__(self, interface):
        self._up = False

    def isconnected(self):
        return self._up

    def active(self, on=None):
        return True

    def connect(self, ssid, password):
        self._up = True

    def disconnect(self):
        self._up = False

    def status(self, what=None):
        return -50
