"""SpottyPottySense hub: motion sensors in, Spotify sessions out, all local."""

__version__ = "0.1.0"
