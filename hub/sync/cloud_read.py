"""Reading sessions back from the cloud table, to compare home and cloud.

Always a Query on `SensorIdIndex` with the range in the key condition
(`sensorId = :s AND startTime BETWEEN :from AND :to`): the seed put the range key in a
FilterExpression, which reads (and bills) every item of the sensor before filtering.
Items come back as plain records (mapping.decode_item: numbers as int/float, never Decimal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hub.sync.mapping import decode_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef

    from hub.config import CloudSection

SENSOR_INDEX = "SensorIdIndex"
KEY_CONDITION = "sensorId = :sensor AND startTime BETWEEN :from AND :to"
_LATEST = 2**53  # "no upper bound": any epoch second we will ever see is below it


def query_sessions(
    cloud: CloudSection,
    sensor_ids: Iterable[str],
    *,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    client: DynamoDBClient | None = None,
) -> list[dict[str, Any]]:
    """Sessions of `sensor_ids` in the cloud table, newest first, at most `limit`.

    `start`/`end` are inclusive epoch seconds compared on whole seconds (as the local
    store does). Every item of the hubs sharing the table is returned; `hubId` says whose.
    """
    if limit < 1:
        return []
    if client is None:
        from hub.sync.uploader import make_client  # noqa: PLC0415 - boto3 only when asked

        client = make_client(cloud)
    low = 0 if start is None else math.floor(start)
    high = _LATEST if end is None else math.floor(end)
    found: list[dict[str, Any]] = []
    for sensor_id in dict.fromkeys(sensor_ids):  # each sensor once, in the given order
        found.extend(_query_sensor(client, cloud.table, sensor_id, low=low, high=high, limit=limit))
    found.sort(key=lambda r: (r.get("startTime", 0), r.get("sessionId", "")), reverse=True)
    return found[:limit]


def _query_sensor(
    client: DynamoDBClient, table: str, sensor_id: str, *, low: int, high: int, limit: int
) -> list[dict[str, Any]]:
    request: QueryInputTypeDef = {
        "TableName": table,
        "IndexName": SENSOR_INDEX,
        "KeyConditionExpression": KEY_CONDITION,
        "ExpressionAttributeValues": {
            ":sensor": {"S": sensor_id},
            ":from": {"N": str(low)},
            ":to": {"N": str(high)},
        },
        "ScanIndexForward": False,  # newest first
    }
    records: list[dict[str, Any]] = []
    while len(records) < limit:
        request["Limit"] = min(limit - len(records), 1_000)
        response = client.query(**request)
        records.extend(decode_item(item) for item in response.get("Items", []))
        last = response.get("LastEvaluatedKey")
        if not last:
            break
        request["ExclusiveStartKey"] = last
    return records[:limit]
