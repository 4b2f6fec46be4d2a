"""Free text from outside (/proc, sysfs, a library's own report, a worker's error) made
one line of printable characters of bounded length, before anything keeps or shows it."""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "clean_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
#: the longest free text kept; a CPU's brand string is at most 48 bytes, and this leaves
#: room for the rest while a runaway line (a broken or hostile file) stays bounded
MAX_TEXT = 1000


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """Free text from the machine as one line of printable characters, at most ``limit``."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]
