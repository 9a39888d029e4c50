"""Text for a terminal: names from files (weights, inputs, producers) may hold escape
sequences that clear the screen or retitle the window, or lone surrogates that cannot even
be encoded; human-readable output shows them escaped instead (JSON output escapes itself)."""

from __future__ import annotations


def printable(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (controls, escapes, lone surrogates,
    format characters such as U+202E) written as a Python escape; characters in `keep`
    (e.g. newlines) stay as they are."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
