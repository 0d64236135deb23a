"""The offline language model: intents and replies from a small YAML file, matched on words.

The embedded stack's stand-in for Bedrock (no model ships its weights in a package:
../shared/SPEECH.md). It streams its reply word by word, after ``first_token_s`` (0 by
default; a bench sets a cloud model's delay), and asks for an intent's tool after it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from callstream.exceptions import ConfigError
from callstream.ports import Said, ToolCall, ToolName

_WORD = re.compile(r"[a-z0-9']+")
TOOLS: tuple[ToolName, ...] = get_args(ToolName)
#: The repository's script (``samples/``; the image copies it to the same place under /app).
DEFAULT_SCRIPT = Path(__file__).resolve().parents[2] / "samples" / "assistant_script.yaml"


@dataclass(frozen=True)
class Intent:
    """Words that call for a reply (and a tool)."""

    name: str
    words: tuple[str, ...]
    reply: str
    tool: ToolName | None = None


@dataclass(frozen=True)
class Script:
    """A greeting, intents in order, and what to say when none matches."""

    greeting: str
    fallback: str
    intents: tuple[Intent, ...]


def load_script(path: str | Path) -> Script:
    """Read and check a script file.

    Raises:
        ConfigError: the file is missing, not YAML, or an intent lacks its words or reply
            (the message names the file and the intent).
    """
    import yaml  # type: ignore[import-untyped]  # (PyYAML ships no stubs; types-PyYAML is not a dependency)

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"assistant script {path}: {error}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), list):
        raise ConfigError(f"assistant script {path}: needs a mapping with a list of intents")
    intents = []
    for n, raw in enumerate(cast(list[Any], doc["intents"])):
        name = str(raw.get("name", n)) if isinstance(raw, dict) else str(n)
        if not isinstance(raw, dict) or not raw.get("words") or not raw.get("reply"):
            raise ConfigError(f"assistant script {path}: intent {name} needs words and a reply")
        tool = raw.get("tool")
        if tool is not None and tool not in TOOLS:
            raise ConfigError(f"assistant script {path}: intent {name}: no tool {tool!r}")
        words = tuple(str(w).lower() for w in raw["words"])
        intents.append(Intent(name, words, str(raw["reply"]), cast(ToolName | None, tool)))
    return Script(
        greeting=str(doc.get("greeting") or ""),
        fallback=str(doc.get("fallback") or "Sorry, could you say that again?"),
        intents=tuple(intents),
    )


class ScriptedModel:
    """A :class:`~stream_server.ports.LanguageModel` that answers from a :class:`Script`."""

    def __init__(self, script: Script, first_token_s: float = 0.0, word_s: float = 0.0) -> None:
        """Answer from ``script``, the first word after ``first_token_s``."""
        self.script = script
        self.first_token_s = first_token_s
        self.word_s = word_s

    def intent(self, text: str) -> Intent | None:
        """The intent the caller's words call for, or None."""
        said = _WORD.findall(text.lower())
        joined = " ".join(said)
        best, most = None, 0
        for intent in self.script.intents:
            hits = sum(
                1
                for w in intent.words
                if (" " in w and w in joined) or any(s.startswith(w) for s in said)
            )
            if hits > most:
                best, most = intent, hits
        return best

    async def reply(self, system: str, history: Sequence[Said]) -> AsyncIterator[str | ToolCall]:
        """Stream the reply to the caller's last turn, word by word, then its tool."""
        last = next((s.text for s in reversed(history) if s.role == "caller"), "")
        intent = self.intent(last)
        await asyncio.sleep(self.first_token_s)
        words = (intent.reply if intent else self.script.fallback).split(" ")
        for n, word in enumerate(words):
            yield word + (" " if n < len(words) - 1 else "")
            if self.word_s:
                await asyncio.sleep(self.word_s)
        if intent is not None and intent.tool is not None:
            yield ToolCall(intent.tool)
