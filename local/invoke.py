"""Replay one event through one real handler on the embedded stack, without Docker: ``make invoke``.

    make invoke EVENT=events/kinesis/utterance_stream.json
    make invoke FN=console_api EVENT=events/api/console_calls.json

The stack (moto, the stream server, the Vobiz simulator) starts as ``make demo``'s does and
first holds the sample call the events describe (``events/kinesis``' records through their
consumers, and what those publish through theirs: its recording, transcript and scores), so a
bus event about it finds what it names; ``--empty`` skips that. The function gets the event
as Lambda would (its timeout from the template, a Lambda context) and
its answer is printed as JSON. Without ``FN`` the function is the one the template routes the
event to (the route, the stream's event source mapping, the bus rule or the schedule); a bus
event that several rules match needs ``FN``. The bus events a handler publishes are printed
after its answer, and reach their consumers as in AWS. ``sam local invoke -e <file>`` reads the
same files (with Docker).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from moto.events.models import EventPattern

from local.template import ROOT, Template


def receivers(template: Template, event: dict[str, Any]) -> list[str]:
    """The functions the deployed stack hands ``event`` to (function folders)."""
    if event.get("version") == "2.0" and "routeKey" in event:  # API Gateway v2: its route
        return [
            r.function for r in template.routes() if f"{r.method} {r.path}" == event["routeKey"]
        ]
    records = event.get("Records") or [{}]
    if records[0].get("eventSource") == "aws:kinesis":
        stream = records[0]["eventSourceARN"].rsplit("/", 1)[-1]
        return [
            s.function for s in template.sources() if s.kind == "kinesis" and s.stream == stream
        ]
    if event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events":
        return template.schedules()
    if "detail-type" in event:
        return [
            s.function
            for s in template.sources()
            if s.kind == "rule" and EventPattern.load(s.pattern).matches_event(event)
        ]
    return []


#: What events/callbacks are signed with (scripts/make_events.py): the documented test ones.
SAMPLE_VOBIZ = {"auth_id": "MA_TEST", "auth_token": "test-auth-token-callstream"}
SAMPLE_RECORDS = ("audio_stream.json", "utterance_stream.json")


def seed(stack: Any) -> None:
    """The sample call on the stack: its Kinesis records through their consumers, and on."""
    import threading

    from local.lambdas import invoke

    completed = threading.Event()  # the chain's last link: then every consumer has run

    def listen(event: dict[str, Any]) -> None:
        if event.get("detail-type") == "Call Completed":
            completed.set()

    stack.poller.listeners.append(listen)
    try:
        for name in SAMPLE_RECORDS:
            event = json.loads((ROOT / "events" / "kinesis" / name).read_text())
            for function in receivers(stack.template, event):
                invoke(function, event)
        if not completed.wait(60):
            raise RuntimeError("the sample call was not completed in 60 s: see the stack's log")
        deadline = time.monotonic() + 30
        while not stack.poller.idle() and time.monotonic() < deadline:
            time.sleep(0.05)  # Call Completed's own consumers (the console's feed)
    finally:
        stack.poller.listeners.remove(listen)


def sample_credentials(stack: Any) -> None:
    """The Vobiz secret holds the credentials the callback samples are signed with."""
    from callstream import wiring

    wiring.client("secretsmanager").put_secret_value(
        SecretId=stack.aws.names["VobizSecret"], SecretString=json.dumps(SAMPLE_VOBIZ)
    )
    wiring.reset()


def main(argv: list[str] | None = None) -> int:
    """Run ``make invoke``; the exit status is 0 for an answer, 1 for a raise, 2 for bad usage."""
    parser = argparse.ArgumentParser(prog="make invoke", description=__doc__.split("\n")[0])
    parser.add_argument("event", type=Path, help="a JSON event file (events/...)")
    parser.add_argument("--function", "-f", default="", help="a folder under functions/")
    parser.add_argument("--empty", action="store_true", help="no sample call on the stack first")
    parser.add_argument("--log-file", type=Path, default=ROOT / "out" / "invoke.log")
    args = parser.parse_args(argv)
    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as error:
        print(f"make invoke: cannot read {args.event}: {error}", file=sys.stderr)
        return 2
    template = Template()
    function = args.function
    if not function:
        found = receivers(template, event)
        if len(found) != 1:
            said = ", ".join(found) or "no function"
            print(
                f"make invoke: the template sends this event to {said}: give FN=", file=sys.stderr
            )
            return 2
        function = found[0]
    if function not in template.functions().values():
        known = ", ".join(sorted(template.functions().values()))
        print(f"make invoke: no function {function!r} (one of: {known})", file=sys.stderr)
        return 2

    from local.lambdas import invoke
    from local.stack import Stack

    args.log_file.parent.mkdir(parents=True, exist_ok=True)
    published: list[dict[str, Any]] = []
    # Powertools says so when a handler published no metric: not the user's concern here.
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
    # stdout holds the answer alone (to pipe into jq): what the stack prints goes to stderr
    with contextlib.redirect_stdout(sys.stderr), Stack(log_file=args.log_file) as stack:
        assert stack.poller is not None
        if not args.empty:
            seed(stack)
        if any(k.startswith("x-vobiz-signature") for k in event.get("headers") or {}):
            sample_credentials(stack)  # a callback sample verifies, as Vobiz's would in AWS
        stack.poller.listeners.append(published.append)
        print(f"{function} <- {args.event}", file=sys.stderr)
        try:
            answer = invoke(function, event)
        except Exception:
            traceback.print_exc()
            print(
                f"make invoke: {function} raised (Lambda reports it as a function error; "
                f"logs: {args.log_file})",
                file=sys.stderr,
            )
            return 1
        deadline = time.monotonic() + 2  # what it published reaches the bus tap
        while time.monotonic() < deadline and not published:
            time.sleep(0.05)
    print(json.dumps(answer, indent=2, default=str))
    for sent in published:
        print(
            f"published: {sent['detail-type']} {json.dumps(sent['detail'])[:200]}", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
