import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from callstream import settings
from callstream.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_up_to_date():
    spec = importlib.util.spec_from_file_location(
        "settings_doc", ROOT / "scripts" / "settings_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "configuration.md").read_text() == module.render(), "run `make docs`"


def test_missing_required_settings_fail_fast_with_their_names(monkeypatch):
    for name in ("AUDIO_STREAM", "UTTERANCE_STREAM", "REGISTRY_TABLE", "NONCE_TABLE"):
        monkeypatch.delenv(f"CALLSTREAM_{name}", raising=False)
    with pytest.raises(ConfigError, match="CALLSTREAM_AUDIO_STREAM") as error:
        settings.load(settings.ServerSettings)
    assert "CALLSTREAM_NONCE_TABLE" in str(error.value)
    monkeypatch.setenv("CALLSTREAM_VAD_MODE", "7")
    with pytest.raises(ConfigError, match="CALLSTREAM_VAD_MODE"):
        settings.load(settings.AudioSettings)


def test_a_keyword_that_is_no_setting_is_refused():
    """A setting that was made a constant must not be silently ignored where code still sets it."""
    with pytest.raises(ValidationError, match="keepalive_idle_s"):
        settings.AudioSettings(keepalive_idle_s=1.0)
