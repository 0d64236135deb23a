"""events/: a sample for every function, true to what the code makes now, each replayed
through its real handler on the embedded stack (``make invoke``'s path)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest

from callstream.audio import records
from local.invoke import main, receivers, sample_credentials, seed
from local.lambdas import invoke
from local.stack import Stack
from local.template import ROOT, Template
from tests.conftest import make_events

EVENTS = ROOT / "events"
SAMPLES = sorted(p for p in EVENTS.glob("*/*.json"))
#: Stamped when made, not part of what a sample says.
MADE_AT = ("published_at", "received_at", "scored_at", "completed_at")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def unstamped(record: records.Record) -> records.Record:
    return msgspec.structs.replace(record, received_at=0.0)  # type: ignore[type-var]


def without_stamps(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k not in MADE_AT}


def test_every_function_in_the_template_has_a_sample_the_template_routes_to_it() -> None:
    template = Template()
    covered: dict[str, list[str]] = {}
    for path in SAMPLES:
        for function in receivers(template, load(path)):
            covered.setdefault(function, []).append(path.name)
    assert set(covered) == set(template.functions().values())
    assert {p.parent.name for p in SAMPLES} >= {
        "api",
        "callbacks",
        "kinesis",
        "eventbridge",
        "schedule",
    }


def test_the_route_and_callback_samples_are_what_make_events_writes() -> None:
    for path, doc in make_events().api_events().items():
        assert load(path) == doc, f"{path.name} is stale: run make events"


def test_the_kinesis_samples_are_the_tapes_records_through_todays_encoder() -> None:
    audio, utterances = make_events().tape_records()
    for name, made in (("audio_stream.json", audio), ("utterance_stream.json", utterances)):
        sample = load(EVENTS / "kinesis" / name)["Records"]
        assert len(sample) == len(made) > 0
        for entry, (key, data) in zip(sample, made, strict=True):
            stored = records.decode(
                msgspec.json.decode(json.dumps(entry["kinesis"]["data"]).encode(), type=bytes)
            )
            assert entry["kinesis"]["partitionKey"] == key
            assert unstamped(stored) == unstamped(records.decode(data)), f"{name} is stale"


def test_make_invoke_prints_the_answer_alone_on_stdout_and_says_what_is_wrong(capsys) -> None:
    # before the module's stack starts: one stack to a process
    assert main([str(EVENTS / "schedule" / "sweep_streams.json"), "--empty"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"swept": [], "given_back": [], "lost": []}
    assert "sweep_streams <- " in out.err
    assert main([str(EVENTS / "eventbridge" / "utterance_transcribed.json")]) == 2
    assert "analyze_sentiment, console_feed: give FN=" in capsys.readouterr().err
    assert main([str(EVENTS / "api" / "get_stream.json"), "-f", "no_such"]) == 2
    assert "no function 'no_such'" in capsys.readouterr().err
    assert main([str(EVENTS / "nothing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seeded() -> Any:
    """One stack holding the sample call, and what its records made the consumers publish."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    published: list[dict[str, Any]] = []
    with Stack(speed=50) as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(published.append)
        seed(stack)
        yield stack, published


def test_the_bus_samples_are_what_the_consumers_publish_for_the_kinesis_samples(seeded) -> None:
    _, published = seeded
    now: dict[str, dict[str, Any]] = {}
    for event in published:  # the first of each kind, as make events keeps
        now.setdefault(event["detail-type"], event)
    for path in sorted((EVENTS / "eventbridge").glob("*.json")):
        sample = load(path)
        assert sample["detail-type"] in now, f"nothing publishes {sample['detail-type']} now"
        fresh = now[sample["detail-type"]]
        assert without_stamps(sample["detail"]) == without_stamps(fresh["detail"]), path.name
        assert sample["source"] == fresh["source"] == "callstream"


@pytest.mark.parametrize(
    "path",
    [p for p in SAMPLES if p.parent.name in ("kinesis", "eventbridge", "schedule")],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_each_record_and_bus_sample_is_handled_by_every_function_it_reaches(seeded, path) -> None:
    stack, _ = seeded
    event = load(path)
    functions = receivers(stack.template, event)
    assert functions
    for function in functions:
        answer = invoke(function, event)  # a raise is a failed invocation: the test fails
        assert isinstance(answer, dict)
        if path.parent.name == "kinesis":
            assert answer == {"batchItemFailures": []}
        if function == "finalize_call":  # the sample call is whole: its summary is written
            assert answer["utterances"] and answer["utterances"][0]["sentiment"]


#: The console's and the stream operations' samples, on a stack holding the ended sample call.
ROUTES = {
    "console_page.json": (200, "<!doctype html>"),
    "console_asset.json": (200, "callstream's live console"),
    "console_config.json": (200, '"auth": "bearer"'),
    "console_calls.json": (200, '"calls": []'),  # state=live: the sample call has ended
    "console_events.json": (200, '"type": "Recording Ready"'),
    "console_recording.json": (200, '"url": "http://127.0.0.1'),
    "console_transcript.json": (200, "agent [POSITIVE]: thank you for calling"),
    "console_clear.json": (409, "is not live"),
    "control_stream_end.json": (409, "is not live"),
    "get_stream.json": (200, '"state": "stopped"'),
    "stop_all_streams.json": (200, '"streams": []'),
}


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_console_and_stream_sample_answers_for_the_sample_call(seeded, name) -> None:
    stack, _ = seeded
    event = load(EVENTS / "api" / name)
    (function,) = receivers(stack.template, event)
    answer = invoke(function, event)
    status, says = ROUTES[name]
    assert (answer["statusCode"], says in answer["body"]) == (status, True), answer["body"][:300]


def test_a_callback_sample_verifies_with_the_credentials_it_was_signed_with(seeded) -> None:
    stack, _ = seeded
    sample_credentials(stack)
    event = load(EVENTS / "callbacks" / "played_form.json")
    answer = invoke("stream_callback", event)
    assert answer["statusCode"] == 200, answer["body"]
    forged = invoke("stream_callback", load(EVENTS / "callbacks" / "start_form_forged.json"))
    assert forged["statusCode"] == 403
