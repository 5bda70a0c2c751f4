"""Text gnomon stores and serves is valid Unicode; long values are cut short where shown.

A Python string can hold lone surrogates (U+D800 to U+DFFF not in a pair): JSON's
``"\\ud800"`` escape decodes to one, and so do undecodable bytes in a command line's
arguments. No UTF-8 encoder takes them: SQLite refuses such a text value (a batched write
that carries one fails), and a JSON response holding one cannot be sent. So text on its
way into the store has them replaced by U+FFFD (``valid_text``), and JSON read back from
the store, which can carry them as escapes, is repaired as it is decoded (``loads``).

A value shown in a listing or echoed by an error message is cut short (``shortened``,
``quoted``): a 3,000-character argument echoed in full buries the message about it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON escape of a surrogate (either half): the only way JSON text holds one.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
QUOTED = 80  # characters of a value an error message quotes


def shortened(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and "…" in that many."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(value: object, limit: int = QUOTED, mark: str | None = None) -> str:
    """``value`` as an error message quotes it: its ``repr``, or for a longer one its start,
    "…" and, for text, how long it is (``'aaaa…' (3000 characters)``). ``mark``: the quote
    put around text instead (``"name"``), for names that cannot hold one."""
    if not isinstance(value, str):
        return shortened(repr(value), limit)
    shown = shortened(value, limit)
    text = repr(shown) if mark is None else f"{mark}{shown}{mark}"
    return text if shown == value else f"{text} ({len(value)} characters)"


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point, which UTF-8 cannot encode."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a pair becomes its character)."""
    if not has_lone_surrogate(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def valid_json(value: Any) -> Any:
    """``value`` (decoded JSON) with every string, keys too, made ``valid_text``."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(key): valid_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [valid_json(item) for item in value]
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads``, with lone surrogates in the document replaced (see ``valid_json``).

    The store's JSON columns are read through it (psycopg hands it bytes). The check is one
    search of the raw text, so a document without a surrogate escape costs what
    ``json.loads`` costs.
    """
    if isinstance(text, bytes):
        text = text.decode()
    value = json.loads(text)
    return valid_json(value) if _ESCAPED_SURROGATE.search(text) else value
