"""What the control plane's operations talk to, injected (``callstream.wiring`` builds it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from callstream import settings
from callstream.control.tokens import TokenClaims, new_jti, sign_token, ws_path
from callstream.ports import (
    EventBus,
    Once,
    OnceStore,
    Registry,
    Tasks,
    Vobiz,
    VobizCredentials,
)


class StreamChoice(Protocol):
    """What a stream's token grants, as a start request and an answer's options both say it.

    Read-only members (properties), so that pydantic models with narrower types fit.
    """

    @property
    def agent(self) -> str:
        """The talk-back agent."""

    @property
    def bidirectional(self) -> bool:
        """Whether the app may talk back."""

    @property
    def content_type(self) -> str:
        """The stream's content type."""

    @property
    def language(self) -> str | None:
        """What the stream is heard in (None: the deployment's)."""

    @property
    def prompt(self) -> str | None:
        """The assistant's system prompt (None: the deployment's)."""

    @property
    def voice(self) -> str | None:
        """The assistant's voice (None: the deployment's)."""

    @property
    def model(self) -> str | None:
        """The assistant's model (None: the deployment's)."""


@dataclass(eq=False)
class ControlServices:
    """The registry, once-store, bus, tasks and Vobiz of the control plane, and its settings.

    The Vobiz client and the token key read Secrets Manager, so they are built on first use from
    the factories given: read-only routes never need (nor are granted) the secrets.
    """

    registry: Registry
    once: OnceStore
    events: EventBus
    config: settings.ApiSettings
    tasks: Tasks
    vobiz_factory: Callable[[], Vobiz]
    credentials: Callable[[], VobizCredentials]
    token_key_source: Callable[[], bytes]
    starts: Once  # starts keyed on (Idempotency-Key, call uuid)

    @cached_property
    def vobiz(self) -> Vobiz:
        """The Vobiz REST client (reads the Vobiz credentials)."""
        return self.vobiz_factory()

    @cached_property
    def token_key(self) -> bytes:
        """The key that signs tokens and control credentials."""
        return self.token_key_source()

    def service_url(self, call_uuid: str, choice: StreamChoice) -> str:
        """A stream's WebSocket URL: the stream server's, with a fresh signed token.

        ``choice`` is a start request's or an answer's options; the ``assistant``'s ``prompt``,
        ``voice`` and ``model`` are signed in only for that agent.
        """
        mine = choice.agent == "assistant"
        claims = TokenClaims(
            jti=new_jti(),
            call_uuid=call_uuid,
            exp=int(time.time()) + self.config.token_ttl_s,
            agent=choice.agent,
            bidirectional=choice.bidirectional,
            content_type=choice.content_type,
            language=choice.language,
            prompt=choice.prompt if mine else None,
            voice=choice.voice if mine else None,
            model=choice.model if mine else None,
        )
        return self.config.ws_base_url.rstrip("/") + ws_path(sign_token(claims, self.token_key))

    def callback_url(self, public_base: str) -> str:
        """Where Vobiz posts stream status: the configured public URL, else the request's own.

        The template cannot give the API's own URL to its functions: that reference closes a
        dependency cycle between the API and its functions.
        """
        return (self.config.public_base_url or public_base).rstrip("/") + "/vobiz/stream-status"
