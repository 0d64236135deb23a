"""The words every part of callstream shares, defined once (no dependencies, nothing to run)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

#: A call's audio tracks, as Vobiz names them: the caller's and the agent's (docs/protocol.md).
Track: TypeAlias = Literal["inbound", "outbound"]
#: The audio encodings callstream carries: G.711 μ-law, or 16-bit linear PCM.
Codec: TypeAlias = Literal["mulaw", "l16"]
#: The largest count or position a record or message may carry (a signed 64-bit integer, as
#: MessagePack and DynamoDB keep it exactly).
MAX_INT: Final = 2**63 - 1
#: The call id recorded when Vobiz never said which call a stream belongs to.
UNKNOWN_CALL: Final = "unknown-call"
#: The content types a stream may be asked for (Vobiz's ``contentType``, docs/protocol.md §1a).
#: The languages Amazon Transcribe streaming takes (``LanguageCode`` in its service model, as
#: ``aws-sdk-transcribe-streaming`` 0.12.0 ships it): what a stream may ask to be heard in.
STREAMING_LANGUAGES: Final = frozenset(
    {
        "en-US",
        "en-GB",
        "es-US",
        "fr-CA",
        "fr-FR",
        "en-AU",
        "it-IT",
        "de-DE",
        "pt-BR",
        "ja-JP",
        "ko-KR",
        "zh-CN",
        "th-TH",
        "es-ES",
        "ar-SA",
        "pt-PT",
        "ca-ES",
        "ar-AE",
        "hi-IN",
        "zh-HK",
        "nl-NL",
        "no-NO",
        "sv-SE",
        "pl-PL",
        "fi-FI",
        "zh-TW",
        "en-IN",
        "en-IE",
        "en-NZ",
        "en-AB",
        "en-ZA",
        "en-WL",
        "de-CH",
        "af-ZA",
        "eu-ES",
        "hr-HR",
        "cs-CZ",
        "da-DK",
        "fa-IR",
        "gl-ES",
        "el-GR",
        "he-IL",
        "id-ID",
        "lv-LV",
        "ms-MY",
        "ro-RO",
        "ru-RU",
        "sr-RS",
        "sk-SK",
        "so-SO",
        "tl-PH",
        "uk-UA",
        "vi-VN",
        "zu-ZA",
        "am-ET",
        "be-BY",
        "bg-BG",
        "bn-IN",
        "bs-BA",
        "ckb-IQ",
        "ckb-IR",
        "cy-WL",
        "es-MX",
        "et-ET",
        "fa-AF",
        "gu-IN",
        "ht-HT",
        "hu-HU",
        "hy-AM",
        "is-IS",
        "jv-ID",
        "ka-GE",
        "kab-DZ",
        "kk-KZ",
        "km-KH",
        "kn-IN",
        "lg-IN",
        "lt-LT",
        "mk-MK",
        "ml-IN",
        "mr-IN",
        "my-MM",
        "ne-NP",
        "or-IN",
        "pa-IN",
        "ps-AF",
        "si-LK",
        "sl-SI",
        "sq-AL",
        "su-ID",
        "sw-BI",
        "sw-KE",
        "sw-RW",
        "sw-TZ",
        "sw-UG",
        "ta-IN",
        "te-IN",
        "tr-TR",
        "uz-UZ",
    }
)


ContentType: TypeAlias = Literal[
    "audio/x-mulaw;rate=8000",
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-l16;rate=24000",
]
#: Each content type as the codec and sample rate the stream carries.
CONTENT_TYPES: Final[dict[str, tuple[Codec, int]]] = {
    "audio/x-mulaw;rate=8000": ("mulaw", 8000),
    "audio/x-l16;rate=8000": ("l16", 8000),
    "audio/x-l16;rate=16000": ("l16", 16000),
    "audio/x-l16;rate=24000": ("l16", 24000),
}
#: A Vobiz id (call, stream, account) as callstream accepts it: what Vobiz sends (UUIDs) and
#: no wider, so an id is safe in a partition key, an S3 key and a log line.
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
#: Kinesis's largest record (data blob and partition key): 1 MiB. An utterance record at any
#: rate must fit it (``AudioLimits.utterance_samples``).
KINESIS_MAX_RECORD: Final = 1_048_576
#: Room kept in a record for everything but the audio (ids, numbers, the MessagePack map).
RECORD_HEADER_ROOM: Final = 1_024


@dataclass(frozen=True, slots=True)
class AudioLimits:
    """How the audio core sizes records and utterances: a plain value, handed in.

    The deploy-time settings (``callstream.settings.AudioSettings``) are validated and give
    one of these; the core never reads the configuration. The defaults here are the only ones.
    """

    record_max_bytes: int = 25_100
    record_max_ms: int = 1_000
    l16_byte_order: Literal["auto", "big", "little"] = "auto"
    vad_mode: int = 3
    vad_start_ms: int = 60
    vad_end_ms: int = 500
    vad_preroll_ms: int = 200
    vad_min_ms: int = 250
    utterance_max_ms: int = 15_000

    def __post_init__(self) -> None:
        if self.vad_preroll_ms + self.vad_end_ms >= self.utterance_max_ms:
            raise ValueError("vad_preroll_ms + vad_end_ms must be below utterance_max_ms")

    def utterance_samples(self, sample_rate: int) -> int:
        """Longest utterance at ``sample_rate``, in samples.

        ``utterance_max_ms``, and never more than one Kinesis record holds in PCM16 (at 24 kHz
        that is 21.8 s).
        """
        fits = (KINESIS_MAX_RECORD - RECORD_HEADER_ROOM) // 2
        return min(self.utterance_max_ms * sample_rate // 1000, fits)


#: A model: ``scripted`` (offline), ``bedrock:<model id>`` or ``openai:<model name>``.
MODEL_PATTERN = r"^(scripted|bedrock:[A-Za-z0-9._:/-]{1,120}|openai:[A-Za-z0-9._:/-]{1,120})$"
#: A voice: ``espeak:<voice>`` (offline) or ``polly:<VoiceId>``.
VOICE_PATTERN = r"^(espeak|polly):[A-Za-z0-9_+-]{1,40}$"
