"""No secret (Vobiz auth token, token key, signatures, WebSocket tokens, control credentials)
and no call audio in any log line of a full call through the embedded stack, every logger at
DEBUG, the secrets read from Secrets Manager as deployed. The stack quiets no library itself:
what protects the logs is the product's own (callstream.logsafety)."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
import warnings

import pytest

from callstream.control.tokens import control_auth
from local.demo import api
from local.stack import Stack
from local.vobiz_sim import SimCall


@pytest.mark.slow
def test_a_full_call_logs_no_secret(tmp_path, capfd):
    warnings.filterwarnings("ignore", "No application metrics to publish")
    log = tmp_path / "stack.log"
    done = threading.Event()
    with Stack(speed=16, log_file=log, log_level="DEBUG") as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(
            lambda e: done.set() if e["detail-type"] == "Call Completed" else None
        )
        call = stack.sim.add_call(SimCall(str(uuid.uuid4())))
        status, answer = api(
            stack,
            "POST",
            f"/v1/calls/{call.call_uuid}/streams",
            {"audio_track": "inbound", "bidirectional": True, "agent": "prompt"},
        )
        assert status == 201
        assert done.wait(120), "the call completed"
        secrets = {
            "vobiz auth token": stack.vobiz_token,
            "token key": stack.token_key,
            "control credential": control_auth(answer["stream_id"], stack.token_key.encode()),
            "websocket token": answer["service_url"].rsplit("/", 1)[1],
            **{f"signature {i}": s for i, s in enumerate(stack.sim.signatures)},
        }
        time.sleep(0.2)
    captured = capfd.readouterr()
    logs = log.read_text() + captured.out + captured.err
    assert len(logs) > 1000, "DEBUG logging was on: there is something to scan"
    assert len(stack.sim.signatures) >= 2
    leaked = [name for name, value in secrets.items() if value and value in logs]
    assert leaked == []
    assert "CALLSTREAM_TOKEN_KEY" not in os.environ, "the key came from Secrets Manager"
    audio = re.findall(r"[A-Za-z0-9+/]{192,}={0,2}", logs)
    assert audio == [], f"base64 audio in the logs: {audio[0][:60]}…"
    assert "GetSecretValue" not in logs or "SecretString" not in logs
