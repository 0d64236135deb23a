"""The cloud models: an OpenAI-compatible endpoint (a local fake server speaking its streaming
format) and Bedrock's ConverseStream (its request checked against botocore's own model of the
API, its events in the shape botocore yields them)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters

from callstream.adapters.language_models import (
    BedrockModel,
    OpenAIModel,
    bedrock_pieces,
    openai_pieces,
    turns,
)
from callstream.exceptions import ConfigError, ModelError
from callstream.ports import Said, ToolCall

HISTORY = [
    Said("agent", "Hello, how can I help?"),  # the greeting: before the caller's first turn
    Said("caller", "I need to book a room."),
    Said("agent", "For which night?"),
    Said("caller", "Friday."),
    Said("caller", "Two people."),
]


def _chunk(**delta: Any) -> bytes:
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class FakeOpenAI(ThreadingHTTPServer):
    """A chat-completions server: the reply of the model named in the request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.go_on = threading.Event()  # the rest of the reply waits for the client's word

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        assert self.path == "/v1/chat/completions"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((body, dict(self.headers)))
        model = body["model"]
        if model == "refuses":
            data = b'{"error": {"message": "Rate limit reached", "type": "rate_limit"}}'
            self.send_response(429)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if model == "silent":
            self.server.go_on.wait(10)
            return
        self.wfile.write(b": keep-alive\n\n" + _chunk(role="assistant", content=""))
        self.wfile.write(_chunk(content="Friday for two, "))
        self.wfile.flush()
        self.server.go_on.wait(10)  # the client has the first words before the rest exists
        if model == "breaks":
            self.wfile.write(b'data: {"error": {"message": "overloaded"}}\n\n')
            return
        self.wfile.write(_chunk(content="booked. Goodbye!"))
        calls = [
            {
                "index": 0,
                "id": "t1",
                "type": "function",
                "function": {"name": "end_", "arguments": ""},
            },
            {"index": 0, "function": {"name": "call", "arguments": "{}"}},
            {"index": 1, "id": "t2", "type": "function", "function": {"name": "press_dtmf"}},
            {"index": 1, "function": {"arguments": '{"digits": '}},
            {"index": 1, "function": {"arguments": '"12#"}'}},
            {"index": 2, "id": "t3", "type": "function", "function": {"name": "launch_rockets"}},
        ]
        for call in calls:
            self.wfile.write(_chunk(tool_calls=[call]))
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.go_on.set()
    server.shutdown()
    server.server_close()


async def test_the_reply_streams_before_it_is_finished_and_its_tool_calls_follow(fake_openai):
    model = OpenAIModel(fake_openai.url, "gpt-test", api_key="sk-test")
    stream = model.reply("Be brief.", HISTORY)
    first = await anext(stream)
    assert first == "Friday for two, "  # while the server still holds the rest back
    fake_openai.go_on.set()
    rest = [piece async for piece in stream]
    assert rest == [
        "booked. Goodbye!",
        ToolCall("end_call"),
        ToolCall("press_dtmf", {"digits": "12#"}),
    ]
    body, headers = fake_openai.requests[0]
    assert headers["Authorization"] == "Bearer sk-test" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I need to book a room."},
        {"role": "assistant", "content": "For which night?"},
        {"role": "user", "content": "Friday. Two people."},
    ]
    assert {t["function"]["name"] for t in body["tools"]} == {"end_call", "hand_over", "press_dtmf"}


async def test_a_refusal_an_error_midway_and_silence_are_model_errors(fake_openai):
    with pytest.raises(ModelError, match=r"answered 429: .*Rate limit"):
        _ = [p async for p in OpenAIModel(fake_openai.url, "refuses").reply("", HISTORY)]
    fake_openai.go_on.set()
    pieces: list[Any] = []
    with pytest.raises(ModelError, match="overloaded"):
        async for piece in OpenAIModel(fake_openai.url, "breaks").reply("", HISTORY):
            pieces.append(piece)
    assert pieces == ["Friday for two, "]  # what came before the error was streamed
    fake_openai.go_on.clear()
    with pytest.raises(ModelError, match=r"sent nothing for 0\.3 s"):
        _ = [
            p
            async for p in OpenAIModel(fake_openai.url, "silent", timeout_s=0.3).reply("", HISTORY)
        ]
    with pytest.raises(ModelError, match="unreachable"):
        _ = [p async for p in OpenAIModel("http://127.0.0.1:9/v1", "x").reply("", HISTORY)]
    with pytest.raises(ConfigError, match="http"):
        OpenAIModel("file:///etc/passwd", "x")


