"""DynamoDB adapters: the stream registry, the once-store and the WebSocket token leases.

The once-store holds nonces and dedupe keys; a lease allows one live connection per token.

Both take a boto3 DynamoDB *client* and a table name (injected: AWS, or moto locally). Writes
are single conditional ``UpdateItem``/``PutItem`` calls, so concurrent writers (start API,
stream server, callbacks) never lose each other's fields and the state never moves backwards.
"""

from __future__ import annotations

import time
from typing import Any, Literal, overload

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from callstream.ports import CallsWanted, Lease
from callstream.registry import FINAL_RANK, RANK, TTL_S, State, StreamItem, from_item, rank
from callstream.vocabulary import UNKNOWN_CALL

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _ended_at(state: State, at: str | None) -> dict[str, Any]:
    """``stopped_at`` for a state that ends a stream (written with the change that ends it)."""
    return {"stopped_at": at} if state in ("stopped", "failed") else {}


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed attribute values) as plain Python values."""
    return {k: _plain(_deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: make them int/float again."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


class DynamoRegistry:
    """The stream registry on a DynamoDB table (pk ``stream_id``; GSI ``by_call``)."""

    def __init__(self, client: Any, table: str, index: str = "by_call") -> None:
        """Use ``table`` through a boto3 DynamoDB client."""
        self._client = client
        self._table = table
        self._index = index

    def _update(
        self,
        stream_id: str,
        sets: dict[str, Any],
        *,
        if_absent: dict[str, Any] | None = None,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        extra_names: dict[str, str] | None = None,
    ) -> bool:
        names: dict[str, str] = dict(extra_names or {})
        values: dict[str, Any] = {}
        parts: list[str] = []
        for i, (field, value) in enumerate({**sets, "ttl": int(time.time()) + TTL_S}.items()):
            if value is None:
                continue
            names[f"#f{i}"] = field
            values[f":v{i}"] = _serialize(value)
            parts.append(f"#f{i} = :v{i}")
        for j, (field, value) in enumerate((if_absent or {}).items()):
            if value is None:
                continue
            names[f"#a{j}"] = field
            values[f":a{j}"] = _serialize(value)
            parts.append(f"#a{j} = if_not_exists(#a{j}, :a{j})")
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"stream_id": {"S": stream_id}},
            "UpdateExpression": "SET " + ", ".join(parts),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition:
            request["ConditionExpression"] = condition
            for key, value in (condition_values or {}).items():
                values[key] = _serialize(value)
        try:
            self._client.update_item(**request)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def create_requested(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """Record a stream we asked Vobiz for; fields already written by others win."""
        at = fields.pop("at", None)
        self._update(
            stream_id,
            {"call_uuid": call_uuid},
            if_absent={
                **fields,
                "created_at": at,
                "state": "requested",
                "state_rank": RANK["requested"],
            },
        )

    def advance(
        self, stream_id: str, call_uuid: str, state: State, *, generation: int = 1, **fields: Any
    ) -> bool:
        """Move forward to ``state`` (conditional on the rank); write ``fields`` either way.

        ``end_reason`` is written with the state change it explains, or, when another writer
        already moved the stream to this same end (the recording, the summary: they run while
        the session still waits for its agent), beside it if it has none yet, with
        ``stopped_at``: how a stream ended is recorded whatever order its writers come in.
        """
        at = fields.pop("at", None)
        end_reason = fields.pop("end_reason", None)
        if_absent: dict[str, Any] = {"created_at": at}
        if state == "started":
            if_absent["started_at"] = at  # the call stream's first start, whatever follows
        current = {"call_uuid": call_uuid, "generation": generation if generation > 1 else None}
        self._update(stream_id, {**current, **fields}, if_absent=if_absent)
        target = rank(state, generation)
        moved = self._update(
            stream_id,
            {
                "state": state,
                "state_rank": target,
                "end_reason": end_reason,
                **_ended_at(state, at),
            },
            condition="attribute_not_exists(state_rank) OR state_rank < :rank",
            condition_values={":rank": target},
        )
        if not moved and (end_reason is not None or at is not None) and _ended_at(state, at):
            self._update(  # the same end, reached first by a writer that did not know why
                stream_id,
                {},
                if_absent={"end_reason": end_reason, **_ended_at(state, at)},
                condition="state_rank = :rank",
                condition_values={":rank": target},
            )
        return moved

    def apply_callback(
        self, stream_id: str, call_uuid: str | None, state: State | None, **fields: Any
    ) -> bool:
        """A Vobiz status callback: its fields, and ``state`` if that is forward.

        It never changes the call a known stream belongs to (``call_uuid`` is written only
        where there is none).
        """
        at = fields.pop("at", None)
        end_reason = fields.pop("end_reason", None)
        self._update(
            stream_id,
            fields,
            if_absent={"call_uuid": call_uuid or UNKNOWN_CALL, "created_at": at},
        )
        if state is None:
            return False
        return self._update(
            stream_id,
            {"state": state, "state_rank": RANK[state], "end_reason": end_reason},
            if_absent={"started_at": at} if state == "started" else _ended_at(state, at),
            condition="attribute_not_exists(state_rank) OR state_rank < :rank",
            condition_values={":rank": RANK[state]},
        )

    def end_by_hangup(
        self,
        stream_id: str,
        call_uuid: str,
        *,
        hangup_cause: str | None,
        call_duration_s: int | None,
        at: str,
    ) -> bool:
        """The call hung up: end the stream if it is not over (True when this ended it)."""
        return self._update(
            stream_id,
            {
                "state": "stopped",
                "state_rank": FINAL_RANK,
                "end_reason": "hangup",
                "hangup_cause": hangup_cause,
                "call_duration_s": call_duration_s,
                "stopped_at": at,
            },
            condition="#st IN (:requested, :started) AND call_uuid = :call",
            condition_values={
                ":requested": "requested",
                ":started": "started",
                ":call": call_uuid,
            },
            extra_names={"#st": "state"},
        )

    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """The stream server holds the socket."""
        self.advance(stream_id, call_uuid, "started", **fields)

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """The stream ended (``state`` is ``stopped`` or ``failed``)."""
        state = fields.pop("state", "stopped")
        self.advance(stream_id, call_uuid, state, **fields)

    def annotate(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """Set fields learnt about a stream (its L16 byte order), whatever its state."""
        self._update(stream_id, fields, if_absent={"call_uuid": call_uuid})

    def get(self, stream_id: str) -> StreamItem | None:
        """One stream, or None."""
        response = self._client.get_item(
            TableName=self._table, Key={"stream_id": {"S": stream_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return from_item(_from_dynamo(item))

    def live_streams(self) -> list[StreamItem]:
        """Every stream in state ``started`` (a scan: the sweeper runs every few minutes)."""
        items: list[StreamItem] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "#st = :started",
            "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {":started": {"S": "started"}},
        }
        while True:
            response = self._client.scan(**kwargs)
            items += [from_item(_from_dynamo(i)) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def list_for_call(self, call_uuid: str) -> list[StreamItem]:
        """A call's streams, oldest first (GSI ``by_call``)."""
        items: list[StreamItem] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": self._index,
            "KeyConditionExpression": "call_uuid = :c",
            "ExpressionAttributeValues": {":c": {"S": call_uuid}},
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                items.append(from_item(_from_dynamo(item)))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class DynamoOnceStore:
    """Claims keys once with a conditional put (table key ``pk``, TTL attribute ``ttl``)."""

    def __init__(self, client: Any, table: str) -> None:
        """Use ``table`` through a boto3 DynamoDB client."""
        self._client = client
        self._table = table

    def claim(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is claimed (expired claims count as new)."""
        now = int(time.time())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": key}, "ttl": {"N": str(now + ttl_s)}},
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def release(self, key: str) -> None:
        """Forget a claim (the work it guarded failed, so a retry may claim it again)."""
        self._client.delete_item(TableName=self._table, Key={"pk": {"S": key}})

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        """Keep a value under ``key`` for ``ttl_s`` (what a retry must find again)."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": key},
                "value": {"S": value},
                "ttl": {"N": str(int(time.time()) + ttl_s)},
            },
        )

    def recall(self, key: str) -> str | None:
        """The value kept under ``key``, if it has not expired."""
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item["ttl"]["N"]) < time.time() or "value" not in item:
            return None
        return str(item["value"]["S"])


