"""The voice agent's cloud minds (:class:`~stream_server.ports.LanguageModel`).

* :class:`BedrockModel`: Amazon Bedrock's Converse streaming API (the AWS default).
* :class:`OpenAIModel`: any OpenAI-compatible ``/chat/completions`` endpoint, streamed as
  server-sent events (OpenAI itself, or a self-hosted server such as vLLM or llama.cpp's).

Both stream the reply's text as it comes and turn the model's tool calls into
:class:`~stream_server.ports.ToolCall`. Their SDK or socket reads block, so they run in a
thread and hand pieces to the loop through a queue; a cancelled reply (a barge-in) closes the
stream so the thread ends at its next read. Any failure is a :class:`ModelError`, which the
agent answers with its apology.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, cast, get_args

from callstream.adapters.threaded import threaded
from callstream.exceptions import ConfigError, ModelError
from callstream.ports import Said, ToolCall, ToolName

#: The longest reply asked for: a spoken turn is a sentence or two.
MAX_TOKENS = 300
TOOL_NAMES: frozenset[str] = frozenset(get_args(ToolName))  # the port names them once

#: The tools, described once; each adapter writes them in its API's format.
TOOLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("end_call", "End the call after your goodbye has been spoken.", {}),
    ("hand_over", "Hand the call over to a human colleague.", {}),
    (
        "press_dtmf",
        "Press telephone keys (for an automated system on the line).",
        {"digits": {"type": "string", "description": "Keys to press: 0-9, * and #."}},
    ),
)


def _schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def _tool_call(name: str, arguments: str) -> ToolCall | None:
    """A model's tool call, or None for a tool we do not have (a model can invent one)."""
    if name not in TOOL_NAMES:
        return None
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = {}
    args = {k: str(v)[:64] for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    return ToolCall(cast(ToolName, name), args)


def turns(history: Sequence[Said]) -> list[tuple[str, str]]:
    """The conversation as the chat APIs take it: roles alternating, the caller's first.

    The greeting (the agent speaking before the caller) is dropped: both APIs want a
    conversation to open with the user, and the system prompt says who the agent is.
    """
    out: list[tuple[str, str]] = []
    for said in history:
        role = "user" if said.role == "caller" else "assistant"
        if not out and role == "assistant":
            continue
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + " " + said.text)
        else:
            out.append((role, said.text))
    return out


class BedrockModel:
    """Amazon Bedrock's ``ConverseStream`` (any model with tool use: Claude, Nova, Llama…)."""

    def __init__(
        self,
        client: Any,
        model_id: str,
        timeout_s: float = 10.0,
        *,
        tools: bool = True,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        """Ask ``model_id`` through a ``bedrock-runtime`` client.

        ``tools``: offer the agent's tools (a call's digest wants words only).
        """
        self.client, self.model_id, self.timeout_s = client, model_id, timeout_s
        self.tools, self.max_tokens = tools, max_tokens

    def request(self, system: str, history: Sequence[Said]) -> dict[str, Any]:
        """The ``converse_stream`` parameters for this conversation."""
        params: dict[str, Any] = {
            "modelId": self.model_id,
            "system": [{"text": system}],
            "messages": [{"role": r, "content": [{"text": t}]} for r, t in turns(history)],
            "inferenceConfig": {"maxTokens": self.max_tokens},
        }
        if not self.tools:
            return params
        return params | {
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": name,
                            "description": text,
                            "inputSchema": {"json": _schema(props)},
                        }
                    }
                    for name, text, props in TOOLS
                ]
            },
        }

    def reply(self, system: str, history: Sequence[Said]) -> AsyncIterator[str | ToolCall]:
        """Stream the model's reply."""
        params = self.request(system, history)

        def produce(put: Callable[[str | ToolCall], None], stop: threading.Event) -> None:
            try:
                stream = self.client.converse_stream(**params)["stream"]
            except Exception as error:  # ClientError: throttled, access denied, bad model id…
                raise ModelError(f"Bedrock refused: {error}") from error
            try:
                for piece in bedrock_pieces(stream):
                    if stop.is_set():
                        return
                    put(piece)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()

        return threaded(produce, self.timeout_s, "the model")


