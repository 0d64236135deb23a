"""``make up``: keep the embedded stack running and print how to talk to it.

Every call you start through the API is a simulated live call: the Vobiz simulator streams the
shared support call into it in real time (or ``--speed`` times faster).
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
import warnings
from pathlib import Path

from local.stack import Stack


def walkthrough(endpoints: dict[str, str], call: str) -> str:
    """Commands to paste into a shell, which a test runs as printed.

    They start a talk-back stream on a simulated call, list the call's streams, play a second
    of silence into it (answered at once with the play's id), follow the play to ``played``
    and stop the stream.
    """
    e = endpoints
    silence = "$(head -c 16000 /dev/zero | base64 | tr -d '\\n')"  # GNU wraps, macOS does not
    return f"""export API={e["api"]} TOKEN={e["token"]} CALL={call}
STREAM=$(curl -s -X POST $API/v1/calls/$CALL/streams -H "Authorization: Bearer $TOKEN" \\
     -d '{{"audio_track": "inbound", "bidirectional": true, "agent": "none"}}' \\
     | python3 -c 'import json, sys; print(json.load(sys.stdin)["stream_id"])'); echo $STREAM
sleep 2; curl -s $API/v1/calls/$CALL/streams -H "Authorization: Bearer $TOKEN"; echo
PLAY=$(curl -s -X POST $API/v1/streams/$STREAM/play -H "Authorization: Bearer $TOKEN" \\
     -d "{{\\"audio_b64\\": \\"{silence}\\", \\"sample_rate\\": 8000}}" \\
     | python3 -c 'import json, sys; print(json.load(sys.stdin)["play_id"])'); echo $PLAY
sleep 2; curl -s $API/v1/streams/$STREAM/plays/$PLAY -H "Authorization: Bearer $TOKEN"; echo
curl -s -X DELETE $API/v1/streams/$STREAM -H "Authorization: Bearer $TOKEN"; echo
"""


def main(argv: list[str] | None = None) -> int:
    """Run until interrupted."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    parser = argparse.ArgumentParser(prog="python -m local.up", description=__doc__)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--log", type=Path, default=Path("out/stack.log"))
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with Stack(speed=args.speed, log_file=args.log) as stack:
        e = stack.endpoints()
        print(
            f"callstream embedded stack is up (logs: {args.log}); Ctrl-C stops it.\n\n"
            f"  API        {e['api']}     (Authorization: Bearer $TOKEN)\n"
            f"  Console    {e['console']}\n"
            f"  WebSocket  {e['websocket']}\n"
            f"  Vobiz      {e['vobiz']}\n"
            f"  AWS (moto) {e['aws']}\n\n" + walkthrough(e, str(uuid.uuid4())),
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
