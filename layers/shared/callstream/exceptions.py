"""The one exception tree of callstream.

Every error the package raises on purpose derives from :class:`CallstreamError`. Each class
carries the HTTP status it maps to (``status``) and a stable machine-readable ``code``;
handlers map an error to HTTP with :func:`http_status`.

::

    CallstreamError (500)
    ├── ConfigError (500)              a setting is missing or invalid (names the variable)
    ├── ProtocolError (400)            a Vobiz WebSocket message we cannot accept
    │   ├── MalformedMessageError           not UTF-8 JSON, not an object, too large or too deep
    │   ├── InvalidMessageError             valid JSON, but a field is missing or has a wrong value
    │   │   └── InvalidStartError               a ``start`` the stream cannot begin with (refused)
    │   ├── InvalidAudioError               bad base64, odd-length L16, size not a whole sample
    │   └── OutOfOrderError                 media before start, a second start, media after stop
    ├── RecordError (400)              a Kinesis record that is not a valid callstream record
    │                                  (never retried: kept aside, ``analytics.quarantine``)
    ├── RequestError (400)             an API request body, query or path that fails validation
    │   └── UnprocessableError (422)        well formed, but asks for what Vobiz does not allow
    ├── AuthError (403)                a signature or token that does not verify
    │   ├── SignatureError             Vobiz V3 signature wrong, missing or replayed
    │   └── TokenError                 WebSocket token forged, malformed, expired, or in use
    │       └── StreamMismatchError    a ``start`` for another call or stream than the token's
    ├── NotFoundError (404)                 no such stream or call
    ├── ConflictError (409)                 the stream is not in a state that allows the request
    ├── UpstreamError (502)            Vobiz (or another dependency) answered with an error
    │   │                              (Vobiz's own 400/404/409/422 pass through as they are)
    │   ├── UpstreamTimeoutError (504)      ... or did not answer in time
    │   └── ModelError (502)                a voice agent's language model or synthesiser failed
    ├── SinkError (503)                a sink (Kinesis, S3, DynamoDB) failed after its retries
    └── NotReadyError (503)            inputs still on their way (a consumer retries later)
"""

from __future__ import annotations

from typing import ClassVar


class CallstreamError(Exception):
    """Root of every error callstream raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CallstreamError):
    """A required setting is missing or a setting has an invalid value."""

    code = "config_error"


class ProtocolError(CallstreamError):
    """A message on the Vobiz WebSocket that cannot be accepted."""

    status = 400
    code = "protocol_error"


class MalformedMessageError(ProtocolError):
    """The frame is not a UTF-8 JSON object, or exceeds a size or nesting limit."""

    code = "malformed_message"


class InvalidMessageError(ProtocolError):
    """The JSON is well formed but a field is missing or has a wrong type or value."""

    code = "invalid_message"


class InvalidStartError(InvalidMessageError):
    """A ``start`` the stream cannot begin with (no readable format, a bad id).

    The stream is refused: its socket closed with 1003 and the reason, and the registry
    records it failed.
    """

    code = "invalid_start"


class InvalidAudioError(ProtocolError):
    """The audio payload cannot be decoded (bad base64, odd-length L16, ...)."""

    code = "invalid_audio"


class OutOfOrderError(ProtocolError):
    """A message that is valid on its own but not at this point of the session."""

    code = "out_of_order"


class RecordError(CallstreamError):
    """Bytes that are not a valid callstream Kinesis record (magic, version or body)."""

    status = 400
    code = "record_error"


class RequestError(CallstreamError):
    """An API request that fails validation; the message names the offending field."""

    status = 400
    code = "bad_request"


class UnprocessableError(RequestError):
    """The request is well formed but asks for what Vobiz does not allow.

    For example a bidirectional stream of a track other than ``inbound``: refused before Vobiz
    is called.
    """

    status = 422
    code = "unprocessable"


class AuthError(CallstreamError):
    """A credential that does not verify."""

    status = 403
    code = "forbidden"


class SignatureError(AuthError):
    """A Vobiz V3 signature that is wrong, missing or replayed."""

    code = "bad_signature"


class TokenError(AuthError):
    """A WebSocket token that is forged, malformed, expired or already used."""

    code = "bad_token"


class StreamMismatchError(TokenError):
    """A ``start`` that names another call (or stream) than the token it came with."""


class NotFoundError(CallstreamError):
    """The stream or call does not exist."""

    status = 404
    code = "not_found"


class ConflictError(CallstreamError):
    """The stream is not in a state that allows the request (not live, not bidirectional)."""

    status = 409
    code = "conflict"


class UpstreamError(CallstreamError):
    """A dependency (Vobiz REST, a task's control endpoint) answered with an error.

    Attributes:
        upstream_status: the HTTP status the dependency answered, if any.
    """

    status = 502
    code = "upstream_error"

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class UpstreamTimeoutError(UpstreamError):
    """A dependency did not answer in time."""

    status = 504
    code = "upstream_timeout"


class ModelError(UpstreamError):
    """A voice agent's language model or speech synthesiser failed.

    The caller hears an apology and the call goes on.
    """

    code = "model_failed"


class SinkError(CallstreamError):
    """A sink (Kinesis, S3, DynamoDB) still failed after its retries."""

    status = 503
    code = "sink_error"


#: Vobiz answers passed through as they are: the caller's request was at fault.
_PASSTHROUGH = frozenset({400, 404, 409, 422})


class NotReadyError(CallstreamError):
    """What this step needs has not arrived yet (e.g. transcripts of a call being summarised)."""

    status = 503
    code = "not_ready"


def http_status(error: BaseException) -> int:
    """Return the HTTP status an error maps to: its class's, or 500 for anything unexpected.

    An :class:`UpstreamError` keeps Vobiz's 400/404/409/422 (the caller's request was at fault);
    any other upstream failure is 502 (or 504 for a timeout).
    """
    if isinstance(error, UpstreamError) and error.upstream_status in _PASSTHROUGH:
        return error.upstream_status
    return error.status if isinstance(error, CallstreamError) else 500