def bedrock_pieces(events: Iterable[dict[str, Any]]) -> Iterator[str | ToolCall]:
    """Text and tool calls from ConverseStream's events (botocore's dicts, in order).

    Raises:
        ModelError: the stream carried an exception event.
    """
    tools: dict[int, tuple[str, list[str]]] = {}
    for event in events:
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta", {})
            if "text" in delta:
                yield str(delta["text"])
            elif "toolUse" in delta and block.get("contentBlockIndex") in tools:
                tools[block["contentBlockIndex"]][1].append(str(delta["toolUse"].get("input", "")))
        elif "contentBlockStart" in event:
            block = event["contentBlockStart"]
            use = block.get("start", {}).get("toolUse")
            if use:
                tools[block.get("contentBlockIndex", -1)] = (str(use.get("name", "")), [])
        elif "contentBlockStop" in event:
            index = event["contentBlockStop"].get("contentBlockIndex")
            if index in tools:
                name, parts = tools.pop(index)
                if (call := _tool_call(name, "".join(parts))) is not None:
                    yield call
        else:
            failure = next((k for k in event if k.endswith("Exception")), None)
            if failure is not None:
                message = (
                    event[failure].get("message", "") if isinstance(event[failure], dict) else ""
                )
                raise ModelError(f"Bedrock's stream failed: {failure} {message}".strip())


class OpenAIModel:
    """An OpenAI-compatible chat-completions endpoint, streamed (``"stream": true``)."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 10.0
    ) -> None:
        """Ask ``model`` at ``base_url`` (``https://api.openai.com/v1`` or a local server's).

        Raises:
            ConfigError: the URL is not http(s).
        """
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"the model's URL must be http(s): {base_url[:80]!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout_s = model, api_key, timeout_s

    def request(self, system: str, history: Sequence[Said]) -> dict[str, Any]:
        """The request body for this conversation."""
        return {
            "model": self.model,
            "stream": True,
            "max_tokens": MAX_TOKENS,
            "messages": [
                {"role": "system", "content": system},
                *({"role": r, "content": t} for r, t in turns(history)),
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": name, "description": text, "parameters": _schema(props)},
                }
                for name, text, props in TOOLS
            ],
        }

    def reply(self, system: str, history: Sequence[Said]) -> AsyncIterator[str | ToolCall]:
        """Stream the model's reply."""
        body = json.dumps(self.request(system, history)).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # http(s) only: checked in __init__
        request = urllib.request.Request(self.url, body, headers, method="POST")  # noqa: S310

        def produce(put: Callable[[str | ToolCall], None], stop: threading.Event) -> None:
            try:
                answer = urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310
            except urllib.error.HTTPError as error:
                detail = error.read(300).decode("utf-8", "replace")
                raise ModelError(f"the model answered {error.code}: {detail}") from error
            except OSError as error:
                raise ModelError(f"the model is unreachable: {error}") from error
            with answer:
                for piece in openai_pieces(iter(answer.readline, b""), stop):
                    put(piece)

        return threaded(produce, self.timeout_s, "the model")


def openai_pieces(
    lines: Iterable[bytes], stop: threading.Event | None = None
) -> Iterator[str | ToolCall]:
    """Text and tool calls from a chat-completions event stream (``data: {…}`` lines).

    Raises:
        ModelError: the stream carried an error, or a line was not JSON.
    """
    tools: dict[int, list[str]] = {}  # index -> [name, arguments…]
    for raw in lines:
        if stop is not None and stop.is_set():
            return
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # comments, event names, keep-alives
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ModelError(f"the model sent a line that is not JSON: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise ModelError(f"the model failed: {str(chunk['error'])[:200]}")
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str) and delta["content"]:
                yield delta["content"]
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                index, function = (
                    (call.get("index", 0), call.get("function"))
                    if isinstance(call, dict)
                    else (None, None)
                )
                if not isinstance(index, int) or not isinstance(function, dict):
                    continue
                parts = tools.setdefault(index, [""])
                parts[0] += str(function.get("name") or "")
                parts.append(str(function.get("arguments") or ""))
    for _, (name, *arguments) in sorted(tools.items()):
        if (tool := _tool_call(name, "".join(arguments))) is not None:
            yield tool