class DynamoLeases:
    """One live connection per WebSocket token (items ``lease#<jti>`` in the once-table).

    A connection takes the lease with a conditional update (free, or held past its expiry by a
    task that died) and bumps the token's generation; while it lives its task renews it; when
    its socket closes it releases it with where the call's timeline stands, for a reconnect.
    """

    def __init__(self, client: Any, table: str) -> None:
        """Use ``table`` (key ``pk``, TTL ``ttl``) through a boto3 DynamoDB client."""
        self._client = client
        self._table = table

    def acquire(self, token_id: str, holder: str, hold_s: float) -> Lease | None:
        """Take the token's lease for ``holder``; None while another connection holds it."""
        now = time.time()
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"lease#{token_id}"}},
                UpdateExpression="SET holder = :h, held_until = :until, #ttl = :ttl "
                "ADD generation :one",
                ConditionExpression="attribute_not_exists(holder) OR holder = :free "
                "OR held_until < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":h": {"S": holder},
                    ":free": {"S": "-"},
                    ":until": {"N": str(now + hold_s)},
                    ":now": {"N": str(now)},
                    ":ttl": {"N": str(int(now) + TTL_S)},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        item = _from_dynamo(answer["Attributes"])
        return Lease(
            generation=int(item.get("generation", 1)),
            stream_id=item.get("stream_id"),
            vobiz_stream_id=item.get("vobiz_stream_id"),
            position_ms=float(item.get("position_ms", 0.0)),
            media_clock_ms=(
                float(item["media_clock_ms"]) if item.get("media_clock_ms") is not None else None
            ),
            released_at=item.get("released_at"),
            frames=int(item.get("frames", 0)),
            utterances=int(item.get("utterances", 0)),
        )

    def renew(self, token_id: str, holder: str, hold_s: float) -> bool:
        """Extend ``holder``'s lease (False if it lost it)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"lease#{token_id}"}},
                UpdateExpression="SET held_until = :until",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={
                    ":h": {"S": holder},
                    ":until": {"N": str(time.time() + hold_s)},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def release(
        self,
        token_id: str,
        holder: str,
        *,
        stream_id: str | None,
        vobiz_stream_id: str | None,
        position_ms: float,
        media_clock_ms: float | None = None,
        frames: int = 0,
        utterances: int = 0,
        released_at: float | None = None,
    ) -> None:
        """Give the lease back, with where the call stands for the next connection."""
        values: dict[str, Any] = {
            ":h": {"S": holder},
            ":free": {"S": "-"},
            ":at": {"N": str(released_at if released_at is not None else time.time())},
            ":pos": {"N": str(round(position_ms, 3))},
            ":f": {"N": str(int(frames))},
            ":u": {"N": str(int(utterances))},
        }
        sets = [
            "holder = :free",
            "released_at = :at",
            "position_ms = :pos",
            "frames = :f",
            "utterances = :u",
        ]
        if stream_id is not None:
            values[":s"] = {"S": stream_id}
            sets.append("stream_id = if_not_exists(stream_id, :s)")
        if vobiz_stream_id is not None:
            values[":v"] = {"S": vobiz_stream_id}
            sets.append("vobiz_stream_id = :v")
        removes = []
        if media_clock_ms is not None:
            values[":mc"] = {"N": str(round(media_clock_ms, 3))}
            sets.append("media_clock_ms = :mc")
        else:  # an earlier connection's clock would measure the next outage wrong
            removes.append("media_clock_ms")
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"lease#{token_id}"}},
                UpdateExpression="SET "
                + ", ".join(sets)
                + (" REMOVE " + ", ".join(removes) if removes else ""),
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not _conditional_failed(error):  # lost to expiry: the next holder owns it
                raise


class DynamoTranscripts:
    """Transcripts, sentiment and rolling call sentiment (pk ``stream_id``, sk ``utterance``)."""

    def __init__(self, client: Any, table: str) -> None:
        """Use ``table`` through a boto3 DynamoDB client."""
        self._client = client
        self._table = table

    def get(self, stream_id: str, utterance: str) -> dict[str, Any] | None:
        """One item, or None."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"stream_id": {"S": stream_id}, "utterance": {"S": utterance}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _from_dynamo(item)

    def put(self, item: dict[str, Any]) -> None:
        """Write an item (idempotent: the same utterance key overwrites itself)."""
        doc = {**item, "ttl": int(time.time()) + TTL_S}
        self._client.put_item(
            TableName=self._table,
            Item={k: _serialize(_dynamo_value(v)) for k, v in doc.items() if v is not None},
        )

    def update(self, stream_id: str, utterance: str, **fields: Any) -> None:
        """Set fields of an item; a field given as None is removed."""
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        given = list(fields.values())
        kept = [i for i, v in enumerate(given) if v is not None]
        gone = [i for i, v in enumerate(given) if v is None]
        values = {f":v{i}": _serialize(_dynamo_value(given[i])) for i in kept}
        expression = ""
        if kept:
            expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in kept)
        if gone:
            expression += " REMOVE " + ", ".join(f"#f{i}" for i in gone)
        self._client.update_item(
            TableName=self._table,
            Key={"stream_id": {"S": stream_id}, "utterance": {"S": utterance}},
            UpdateExpression=expression.strip(),
            ExpressionAttributeNames=names,
            **({"ExpressionAttributeValues": values} if values else {}),
        )

    def put_new(self, item: dict[str, Any]) -> bool:
        """Write an item unless its key is taken (a stored transcript is never replaced)."""
        doc = {**item, "ttl": int(time.time()) + TTL_S}
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: _serialize(_dynamo_value(v)) for k, v in doc.items() if v is not None},
                ConditionExpression="attribute_not_exists(stream_id)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def pending(self, partition: str, before: float, limit: int) -> list[dict[str, Any]]:
        """Held items of one partition of the sparse ``pending`` index, oldest first."""
        response = self._client.query(
            TableName=self._table,
            IndexName="pending",
            KeyConditionExpression="pending = :p AND pending_at < :t",
            ExpressionAttributeValues={":p": {"S": partition}, ":t": {"N": repr(before)}},
            Limit=limit,
        )
        return [_from_dynamo(i) for i in response["Items"]]

    def for_stream(self, stream_id: str) -> list[dict[str, Any]]:
        """Every item of a stream, in key order."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "stream_id = :s",
            "ExpressionAttributeValues": {":s": {"S": stream_id}},
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**kwargs)
            items += [_from_dynamo(i) for i in response["Items"]]
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _dynamo_value(value: Any) -> Any:
    """Floats become Decimals (DynamoDB numbers), recursively."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    return value


