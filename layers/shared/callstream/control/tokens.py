"""Signed WebSocket tokens and control-endpoint credentials, pure.

The WebSocket URL Vobiz connects to carries everything the stream server needs about the
stream in a token in its path (``/v1/audio/{token}``): Vobiz may connect before the REST call
that started the stream has returned, so the server cannot rely on the registry at connect time,
and query strings are not a safe carrier (docs/protocol.md §1b).

A token is ``base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`` without
padding. The server verifies it before the upgrade (constant-time) and refuses it when expired.
A token is **call-scoped, not single-use**: Vobiz reconnects a dropped socket to the same URL
(``maxRetries``), and that must continue the same call. The server holds a lease on the token's
``jti`` while a socket is open, so only one connection per token is live at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

import msgspec

from callstream.exceptions import AuthError, ConfigError, RequestError, TokenError

MAX_TOKEN_LENGTH: Final = 512
_SHAPE: Final = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
AUDIO_PATH_PREFIX: Final = "/v1/audio/"


# Unknown claims are ignored, not refused: the signature vouches for them, and in a rolling
# deploy a task of the last version verifies tokens a newer Lambda signed (with a claim added).
class TokenClaims(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a token grants.

    Attributes:
        jti: random 128-bit id (hex): the key of the one live connection the token allows.
        call_uuid: the Vobiz call the stream belongs to.
        exp: expiry, epoch seconds.
        agent: the talk-back agent to run (``none``, ``echo``, ``prompt``).
        bidirectional: whether the app may send audio back.
        stream_id: the stream id when known at signing time (None for answer XML).
        content_type: the content type requested (what ``start`` lacks falls back to it).
        language: what the stream is heard in (None: the deployment's).
        prompt: the ``assistant`` agent's system prompt (None: the deployment's).
        voice: the ``assistant``'s voice, ``espeak:<voice>`` or ``polly:<VoiceId>``.
        model: the ``assistant``'s model, ``scripted``, ``bedrock:<id>`` or ``openai:<name>``.
    """

    jti: str
    call_uuid: str
    exp: int
    agent: str = "none"
    bidirectional: bool = False
    stream_id: str | None = None
    content_type: str | None = None
    language: str | None = None
    prompt: str | None = None
    voice: str | None = None
    model: str | None = None


_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[TokenClaims] = msgspec.json.Decoder(TokenClaims)


def new_jti() -> str:
    """A fresh random token id."""
    return secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def sign_token(claims: TokenClaims, key: bytes) -> str:
    """Sign ``claims`` into a URL-path-safe token.

    Raises:
        ConfigError: the key is shorter than 16 bytes.
        RequestError: the token would exceed 512 characters (claims too long).
    """
    if len(key) < 16:
        raise ConfigError("the token key must be at least 16 bytes")
    body = _b64(_encoder.encode(claims))
    token = f"{body}.{_mac(key, body)}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise RequestError(f"token of {len(token)} characters is over {MAX_TOKEN_LENGTH}")
    return token


def verify_token(token: str, key: bytes, now: float) -> TokenClaims:
    """Check a token's signature and expiry and return its claims.

    Raises:
        TokenError: ``malformed`` (not two base64url parts of valid claims), ``bad signature``
            or ``expired``; the message says which, never echoing the token.
    """
    if len(token) > MAX_TOKEN_LENGTH or not _SHAPE.fullmatch(token):
        raise TokenError("malformed token")
    body, mac = token.split(".")
    if not hmac.compare_digest(mac.encode("ascii", "replace"), _mac(key, body).encode("ascii")):
        raise TokenError("bad signature")
    try:
        claims = _decoder.decode(_unb64(body))
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise TokenError("malformed token claims") from None
    if claims.exp <= now:
        raise TokenError("expired token")
    return claims


def ws_path(token: str) -> str:
    """The WebSocket path for a token."""
    return AUDIO_PATH_PREFIX + token


def control_auth(stream_id: str, key: bytes) -> str:
    """The bearer credential of a stream's control endpoint (hex HMAC of the stream id)."""
    return hmac.new(key, b"control:" + stream_id.encode(), hashlib.sha256).hexdigest()


def check_control_auth(stream_id: str, authorization: str, key: bytes) -> None:
    """Verify an ``Authorization: Bearer …`` header for a stream's control endpoint.

    Raises:
        AuthError: missing, malformed or wrong credential.
    """
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise AuthError("control endpoint: missing bearer credential")
    if not hmac.compare_digest(credential.strip(), control_auth(stream_id, key)):
        raise AuthError("control endpoint: wrong credential for this stream")
