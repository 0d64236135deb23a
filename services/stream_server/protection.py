"""ECS task scale-in protection while a task holds live calls.

On Fargate the ECS agent exposes ``$ECS_AGENT_URI/task-protection/v1/state``: a task that sets
``ProtectionEnabled`` is not chosen for scale-in, so autoscaling never cuts a live call. The
protection expires by itself (``ExpiresInMinutes``), so a task that dies never holds it forever;
:class:`TaskProtection` refreshes it while calls are live and drops it when the last one ends.
Off ECS (no ``ECS_AGENT_URI``) :class:`LocalProtection` only remembers the state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.request

from stream_server.ports import Protection

log = logging.getLogger("callstream.protection")


class LocalProtection:
    """No ECS here: remember the state (tests read it) and do nothing else."""

    def __init__(self) -> None:
        """Start unprotected."""
        self.protected = False
        self.changes: list[bool] = []

    async def set(self, protected: bool) -> None:
        """Record the state."""
        if protected != self.protected:
            self.changes.append(protected)
        self.protected = protected


class TaskProtection:
    """Calls the ECS agent's task-protection endpoint (in a thread, never on the loop)."""

    def __init__(self, agent_uri: str, expires_minutes: int = 60, timeout_s: float = 3.0) -> None:
        """Use the agent at ``agent_uri`` (``$ECS_AGENT_URI``)."""
        self._url = agent_uri.rstrip("/") + "/task-protection/v1/state"
        self._expires = expires_minutes
        self._timeout = timeout_s
        self._protected = False
        self._refreshed = 0.0

    async def set(self, protected: bool) -> None:
        """Set the protection; refresh it when more than half its lifetime has passed."""
        stale = time.monotonic() - self._refreshed > self._expires * 30
        if protected == self._protected and not (protected and stale):
            return
        try:
            await asyncio.to_thread(self._put, protected)
        except OSError as error:  # the call goes on; scale-in protection is best effort
            log.warning("task protection update failed: %s", error)
            return
        self._protected = protected
        self._refreshed = time.monotonic()

    def _put(self, protected: bool) -> None:
        body: dict[str, object] = {"ProtectionEnabled": protected}
        if protected:
            body["ExpiresInMinutes"] = self._expires
        request = urllib.request.Request(  # noqa: S310 - the URL is the local ECS agent's
            self._url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            response.read()


def from_environment() -> Protection:
    """The ECS agent's protection on ECS, a local stand-in elsewhere."""
    uri = os.environ.get("ECS_AGENT_URI")
    return TaskProtection(uri) if uri else LocalProtection()