class DynamoConsoleStore:
    """The console's table: calls' timelines and the calls list's cards.

    A timeline item has pk ``call#<uuid>`` and sk its cursor (``s#`` and its number); a card
    pk ``calls`` and sk the call uuid; a call's counter pk ``seq#<uuid>``.
    """

    #: Timeline items are kept a week, and a call's card a week after its last event (the list
    #: and its search reach every call whose timeline is still there).
    EVENT_TTL_S = 7 * 86_400
    CARD_TTL_S = EVENT_TTL_S

    def __init__(self, client: Any, table: str) -> None:
        """Use ``table`` through a boto3 DynamoDB client."""
        self._client = client
        self._table = table

    def next_seq(self, call_uuid: str) -> int:
        """The call's next timeline number: an atomic counter in an item of its own.

        Its own partition key (``seq#<uuid>``), so it is never among the timeline's items
        and no two calls' counters share a key.
        """
        answer = self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"seq#{call_uuid}"}, "sk": {"S": "seq"}},
            UpdateExpression="ADD #n :one SET #t = :ttl",
            ExpressionAttributeNames={"#n": "n", "#t": "ttl"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ttl": {"N": str(int(time.time()) + self.EVENT_TTL_S)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["n"]["N"])

    def put_event(self, call_uuid: str, cursor: str, fields: dict[str, Any]) -> None:
        """Write one timeline item."""
        doc = {**fields, "pk": f"call#{call_uuid}", "sk": cursor}
        doc["ttl"] = int(time.time()) + self.EVENT_TTL_S
        self._client.put_item(
            TableName=self._table,
            Item={k: _serialize(_dynamo_value(v)) for k, v in doc.items() if v is not None},
        )

    def update_card(
        self,
        call_uuid: str,
        fields: dict[str, Any],
        first: dict[str, Any] | None = None,
        add: dict[str, float] | None = None,
    ) -> None:
        """Set ``fields`` of a call's card, ``first`` only where it has none, add ``add``.

        The counters' ADD is atomic: concurrent writers lose nothing.
        """
        sets = {**fields, "ttl": int(time.time()) + self.CARD_TTL_S}
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        parts: list[str] = []
        for i, (name, value) in enumerate(sets.items()):
            if value is not None:
                names[f"#f{i}"], values[f":f{i}"] = name, _serialize(_dynamo_value(value))
                parts.append(f"#f{i} = :f{i}")
        for i, (name, value) in enumerate((first or {}).items()):
            if value is not None:
                names[f"#a{i}"], values[f":a{i}"] = name, _serialize(_dynamo_value(value))
                parts.append(f"#a{i} = if_not_exists(#a{i}, :a{i})")
        counters = []
        for i, (name, amount) in enumerate((add or {}).items()):
            names[f"#n{i}"], values[f":n{i}"] = name, _serialize(_dynamo_value(float(amount)))
            counters.append(f"#n{i} :n{i}")
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": "calls"}, "sk": {"S": call_uuid}},
            UpdateExpression="SET "
            + ", ".join(parts)
            + (" ADD " + ", ".join(counters) if counters else ""),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def add_words(self, call_uuid: str, words: set[str], most: int) -> bool:
        """Add words said to a call's card (a string set) while it holds fewer than ``most``.

        Returns False when the card is full (the call's later words are not searchable).
        """
        if not words:
            return True
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": "calls"}, "sk": {"S": call_uuid}},
                UpdateExpression="ADD #w :w SET #t = :ttl",
                ConditionExpression="attribute_not_exists(#w) OR size(#w) < :most",
                ExpressionAttributeNames={"#w": "words", "#t": "ttl"},
                ExpressionAttributeValues={
                    ":w": {"SS": sorted(words)},
                    ":most": {"N": str(most)},
                    ":ttl": {"N": str(int(time.time()) + self.CARD_TTL_S)},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    #: Index pages one list read may look through (each is 1 MB at most), of this many index
    #: items (about 100 bytes each) when a filter applies.
    RECENT_PAGES = 10
    RECENT_SCAN = 1000

    def recent_cards(
        self, limit: int, before: str | None, wanted: CallsWanted, budget: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The calls list's page from the ``recent`` index, newest first; then the cards.

        The start-time range is the index's key condition and the state its filter (both
        answered by the index); the rest is asked of the cards (:meth:`CallsFilter.matches`),
        read behind each index page, looking through at most ``budget`` calls. ``before`` is
        a token this method gave (``first_seen|call_uuid``, checked by the caller:
        :func:`callstream.console.views.calls`).
        """
        condition = "shelf = :shelf"
        values: dict[str, Any] = {":shelf": {"S": "calls"}}
        if wanted.since and wanted.until:
            condition += " AND first_seen BETWEEN :since AND :until"
        elif wanted.since:
            condition += " AND first_seen >= :since"
        elif wanted.until:
            condition += " AND first_seen <= :until"
        values |= {f":{k}": {"S": v} for k in ("since", "until") if (v := getattr(wanted, k))}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "recent",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if wanted.state:
            kwargs["FilterExpression"] = "#state = :state"
            kwargs["ExpressionAttributeNames"] = {"#state": "state"}
            values[":state"] = {"S": wanted.state}
        if wanted.state or wanted.reads_cards:  # read more a page (index items are small)
            kwargs["Limit"] = min(self.RECENT_SCAN, budget)
        if before:
            first_seen, _, call_uuid = before.partition("|")
            kwargs["ExclusiveStartKey"] = {
                "shelf": {"S": "calls"},
                "first_seen": {"S": first_seen},
                "pk": {"S": "calls"},
                "sk": {"S": call_uuid},
            }
        cards: list[dict[str, Any]] = []
        looked, resume = 0, None  # calls looked at; the token after the last of them
        for _ in range(self.RECENT_PAGES):
            response = self._client.query(**kwargs)
            keys = [(i["first_seen"]["S"], i["sk"]["S"]) for i in response["Items"]]
            last = response.get("LastEvaluatedKey")
            if wanted.reads_cards:
                keys = keys[: budget - looked]
            for start in range(0, len(keys), 100):  # a BatchGetItem's worth at a time
                chunk = keys[start : start + 100]
                found = self._cards([k for _, k in chunk], keep_missing=True)
                for n, ((first_seen, call_uuid), card) in enumerate(zip(chunk, found, strict=True)):
                    looked += 1
                    resume = f"{first_seen}|{call_uuid}"
                    if card is not None and wanted.matches(card):
                        cards.append(card)
                        if len(cards) == limit:
                            at_end = last is None and start + n + 1 == len(response["Items"])
                            return cards, None if at_end else resume
            if wanted.reads_cards and looked >= budget:
                return cards, resume  # (the rest of this index page is not looked at)
            if last is None:
                return cards, None
            resume = f"{last['first_seen']['S']}|{last['sk']['S']}"
            kwargs["ExclusiveStartKey"] = last
        return cards, resume  # the index pages one request may read ran out first

    @overload
    def _cards(
        self, call_uuids: list[str], keep_missing: Literal[False] = False
    ) -> list[dict[str, Any]]: ...
    @overload
    def _cards(
        self, call_uuids: list[str], keep_missing: Literal[True]
    ) -> list[dict[str, Any] | None]: ...

    def _cards(
        self, call_uuids: list[str], keep_missing: bool = False
    ) -> list[dict[str, Any]] | list[dict[str, Any] | None]:
        """The cards of these calls, in this order (BatchGetItem, 100 a request).

        A card not found is left out, or a None in its place with ``keep_missing``.
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(call_uuids), 100):
            wanted: dict[str, Any] = {
                self._table: {
                    "Keys": [
                        {"pk": {"S": "calls"}, "sk": {"S": c}}
                        for c in call_uuids[start : start + 100]
                    ]
                }
            }
            while wanted:
                response = self._client.batch_get_item(RequestItems=wanted)
                for item in response["Responses"].get(self._table, []):
                    card = _from_dynamo(item)
                    found[card["sk"]] = card
                wanted = response.get("UnprocessedKeys") or {}
        if keep_missing:
            return [found.get(c) for c in call_uuids]
        return [found[c] for c in call_uuids if c in found]

    def card(self, call_uuid: str) -> dict[str, Any] | None:
        """A call's card, or None."""
        found = self._cards([call_uuid])
        return found[0] if found else None

    def events(self, call_uuid: str, after: str, limit: int) -> list[dict[str, Any]]:
        """A call's timeline items after ``after`` (a cursor; "" for all), oldest first."""
        return self._query({"pk": f"call#{call_uuid}"}, after, limit)

    def _query(self, key: dict[str, str], after: str | None, limit: int) -> list[dict[str, Any]]:
        condition = "pk = :pk" + (" AND sk > :after" if after else "")
        values = {":pk": {"S": key["pk"]}} | ({":after": {"S": after}} if after else {})
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            response = self._client.query(**kwargs)
            items += [_from_dynamo(i) for i in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items[:limit]