async def test_a_reply_dropped_midway_leaves_nothing_behind(fake_openai):
    stream = OpenAIModel(fake_openai.url, "gpt-test").reply("", HISTORY)
    assert await anext(stream) == "Friday for two, "
    await stream.aclose()  # a barge-in
    fake_openai.go_on.set()
    again = [p async for p in OpenAIModel(fake_openai.url, "gpt-test").reply("", HISTORY)]
    assert again[0] == "Friday for two, " and len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    "line",
    [
        b"data: {not json",
        b'data: {"choices": [{"delta": 3}]}',
        b'data: {"choices": 7}',
        b"data: 5",
        b'data: {"choices": [{"delta": {"tool_calls": 4}}]}',
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": "x", "function": {}}]}}]}',
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": 1}]}}]}',
        b'data: {"choices": [{"delta": {"content": ["a"]}}]}',
    ],
)
def test_hostile_stream_lines_are_refused_or_skipped_never_crash(line):
    try:
        pieces = list(openai_pieces([line, b"data: [DONE]"]))
    except ModelError as error:
        assert "not JSON" in error.message
    else:
        assert pieces == []


def test_the_conversation_alternates_and_opens_with_the_caller():
    assert turns(HISTORY)[0] == ("user", "I need to book a room.")
    assert [role for role, _ in turns(HISTORY)] == ["user", "assistant", "user"]
    assert turns([Said("agent", "Hello")]) == []


def test_bedrocks_request_is_one_its_api_accepts():
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
    params = BedrockModel(runtime, "us.anthropic.claude-haiku-4-5-20251001-v1:0").request(
        "Be brief.", HISTORY
    )
    shape = runtime.meta.service_model.operation_model("ConverseStream").input_shape
    validate_parameters(params, shape)  # raises ParamValidationError on any wrong field
    assert params["messages"][0] == {
        "role": "user",
        "content": [{"text": "I need to book a room."}],
    }


#: ConverseStream's events as botocore yields them: text, then a tool use streamed in parts.
BEDROCK_EVENTS = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Friday for two, "}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"text": "booked."}, "contentBlockIndex": 0}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "t1", "name": "press_dtmf"}}, "contentBlockIndex": 1}},
    {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"digits"'}}, "contentBlockIndex": 1}},
    {"contentBlockDelta": {"delta": {"toolUse": {"input": ': "9"}'}}, "contentBlockIndex": 1}},
    {"contentBlockStop": {"contentBlockIndex": 1}},
    {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "t2", "name": "fly"}}, "contentBlockIndex": 2}},
    {"contentBlockStop": {"contentBlockIndex": 2}},
    {"messageStop": {"stopReason": "tool_use"}},
    {"metadata": {"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}, "metrics": {"latencyMs": 300}}},
]  # fmt: skip


class _Stream(list):
    closed = False

    def close(self) -> None:
        self.closed = True


class _Runtime:
    def __init__(self, events: list[dict[str, Any]] | Exception) -> None:
        self.events, self.stream = events, _Stream()

    def converse_stream(self, **params: Any) -> dict[str, Any]:
        if isinstance(self.events, Exception):
            raise self.events
        self.stream = _Stream(self.events)
        return {"stream": self.stream}


async def test_bedrocks_stream_becomes_text_and_tool_calls_and_is_closed():
    runtime = _Runtime(BEDROCK_EVENTS)
    pieces = [p async for p in BedrockModel(runtime, "m").reply("", HISTORY)]
    assert pieces == ["Friday for two, ", "booked.", ToolCall("press_dtmf", {"digits": "9"})]
    assert runtime.stream.closed
    failing = [*BEDROCK_EVENTS[:2], {"throttlingException": {"message": "slow down"}}]
    with pytest.raises(ModelError, match="throttlingException slow down"):
        _ = [p async for p in BedrockModel(_Runtime(failing), "m").reply("", HISTORY)]
    with pytest.raises(ModelError, match="Bedrock refused: no access"):
        _ = [
            p
            async for p in BedrockModel(_Runtime(RuntimeError("no access")), "m").reply("", HISTORY)
        ]
    assert (
        list(bedrock_pieces([{"contentBlockDelta": {"delta": {"toolUse": {"input": "x"}}}}])) == []
    )


def test_a_reader_thread_that_outlives_its_reply_hands_over_nothing_and_raises_nothing():
    """A socket read times out after the reply was given up (and its loop closed): the thread's
    late piece is dropped, not an error in a thread (found by the full suite, once)."""
    import asyncio

    from callstream.adapters.threaded import threaded

    release, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def produce(put: Any, stop: threading.Event) -> None:
        release.wait(5)
        try:
            put("too late")
        except BaseException as error:
            errors.append(error)
        done.set()

    async def consume() -> None:
        with pytest.raises(ModelError, match="sent nothing"):
            async for _ in threaded(produce, 0.1, "the model"):
                pass

    asyncio.run(consume())  # its loop is closed once this returns
    release.set()
    assert done.wait(5) and errors == []
