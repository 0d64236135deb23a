"""The embedded stack: everything callstream runs on, on this machine, through the real code.

moto in server mode, the real stream server, the HTTP gateway (real API Gateway v2 events), the
poller (real Kinesis and EventBridge events to the real consumers, with Lambda's retry and
on-failure semantics) and the Vobiz simulator, all wired from what CloudFormation receives (the
transformed template, :mod:`local.template`): resources, routes, event sources, retries,
failure queues and the functions' settings; plus the local services (PocketSphinx, VADER) and
secrets kept in (moto's) Secrets Manager.

A real Vobiz from a laptop: Vobiz settings given in the environment are kept, not replaced by
the simulator's (``CALLSTREAM_VOBIZ_API_URL``, ``CALLSTREAM_VOBIZ_AUTH_ID``,
``CALLSTREAM_VOBIZ_AUTH_TOKEN``, and the public URLs Vobiz must reach through a tunnel:
``CALLSTREAM_PUBLIC_BASE_URL`` for the callbacks, ``CALLSTREAM_WS_BASE_URL`` for the WebSocket).
:attr:`Stack.vobiz` says which Vobiz the stack talks to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Literal

from callstream import logsafety, settings, wiring
from local.aws import LocalAws
from local.gateway import Gateway
from local.loops import stop_loop
from local.poller import Poller
from local.template import Template
from local.vobiz_sim import VobizSimulator

AUTH_ID = "MA_LOCAL"
_PUBLIC = ("CALLSTREAM_PUBLIC_BASE_URL", "CALLSTREAM_WS_BASE_URL")
#: Settings that, given in the environment, point the stack at a real Vobiz.
VOBIZ_SETTINGS = (
    "CALLSTREAM_VOBIZ_API_URL",
    "CALLSTREAM_VOBIZ_AUTH_ID",
    "CALLSTREAM_VOBIZ_AUTH_TOKEN",
)


class Stack:
    """Start with :meth:`start`, always :meth:`stop` (a ``with`` block does both)."""

    def __init__(
        self,
        speed: float = 1.0,
        log_file: Path | None = None,
        log_level: str = "WARNING",
        live: Literal["off", "local"] = "off",
    ) -> None:
        """Prepare; ``speed`` makes the simulated calls and Lambda's retry waits N times faster.

        ``live="local"`` hears the calls live (PocketSphinx in the server's recognition worker:
        partials while a caller speaks, docs/transcription.md) instead of per utterance.
        """
        self.speed = speed
        self.live = live
        self.log_level = log_level
        given = {k: os.environ[k] for k in (*VOBIZ_SETTINGS, *_PUBLIC) if os.environ.get(k)}
        #: The real Vobiz settings given in the environment (empty: the simulator plays Vobiz).
        self.real_vobiz = given if all(k in given for k in VOBIZ_SETTINGS) else {}
        self.template = Template()
        self.aws = LocalAws(self.template)
        self.token = secrets.token_urlsafe(24)  # the bearer token standing in for IAM
        self.vobiz_token = secrets.token_urlsafe(24)
        self.token_key = secrets.token_hex(32)  # signs WebSocket tokens and control credentials
        self.sim = VobizSimulator(AUTH_ID, self.vobiz_token, speed)
        self.log_file = log_file
        self.gateway: Gateway | None = None
        self.poller: Poller | None = None
        self.server: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        """Start every part; returns when all are ready."""
        self._saved_env = dict(os.environ)
        self._saved_logging = (list(logging.getLogger().handlers), logging.getLogger().level)
        _reset_caches()
        self._quiet_logs()
        self.aws.start()
        names = self.aws.names
        self.sim.start()
        env = self.template.environment(names)
        env.update(
            {
                "CALLSTREAM_TRANSCRIBER": "local",
                "CALLSTREAM_SENTIMENT": "local",
                "CALLSTREAM_CONSOLE_AUTH": "bearer",  # the local token stands in for Cognito
                "CALLSTREAM_VOBIZ_API_URL": self.sim.url,
                **self.real_vobiz,
                "POWERTOOLS_TRACE_DISABLED": "1",
                "POWERTOOLS_METRICS_DISABLED": "1",
                "POWERTOOLS_LOG_LEVEL": self.log_level,
                "LOG_LEVEL": self.log_level,
            }
        )
        if self.real_vobiz:  # the given credentials, not a secret of ours
            env.pop("CALLSTREAM_VOBIZ_SECRET_ARN", None)
        os.environ.update(env)
        wiring.reset()
        # The secrets live in (moto's) Secrets Manager and are read through their ARNs, as
        # deployed: the process never sees them in its environment.
        secretsmanager = wiring.client("secretsmanager")
        secretsmanager.put_secret_value(
            SecretId=names["TokenSecret"], SecretString=json.dumps({"key": self.token_key})
        )
        secretsmanager.put_secret_value(
            SecretId=names["VobizSecret"],
            SecretString=json.dumps({"auth_id": AUTH_ID, "auth_token": self.vobiz_token}),
        )
        from stream_server.protection import LocalProtection
        from stream_server.tuning import Tuning
        from stream_server.wiring import build_server

        server_settings = settings.ServerSettings(
            audio_stream=names["AudioStream"],
            utterance_stream=names["UtteranceStream"],
            registry_table=names["RegistryTable"],
            nonce_table=names["NonceTable"],
            host="127.0.0.1",
            port=0,
            control_port=0,
            live_transcription=self.live,
        )
        self.server = build_server(
            server_settings, protect=LocalProtection(), tuning=Tuning(metrics_interval_s=3600)
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)
        self.gateway = Gateway(self.template.routes(), self.token).start()
        os.environ["CALLSTREAM_WS_BASE_URL"] = f"ws://127.0.0.1:{self.server.port}"
        os.environ["CALLSTREAM_PUBLIC_BASE_URL"] = self.gateway.url
        os.environ.update({k: v for k, v in self.real_vobiz.items() if k in _PUBLIC})
        self.sim.hangup_url = self.gateway.url + "/vobiz/hangup"
        wiring.reset()
        self.poller = Poller(
            self.aws,
            self.template.sources(),
            names["EventBus"],
            self.template.async_configs(),
            names,
            time_scale=self.speed,
        ).start()
        return self

    def stop(self) -> None:
        """Stop every part that was started (safe to call after a partial start)."""
        if self.poller is not None:
            self.poller.stop()
        if self.server is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(
                    self.server.drain(deadline_s=10), self._loop
                ).result(20)
            except Exception:
                logging.getLogger("callstream.local").exception("stream server drain failed")
        stop_loop(self._loop, self._thread)
        if self.gateway is not None:
            self.gateway.stop()
        self.sim.stop()
        if self.aws.endpoint:
            self.aws.stop()
        if hasattr(self, "_saved_env"):  # this process's environment and caches as they were
            os.environ.clear()
            os.environ.update(self._saved_env)
            handlers, level = self._saved_logging
            for handler in logging.getLogger().handlers:
                if handler not in handlers:
                    handler.close()
            logging.getLogger().handlers[:] = handlers
            logging.getLogger().setLevel(level)
        _reset_caches()

    @property
    def vobiz(self) -> str:
        """Which Vobiz the stack talks to, in words."""
        if self.real_vobiz:
            return f"real Vobiz at {self.real_vobiz['CALLSTREAM_VOBIZ_API_URL']}"
        return f"the Vobiz simulator at {self.sim.url}"

    def endpoints(self) -> dict[str, str]:
        """What a user needs to talk to the stack."""
        assert self.gateway is not None and self.server is not None
        return {
            "api": self.gateway.url,
            "console": f"{self.gateway.url}/console#token={self.token}",
            "token": self.token,
            "websocket": os.environ.get("CALLSTREAM_WS_BASE_URL", "") + "/v1/audio/",
            "vobiz": self.vobiz,
            "aws": self.aws.endpoint,
        }

    def _quiet_logs(self) -> None:
        """Logs go to a file (or nowhere): the demo's terminal shows the call, not the logs."""
        root = logging.getLogger()
        root.handlers[:] = [
            logging.FileHandler(self.log_file) if self.log_file else logging.NullHandler()
        ]
        root.setLevel(self.log_level)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
        logsafety.install()  # the product's own protection, as in AWS: not a stack-only quiet


def _reset_caches() -> None:
    """Forget clients, secrets and services cached from another environment."""
    wiring.reset()
