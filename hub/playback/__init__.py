"""Playback: the `Player` port and its adapters (dry run now, Spotify next)."""

from hub.playback.port import PlaybackResult, Player

__all__ = ["PlaybackResult", "Player"]
