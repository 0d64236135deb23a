"""Every port the domain talks through: what an adapter must offer (typing.Protocol).

Adapters in ``callstream.adapters`` implement them on boto3 (AWS, or moto locally) and urllib3
(Vobiz, the tasks); ``callstream.wiring`` and ``stream_server.wiring`` build them. Tests and the
embedded stack inject those same adapters with moto-backed clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from callstream.audio.wav import Segment
from callstream.registry import State, StreamItem


@dataclass(frozen=True)
class VobizCredentials:
    """The account's Vobiz REST credentials (``repr`` hides the token)."""

    auth_id: str
    auth_token: str

    def __repr__(self) -> str:
        return f"VobizCredentials(auth_id={self.auth_id!r}, auth_token=***)"


class Registry(Protocol):
    """The stream registry (DynamoDB). Every method is idempotent and synchronous."""

    def create_requested(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """Record a stream we asked Vobiz for (never overwrites a later state)."""

    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """The stream server took the stream's socket: format, tracks, task address."""

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """The stream ended: ``state`` (stopped/failed), ``end_reason``, counts, ``at``."""

    def annotate(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        """Set fields learnt about a stream (its L16 byte order), whatever its state."""

    def advance(
        self, stream_id: str, call_uuid: str, state: State, *, generation: int = 1, **fields: Any
    ) -> bool:
        """Move to ``state`` if that is forward; write ``fields`` either way.

        Returns:
            True if the state changed.
        """

    def apply_callback(
        self, stream_id: str, call_uuid: str | None, state: State | None, **fields: Any
    ) -> bool:
        """A Vobiz status callback: never changes the call a known stream belongs to."""

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

    def get(self, stream_id: str) -> StreamItem | None:
        """One stream, or None."""

    def list_for_call(self, call_uuid: str) -> list[StreamItem]:
        """A call's streams, oldest first."""

    def live_streams(self) -> list[StreamItem]:
        """Every stream in state ``started``."""


class OnceStore(Protocol):
    """Claims keys once (spent tokens, callback nonces, deduplication)."""

    def claim(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is claimed; False ever after (until the TTL)."""

    def release(self, key: str) -> None:
        """Forget a claim whose work failed, so that a retry may claim it again."""

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        """Keep a value under ``key`` for ``ttl_s``."""

    def recall(self, key: str) -> str | None:
        """The value kept under ``key``, if it has not expired."""


class Once(Protocol):
    """Runs a function at most once per key in its payload; a retry gets the first result."""

    def run(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        payload: dict[str, Any],
        lambda_context: Any = None,
    ) -> dict[str, Any]:
        """``fn(payload)``, or the first run's result (ConflictError for another payload)."""


@dataclass(frozen=True)
class Lease:
    """A WebSocket token's connection lease, as the connection that took it found it.

    Attributes:
        generation: 1 for the token's first connection, 2 for the first reconnect, …
        stream_id: the call stream the token's earlier connections carried (None at first).
        vobiz_stream_id: Vobiz's stream id of the previous connection.
        position_ms: media time the previous connection reached.
        media_clock_ms: Vobiz's timestamp at ``position_ms``, if its frames carried one.
        released_at: when the previous connection ended (epoch seconds), if it did.
        frames: frames the call stream's earlier connections received, all together.
        utterances: utterances they found, all together.
    """

    generation: int
    stream_id: str | None = None
    vobiz_stream_id: str | None = None
    position_ms: float = 0.0
    media_clock_ms: float | None = None
    released_at: float | None = None
    frames: int = 0
    utterances: int = 0


class Leases(Protocol):
    """One live connection per WebSocket token (sync; the server runs it in threads)."""

    def acquire(self, token_id: str, holder: str, hold_s: float) -> Lease | None:
        """Take the token's lease; None while another connection holds it."""

    def renew(self, token_id: str, holder: str, hold_s: float) -> bool:
        """Extend a held lease (False if it was lost)."""

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
        """Give the lease back with where the call stands: its timeline and totals so far.

        ``released_at`` is when the socket closed (epoch seconds; now if not given).
        """


class EventBus(Protocol):
    """The ``callstream`` EventBridge bus."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish one event (SinkError when refused)."""


class Transcripts(Protocol):
    """Transcripts, sentiment and the rolling call sentiment, per stream and utterance."""

    def get(self, stream_id: str, utterance: str) -> dict[str, Any] | None:
        """One item, or None."""

    def put(self, item: dict[str, Any]) -> None:
        """Write an item (the same utterance key overwrites itself)."""

    def update(self, stream_id: str, utterance: str, **fields: Any) -> None:
        """Set fields of an item; a field given as None is removed."""

    def for_stream(self, stream_id: str) -> list[dict[str, Any]]:
        """Every item of a stream, in key order."""

    def put_new(self, item: dict[str, Any]) -> bool:
        """Write an item unless its key is taken; False when it was."""

    def pending(self, partition: str, before: float, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` items held in ``partition`` since before ``before``, oldest first."""


class Recordings(Protocol):
    """The recordings bucket: segments, events, recordings, sidecars, quarantined records."""

    bucket: str

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """Write one object."""

    def get(self, key: str) -> bytes:
        """Read one object."""

    def find(self, key: str) -> bytes | None:
        """Read one object, or None when there is none."""

    def keys(self, prefix: str) -> Iterator[str]:
        """The keys under a prefix, in order."""

    def segments(self, stream_id: str) -> list[Segment]:
        """A stream's audio segments, planned from their keys."""

    def events(self, stream_id: str) -> list[dict[str, Any]]:
        """A stream's session events, in order."""

    def write_streaming(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Write an object from chunks (multipart); returns its size."""

    def presign(self, key: str, expires_s: int) -> str:
        """A URL that reads one object for ``expires_s`` seconds, without credentials."""


class Quarantining(Protocol):
    """A Kinesis consumer's services: where it keeps the records it can never process."""

    @property
    def quarantine(self) -> Recordings:
        """The bucket (``quarantine/<stream>/<sequence>.bin``)."""


class Vobiz(Protocol):
    """Vobiz's REST API for streams (docs/protocol.md §1a)."""

    def start_stream(self, call_uuid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start a stream; Vobiz's answer carries ``stream_id``."""

    def get_stream(self, call_uuid: str, stream_id: str) -> dict[str, Any]:
        """One stream's status and times."""

    def list_streams(self, call_uuid: str, page_size: int = 20) -> list[dict[str, Any]]:
        """A call's streams."""

    def stop_stream(self, call_uuid: str, stream_id: str) -> None:
        """Stop one stream (already stopped counts as stopped)."""

    def stop_all(self, call_uuid: str) -> None:
        """Stop every stream of a call."""


class Tasks(Protocol):
    """The stream-server tasks' internal control endpoint (``stream_server.internal_api``)."""

    def command(
        self, address: str, stream_id: str, action: str, body: bytes, credential: str
    ) -> tuple[int, dict[str, Any]]:
        """POST a command to the task at ``address``: its HTTP status and JSON answer.

        Raises UpstreamTimeoutError / UpstreamError when the task cannot be reached in time.
        """

    def play_state(
        self, address: str, stream_id: str, play_id: str, credential: str
    ) -> tuple[int, dict[str, Any]]:
        """GET where a play the task started is: its HTTP status and JSON answer."""

    def alive(self, address: str) -> bool:
        """Whether the task answers its health probe."""


class RecordLog(Protocol):
    """A Kinesis stream, written one record at a time (the sweeper's AudioStream end events)."""

    def put(self, key: str, data: bytes) -> None:
        """Write one record with partition key ``key``."""

    def read(self, at: RecordAt) -> bytes | None:
        """The record at ``at`` on this stream; None once the stream's retention dropped it."""


@dataclass(frozen=True)
class RecordAt:
    """Where a record is on its Kinesis stream: enough to read it again."""

    shard: str
    sequence: str


class CallsWanted(Protocol):
    """What a calls-list read asks for (``callstream.console.search.CallsFilter``)."""

    @property
    def state(self) -> str | None:
        """A state the index filters on, or None."""

    @property
    def since(self) -> str | None:
        """The earliest start (``first_seen``), inclusive, or None."""

    @property
    def until(self) -> str | None:
        """The latest start, inclusive, or None."""

    @property
    def reads_cards(self) -> bool:
        """Whether :meth:`matches` must see each card."""

    def matches(self, card: dict[str, Any]) -> bool:
        """Whether a card answers the parts the index cannot."""


class ConsoleStore(Protocol):
    """The console's timeline of each call, and the cards of the calls list."""

    def next_seq(self, call_uuid: str) -> int:
        """The call's next timeline number (1, 2, ...): taken once, by one writer."""

    def put_event(self, call_uuid: str, cursor: str, fields: dict[str, Any]) -> None:
        """Write one timeline item."""

    def update_card(
        self,
        call_uuid: str,
        fields: dict[str, Any],
        first: dict[str, Any] | None = None,
        add: dict[str, float] | None = None,
    ) -> None:
        """Set fields of a call's card, ``first`` only where it has none, and add ``add``.

        The counters' ADD is atomic, whoever else writes.
        """

    def add_words(self, call_uuid: str, words: set[str], most: int) -> bool:
        """Add words said to a call's card while it holds fewer than ``most``; False if full."""

    def recent_cards(
        self, limit: int, before: str | None, wanted: CallsWanted, budget: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the calls list, and the token of the next page (None at the end).

        The calls begun before ``before`` (a token; None: the newest), newest first, that
        ``wanted`` wants, at most ``limit``; a request asking of the cards looks through at
        most ``budget`` calls (the token goes on from the last).
        """

    def events(self, call_uuid: str, after: str, limit: int) -> list[dict[str, Any]]:
        """A call's timeline items after a cursor, oldest first."""

    def card(self, call_uuid: str) -> dict[str, Any] | None:
        """A call's card, or None when the console never heard of the call."""


# -- time, speech and sentiment ------------------------------------------------------------


class Clock(Protocol):
    """Time as a process reads it, injected so a test can hold it still or move it.

    ``callstream.clock.SYSTEM_CLOCK`` is the machine's.
    """

    def time(self) -> float:
        """Epoch seconds (what records and the registry carry)."""

    def monotonic(self) -> float:
        """Seconds that never go back (what silences and timeouts are measured in)."""


@dataclass(frozen=True)
class Transcript:
    """What a recogniser heard in one utterance."""

    text: str
    confidence: float | None  # None: the backend gives no confidence (PocketSphinx)


class Transcriber(Protocol):
    """A speech recogniser backend (``aws``: Amazon Transcribe; ``local``: PocketSphinx)."""

    name: str

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        """Recognise one utterance of PCM16 LE mono audio."""


@dataclass(frozen=True, slots=True)
class LiveResult:
    """A streaming recogniser's result for one track: a line that grows, then its final.

    Attributes:
        result_id: the line (the recogniser's own id, or one it made): its partials and its
            final share it.
        final: False while the line may still change.
        text: the words so far, or the whole line.
        start_sample: the line's first sample on the track's timeline.
        end_sample: one past the last sample the result covers.
        confidence: 0-1, when the recogniser gives one.
    """

    result_id: str
    final: bool
    text: str
    start_sample: int
    end_sample: int
    confidence: float | None = None


class LiveRecognizer(Protocol):
    """A streaming recogniser of one track of one call (Transcribe streaming, PocketSphinx).

    Sans I/O from the caller's side: audio in, results out, never blocking on the network.
    """

    def feed(self, pcm: bytes, start_sample: int) -> None:
        """The track's next audio: PCM16 LE at its rate, at ``start_sample`` on its timeline."""

    def results_ready(self) -> list[LiveResult]:
        """Return and forget the results made since the last call, in order."""

    def close(self) -> list[LiveResult]:
        """The track ended: finish what was heard (its finals) and release the recogniser.

        A recogniser over the network returns what it has; its last finals come after
        (``results_ready``), then ``finished``.
        """

    @property
    def finished(self) -> bool:
        """True once nothing more comes: after ``close``'s last final, or given up."""

    @property
    def refused(self) -> str | None:
        """Why the track was given up before its end (``quota``...), else None."""


@dataclass(frozen=True)
class TrackToHear:
    """What a live recogniser is opened for: one track of one stream.

    Attributes:
        key: the stream's connection.
        track: ``inbound`` or ``outbound``.
        rate: its sample rate (PCM16 LE).
        language: a language code (``en-US``).
        together: the tracks the stream began with, this one among them, in channel order: a
            backend may hear them in one session (Transcribe's channel identification).
    """

    key: str
    track: str
    rate: int
    language: str
    together: tuple[str, ...] = ()


#: Opens a recogniser for a track; it calls ``notify`` (the second argument) when results are
#: ready without being fed (the network's).
LiveRecognizers = Callable[[TrackToHear, Callable[[], None]], LiveRecognizer]


Label = Literal["POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"]


@dataclass(frozen=True)
class Sentiment:
    """A label and its scores (Positive, Negative, Neutral, Mixed; 0-1)."""

    label: Label
    scores: dict[str, float]


class SentimentModel(Protocol):
    """A sentiment backend (``comprehend`` in AWS, ``vader`` offline)."""

    name: str

    def score(self, text: str, language: str) -> Sentiment:
        """Score one utterance's text."""


# -- a language model: the voice agent's mind, and the call digest's writer ----------------


@dataclass(frozen=True)
class Said:
    """One turn of a conversation: who said it and the words (only what the caller heard)."""

    role: Literal["caller", "agent"]
    text: str


#: What a model may ask the agent to do besides speaking.
ToolName = Literal["end_call", "hand_over", "press_dtmf"]


@dataclass(frozen=True)
class ToolCall:
    """A model's request to act besides speaking.

    End the call (after the goodbye plays), hand it over, or press DTMF keys
    (``arguments["digits"]``).
    """

    name: ToolName
    arguments: dict[str, str] = field(default_factory=dict)


class LanguageModel(Protocol):
    """A chat model that streams its reply: text as it comes, and tool calls."""

    def reply(self, system: str, history: Sequence[Said]) -> AsyncIterator[str | ToolCall]:
        """The reply to the conversation so far (its last turn is the caller's), streamed.

        Raises:
            ModelError: the model failed or refused (the agent apologises and goes on).
        """


@dataclass(frozen=True, slots=True)
class Digest:
    """A call after it ended: what it was about and what came of it.

    Attributes:
        summary: two or three sentences.
        intent: what the caller wanted.
        outcome: how the call left it.
        action_items: what someone is to do next.
        source: who wrote it (``extractive`` or the model's name).
    """

    summary: str
    intent: str
    outcome: str
    action_items: tuple[str, ...]
    source: str


class Summarizer(Protocol):
    """Writes a call's :class:`Digest` (``extractive`` offline, a Bedrock model in AWS)."""

    name: str

    def summarize(self, lines: Sequence[tuple[str, str]]) -> Digest:
        """The digest of a call's lines, (``caller`` or ``agent``, text) in order.

        Raises:
            UpstreamError: the model failed (the caller of this falls back to extractive).
        """


# -- the stream server's side of the control contract --------------------------------------


class Talk(Protocol):
    """What a command needs of a stream's talk-back controller (``stream_server.talkback``)."""

    async def play(self, pcm: bytes, sample_rate: int) -> float:
        """Play PCM16 LE audio; returns its length in ms."""

    def start_play(self, pcm: bytes, sample_rate: int) -> dict[str, Any]:
        """Queue a play; at once: ``play_id``, ``state``, ``ms``, ``sent_ms``."""

    def play_state(self, play_id: str) -> dict[str, Any]:
        """Where a started play is (NotFoundError: no such play)."""

    async def checkpoint(self, name: str, timeout_s: float) -> str:
        """Wait until Vobiz played up to here: ``played``, ``cleared`` or ``timeout``."""

    async def clear(self) -> None:
        """Barge-in: drop what is queued."""

    async def end(self, goodbye: bytes | None, sample_rate: int, timeout_s: float) -> str:
        """Play the goodbye (if any) to its end, then ``stop``."""
