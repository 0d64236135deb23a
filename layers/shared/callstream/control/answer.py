"""The ``<Response>`` XML that answers a Vobiz call: a ``<Stream>`` and what follows it."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from pydantic import HttpUrl


def stream(url: str, attributes: dict[str, str]) -> str:
    """A ``<Stream>`` element with its attributes, escaped."""
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items())
    return f"<Stream {attrs}>{escape(url)}</Stream>"


def continuation(redirect_url: HttpUrl | str | None, dial: str | None) -> list[str]:
    """The call flow after a unidirectional ``<Stream>``: a Redirect or a Dial (or nothing)."""
    if redirect_url:
        return [f"<Redirect>{escape(str(redirect_url))}</Redirect>"]
    if dial:
        return [f"<Dial><Number>{escape(dial)}</Number></Dial>"]
    return []


def response(*elements: str) -> str:
    """The XML document: the elements in order inside ``<Response>``."""
    body = "\n  ".join(elements)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  {body}\n</Response>\n'
