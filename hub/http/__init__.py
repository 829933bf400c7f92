"""The local HTTP API and dashboard (`[http]`), served on the daemon's event loop.

Importing this package imports nothing heavy: aiohttp is loaded by `hub.http.server` only,
which `hub.http.wiring.serve` imports when the daemon starts the server.
"""
