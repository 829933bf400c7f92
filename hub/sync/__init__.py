"""Nightly cloud sync: session records (and motion events) to DynamoDB.

mapping (rows → items, pure) · outbox (what is due, marked after acceptance) · uploader
(the only boto3 user, imported lazily) · cloud_read (Query on SensorIdIndex).
"""

from hub.sync.cloud_read import query_sessions as query_cloud_sessions
from hub.sync.mapping import UnmappableRowError, decode_item, event_item, session_item
from hub.sync.outbox import Outbox
from hub.sync.uploader import (
    Backoff,
    Failure,
    Progress,
    SyncStoppedError,
    SyncSummary,
    Uploader,
    make_client,
    sync,
)

__all__ = [
    "Backoff",
    "Failure",
    "Outbox",
    "Progress",
    "SyncStoppedError",
    "SyncSummary",
    "UnmappableRowError",
    "Uploader",
    "decode_item",
    "event_item",
    "make_client",
    "query_cloud_sessions",
    "session_item",
    "sync",
]
