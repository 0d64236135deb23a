"""The offline model: the repository's script, matched on words, streamed word by word."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.exceptions import ConfigError
from callstream.ports import Said, ToolCall
from stream_server.scripted_model import ScriptedModel, load_script

SCRIPT = Path(__file__).resolve().parents[3] / "samples" / "assistant_script.yaml"


async def answer(model: ScriptedModel, *caller: str) -> list[str | ToolCall]:
    history = [Said("caller", text) for text in caller]
    return [piece async for piece in model.reply("", history)]


async def test_the_callers_last_words_choose_the_reply_streamed_word_by_word_then_its_tool():
    model = ScriptedModel(load_script(SCRIPT))
    pieces = await answer(model, "hello", "I'd like to BOOK a hotel room")
    text = "".join(p for p in pieces if isinstance(p, str))
    assert text.startswith("I can help with that booking.") and len(pieces) > 5
    assert await answer(model, "that's all, goodbye") == [
        *[p for p in await answer(model, "bye") if isinstance(p, str)],
        ToolCall("end_call"),
    ]
    assert (await answer(model, "can I talk to a human"))[-1] == ToolCall("hand_over")
    fallback = "".join(p for p in await answer(model, "purple elephants") if isinstance(p, str))
    assert fallback == model.script.fallback


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("intents: 3", "list of intents"),
        ("intents: [{name: x, reply: hi}]", "intent x needs words"),
        ("intents: [{name: y, words: [a], reply: hi, tool: launch}]", "no tool 'launch'"),
        ("intents: [oops", "assistant script"),
    ],
)
def test_a_wrong_script_is_refused_naming_what_is_wrong(tmp_path, text, named):
    path = tmp_path / "script.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load_script(path)
    with pytest.raises(ConfigError, match="assistant script"):
        load_script(tmp_path / "missing.yaml")
