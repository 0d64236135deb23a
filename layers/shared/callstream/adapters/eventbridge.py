"""EventBridge publisher: every event callstream emits goes to the ``callstream`` bus."""

from __future__ import annotations

import json
import time
from typing import Any

from callstream.exceptions import SinkError

SOURCE = "callstream"


class EventBridgeBus:
    """Puts events with ``Source`` = ``callstream`` on one bus."""

    def __init__(self, client: Any, bus: str) -> None:
        """Use ``bus`` through a boto3 EventBridge client."""
        self._client = client
        self._bus = bus

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish one event, its detail stamped with ``published_at`` (epoch ms).

        EventBridge's own ``time`` has whole seconds; the console's freshness is measured from
        this stamp.

        Raises:
            SinkError: EventBridge refused the entry.
        """
        response = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(
                        {**detail, "published_at": int(time.time() * 1000)}, default=str
                    ),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise SinkError(f"EventBridge refused {detail_type}: {entry.get('ErrorMessage')}")
