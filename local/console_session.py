"""A simulated call watched through the live console in headless Chromium (tests and bench).

Starts the embedded stack, opens the console's page in Debian's Chromium (Selenium with the
system ``chromedriver``: nothing is downloaded), places a bidirectional call through the public
API, and drives the page as a supervisor would. Every step waits on what the page shows.
"""

from __future__ import annotations

import math
import shutil
import statistics
import struct
import tempfile
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from local.demo import talk_on
from local.stack import Stack
from local.vobiz_sim import AUDIO, SimCall

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return (
                f"{path} is missing: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver; .ci/run does)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make venv)"
    return None


def chromium() -> Any:
    """A headless Chromium that talks to 127.0.0.1 only."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,1100",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait(
    what: str, check: Callable[[], Any], timeout: float = 60.0, shown: Callable[[], str] = str
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and ``shown()``).

    An element gone stale between finding and reading it means the page re-rendered
    mid-check (a filter's new list, a new line): that check saw nothing, so look again.
    """
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except StaleElementReferenceException:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} {shown()}".strip())


def chime(folder: Path, seconds: float = 6.0, rate: int = 44_100) -> Path:
    """A WAV a user might pick: 440 Hz, stereo (44.1 kHz by default).

    The page makes it 16 kHz mono, and sends more than 30 s as several plays.
    """
    path = folder / "chime.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<hh", v, v)
                for n in range(int(rate * seconds))
                for v in [int(12_000 * math.sin(2 * math.pi * 440 * n / rate))]
            )
        )
    return path


@dataclass
class Observed:
    """What a console session saw."""

    call_uuid: str
    stream_id: str
    lines_during_call: int = 0
    growing: list[str] = field(default_factory=list)  # a live line's words as they were shown
    grew_during_call: bool = False
    sentiments: list[str] = field(default_factory=list)
    alerts: int = 0
    checkpoint: str = ""
    played_bytes: int = 0
    played_said: str = ""
    recording_duration_s: float = 0.0
    seeked: tuple[float, float] = (0.0, -1.0)  # (a clicked line's start, the player's time)
    summary: dict[str, Any] = field(default_factory=dict)
    freshness_ms: list[float] = field(default_factory=list)
    screenshot: Path | None = None

    def percentile(self, q: float) -> float:
        """A percentile of the freshness (ms from the bus to the open page)."""
        ordered = sorted(self.freshness_ms)
        if len(ordered) < 2:
            return ordered[0] if ordered else 0.0
        return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def watch_a_call(
    speed: float = 2.0,
    screenshot: Path | None = None,
    log_file: Path | None = None,
    live: Literal["off", "local"] = "off",
) -> Observed:
    """Run one bidirectional call and watch it through the console; see the module docstring.

    ``live="local"``: the call is heard live, and the page's growing line is watched for too.
    """
    from selenium.webdriver.common.by import By

    with Stack(
        speed=speed, log_file=log_file, log_level="INFO" if log_file else "WARNING", live=live
    ) as stack:
        assert stack.gateway is not None
        call = SimCall(str(uuid.uuid4()), inbound=AUDIO / "support_call_8000_inbound.wav")
        browser = chromium()
        try:
            browser.get(stack.endpoints()["console"])
            wait("the calls list", lambda: browser.find_element(By.ID, "calls").is_displayed())
            answer = talk_on(stack, call)
            seen = Observed(call.call_uuid, answer["stream_id"])
            row = wait(
                "the call in the list",
                lambda: browser.find_elements(By.CSS_SELECTOR, f'tr[data-call="{call.call_uuid}"]'),
            )
            row[0].click()
            wait("the call's page", lambda: browser.find_element(By.ID, "call").is_displayed())

            def lines() -> list[Any]:
                return list(browser.find_elements(By.CSS_SELECTOR, "#timeline li.utterance"))

            if live != "off":

                def growing() -> list[str]:
                    return [
                        li.text
                        for li in browser.find_elements(
                            By.CSS_SELECTOR, "#timeline li.utterance.partial"
                        )
                    ]

                seen.growing = wait("a line growing while the caller speaks", growing)
                seen.grew_during_call = not call.done.is_set()
            wait("a transcript line", lines)
            seen.lines_during_call = 0 if call.done.is_set() else len(lines())
            wait(
                "a sentiment colour",
                lambda: browser.find_elements(By.CSS_SELECTOR, "#timeline li[data-sentiment]"),
            )
            # talk-back: a WAV the user picks, played into the call, then a checkpoint
            browser.find_element(By.ID, "wav").send_keys(str(chime(Path(tempfile.mkdtemp()))))
            browser.find_element(By.ID, "play").click()

            def said() -> str:
                return str(browser.find_element(By.ID, "talk-result").text)

            seen.played_said = wait(
                "the play to be accepted",
                lambda: said().startswith("played") and said(),
                shown=said,
            )
            browser.find_element(By.ID, "checkpoint").click()
            seen.checkpoint = wait(
                "the checkpoint to resolve",
                lambda: (
                    t
                    if (t := browser.find_element(By.ID, "talk-result").text).endswith(
                        ("played", "cleared", "timeout")
                    )
                    else ""
                ),
                timeout=90,
            )
            seen.played_bytes = len(call.played)
            wait("an alert", lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts .alert"), 120)
            wait("a few more lines", lambda: len(lines()) >= 4 or call.done.is_set(), 120)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(screenshot))
                seen.screenshot = screenshot
            wait("the end of the call", call.done.is_set, timeout=180)
            wait(
                "the recording in the page",
                lambda: browser.execute_script(
                    "const p = document.getElementById('player');"
                    "return p.src && p.readyState >= 1 && p.duration > 0 ? p.duration : 0;"
                ),
                timeout=120,
            )
            seen.recording_duration_s = float(
                browser.execute_script("return document.getElementById('player').duration")
            )
            line = lines()[-1]  # a click on a line plays the recording from there
            line.click()
            seen.seeked = (
                float(line.get_attribute("data-start-ms")) / 1000,
                float(
                    browser.execute_script("return document.getElementById('player').currentTime")
                ),
            )
            summary = wait(
                "the summary", lambda: browser.find_element(By.ID, "summary").text, timeout=120
            )
            assert summary
            seen.summary = browser.execute_script(  # as read: each term and what it says
                "const dl = document.getElementById('summary');"
                "const out = {call_uuid: dl.dataset.call};"
                "dl.querySelectorAll('dt').forEach(dt => out[dt.textContent] ="
                " dt.nextElementSibling.textContent);"
                "return out;"
            )
            seen.sentiments = [
                e.get_attribute("data-sentiment")
                for e in browser.find_elements(By.CSS_SELECTOR, "#timeline li[data-sentiment]")
            ]
            seen.alerts = len(browser.find_elements(By.CSS_SELECTOR, "#alerts .alert"))
            seen.freshness_ms = [
                float(v)
                for v in browser.execute_script("return window.__callstream.freshness") or []
            ]
        finally:
            browser.quit()
    return seen
