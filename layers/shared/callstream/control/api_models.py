"""Validation at the edge of the control plane: ids, JSON bodies, and the request models.

A request becomes a typed model here or is refused with a :class:`RequestError` that names every
field that is wrong; nothing past this module sees a raw body.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from callstream.control.commands import validation_problems
from callstream.exceptions import RequestError
from callstream.vocabulary import (
    ID_PATTERN,
    MODEL_PATTERN,
    STREAMING_LANGUAGES,
    VOICE_PATTERN,
    ContentType,
)

#: Vobiz's limit on ``extra_headers``: keys ASCII letters and digits, 512 bytes in all.
EXTRA_HEADERS_MAX_BYTES = 512
Agent = Literal["none", "echo", "prompt", "assistant"]
AudioTrack = Literal["inbound", "outbound", "both"]


def check_language(value: str) -> str:
    """A stream's language: one Amazon Transcribe streaming takes (``en-IN``, ``hi-IN``, …).

    Raises:
        ValueError: any other (pydantic names the field).
    """
    if value not in STREAMING_LANGUAGES:
        raise ValueError(f"{value[:20]!r} is not a language Amazon Transcribe streams")
    return value


Language = Annotated[str, AfterValidator(check_language)]

#: The ``assistant``'s prompt for one stream. It travels in the stream's signed URL, so it is
#: kept short; a long prompt belongs in the deployment's setting (CALLSTREAM_ASSISTANT_PROMPT).
PROMPT_MAX_CHARS = 1000


def check_prompt(value: str) -> str:
    """A system prompt: printable text, at most :data:`PROMPT_MAX_CHARS`.

    Raises:
        ValueError: empty, too long or with control characters (pydantic names the field).
    """
    if not value.strip():
        raise ValueError("the prompt is empty")
    if len(value) > PROMPT_MAX_CHARS:
        raise ValueError(f"the prompt is {len(value)} characters, more than {PROMPT_MAX_CHARS}")
    if any(not c.isprintable() and c not in "\n\t" for c in value):
        raise ValueError("the prompt has control characters")
    return value


Prompt = Annotated[str, AfterValidator(check_prompt)]
Voice = Annotated[str, Field(pattern=VOICE_PATTERN)]
Model = Annotated[str, Field(pattern=MODEL_PATTERN)]


def check_id(value: str, what: str) -> str:
    """Validate an id from a path or body.

    Raises:
        RequestError: not 1-128 of ``[A-Za-z0-9_.:-]`` starting with a letter or digit.
    """
    if not ID_PATTERN.fullmatch(value):
        raise RequestError(f"{what} is not a valid id")
    return value


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any) -> M:
    """Validate a request body against ``model``.

    Raises:
        RequestError: naming every field that is wrong.
    """
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as error:
        raise RequestError(f"invalid request: {validation_problems(error)}") from None


def parse_json(body: str | None) -> Any:
    """A request body as JSON (empty → None).

    Raises:
        RequestError: not valid JSON, or nested too deeply to parse.
    """
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as error:
        raise RequestError(f"body is not valid JSON: {error}") from None
    except RecursionError:  # [[[[…]]]] thousands deep: the parser's limit, not a server fault
        raise RequestError("body is JSON nested too deeply") from None


def parse_query(url: str) -> dict[str, list[str]]:
    """The query parameters of a URL."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


class StartStreamRequest(BaseModel):
    """Body of ``POST /v1/calls/{call_uuid}/streams``."""

    model_config = ConfigDict(extra="forbid")

    audio_track: AudioTrack = "inbound"
    content_type: ContentType = "audio/x-mulaw;rate=8000"
    bidirectional: bool = False
    agent: Agent = "none"
    status_callback_url: HttpUrl | None = None
    status_callback_method: Literal["GET", "POST"] = "POST"
    extra_headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    stream_timeout: int | None = Field(None, ge=1, le=86_400)
    language: Language | None = None  # what the stream is heard in; the deployment's when None
    # the assistant's, per stream (None: the deployment's)
    prompt: Prompt | None = None
    voice: Voice | None = None
    model: Model | None = None

    @model_validator(mode="after")
    def _assistant_options(self) -> StartStreamRequest:
        given = [name for name in ("prompt", "voice", "model") if getattr(self, name) is not None]
        if given and self.agent != "assistant":
            raise ValueError(f"{', '.join(given)}: only with agent assistant, not {self.agent}")
        return self

    @field_validator("extra_headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not (key.isascii() and key.isalnum()) or len(key) > 64:
                raise ValueError(f"header name {key[:70]!r} must be 1-64 of [A-Za-z0-9]")
            if any(c in item for c in ",=\r\n") or len(item) > 256:
                raise ValueError(f"header {key} value must be ≤ 256 chars without , = or newlines")
        if len(header_string(value).encode()) > EXTRA_HEADERS_MAX_BYTES:
            raise ValueError(f"extra_headers must be at most {EXTRA_HEADERS_MAX_BYTES} bytes")
        return value


def header_string(headers: dict[str, str]) -> str:
    """``extra_headers`` as Vobiz takes them: ``k=v`` pairs joined with commas."""
    return ",".join(f"{k}={v}" for k, v in headers.items())


class AnswerOptions(BaseModel):
    """Options of the answer URL's query string."""

    agent: Agent
    bidirectional: bool
    content_type: ContentType
    audio_track: AudioTrack
    max_retries: int = Field(ge=0, le=10)
    language: Language | None = None
    redirect_url: HttpUrl | None = None
    dial: str | None = Field(None, pattern=r"^(\+?[0-9]{3,20}|sip:[A-Za-z0-9@._:;=\-]{3,200})$")
    prompt: Prompt | None = None
    voice: Voice | None = None
    model: Model | None = None
