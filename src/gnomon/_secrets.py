"""Masking secrets: values of keys named like passwords, tokens and API keys.

The rule is by key name, so it needs no list of secrets and holds for parameters, the
environment, config keys and log fields alike. A key is secret when, ignoring case and the
separators ``_``, ``-``, ``.`` and spaces, it *ends with* one of ``SECRET_SUFFIXES``:
``db_password``, ``PGPASSWORD``, ``GITHUB_TOKEN``, ``apiKey``, ``X-Api-Key`` and
``Proxy-Authorization`` are secret. Ending, not containing, keeps keys that merely talk
about a secret readable: ``tokenizer_path``, ``password_file``, ``token_url``,
``max_tokens`` and ``secret_name`` are not masked (a path or a name is not the secret).

A secret value also travels without its key: in an exception's message (pydantic's
validation errors quote their input; a flow may raise ``ValueError(f"bad password
{password}")``), its traceback, and whatever a flow prints. So the values under secret keys
of a run's parameters (``secret_values``, those of ``MIN_SECRET_LENGTH`` characters or more)
are masked in text as well: a process running runs ``remember_secrets`` their parameters, and
every text it stores or prints passes ``mask_known`` (state messages, errors and tracebacks,
log lines, worker output). Shorter values are left alone: masking every "1" or "yes" would
garble the text and hide nothing worth hiding.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

SECRET_SUFFIXES = (
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "token",
    "secret",
    "secrets",
    "secretkey",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "credential",
    "credentials",
)

_SEPARATORS = re.compile(r"[\s_.-]+")


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether values under the key ``name`` are secrets (see the module's rule).

    Cached: the same few field names come by on every log record.
    """
    compact = _SEPARATORS.sub("", name).lower()
    return compact.endswith(SECRET_SUFFIXES)


# Values that hold nothing to mask: most log fields. Checked by exact type first, because
# ``isinstance(value, Mapping)`` is an ABC check, and the daemon masks every field of a few
# log records per run: masking was half the cost of rendering its JSON lines.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def mask(value: Any) -> Any:
    """``value`` with the values of secret-named keys replaced by ``MASK``, at any depth.

    Mappings become dicts and lists and tuples keep their type; other values are returned
    as they are (the input is never modified). A secret key whose value is None stays None:
    that a secret is unset is not itself a secret, and it is what one debugs.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {
            key: MASK if _masks(key, item) else item if type(item) in _PLAIN else mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask(item) for item in value]
    if isinstance(value, tuple):
        return tuple(mask(item) for item in value)
    return value


def _masks(key: Any, value: Any) -> bool:
    return value is not None and type(key) is str and is_secret_key(key)


def mask_processor(_logger: object, _method: str, event_dict: Any) -> Any:
    """structlog processor: mask the secret fields of an event, at any depth."""
    return mask(event_dict)


# Record attributes that are never user data: tracebacks and the record's own bookkeeping
# (every attribute a plain LogRecord has, so only what ``extra=`` added is looked at).
_UNMASKED_ATTRIBUTES = frozenset(
    {"exc_info", "stack_info", "msg", "message", "asctime", "taskName"}
    | set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
) - {"args"}


class MaskSecrets(logging.Filter):
    """A logging filter masking secret fields a record was given with ``extra=``, secrets
    inside dict or list fields, and a mapping passed as the message's arguments.

    Attach it to handlers (``handler.addFilter(MaskSecrets())``): a logger's own filters
    do not see records propagated from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = vars(record)
        for key in attributes.keys() - _UNMASKED_ATTRIBUTES:
            value = attributes[key]
            if _masks(key, value):
                attributes[key] = MASK
            elif type(value) not in _PLAIN and isinstance(value, Mapping | list | tuple):
                attributes[key] = mask(value)
        return True


def masked(key: str, value: Any) -> Any:
    """``value`` as it may be shown under ``key``: ``MASK`` if the key is secret."""
    return MASK if _masks(key, value) else mask(value)


# Masking values in text.

MIN_SECRET_LENGTH = 4
MAX_REMEMBERED = 1000  # secret values a process keeps masking (the newest; per run a few)


def secret_values(value: Any) -> set[str]:
    """The texts of the values under secret-named keys in ``value``, at any depth (every
    scalar inside such a value counts), with the escaped forms that JSON and ``repr`` give
    them, each of at least ``MIN_SECRET_LENGTH`` characters."""
    found: set[str] = set()
    pending: list[tuple[Any, bool]] = [(value, False)]
    while pending:
        item, under_secret = pending.pop()
        if isinstance(item, Mapping):
            pending.extend(
                (child, under_secret or (type(key) is str and is_secret_key(key)))
                for key, child in item.items()
            )
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend((child, under_secret) for child in item)
        elif under_secret:
            found.update(_texts(item))
    return found


def _texts(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return []
    text = str(value)
    if len(text) < MIN_SECRET_LENGTH or not text.strip("*"):  # nor one MASK itself contains
        return []
    if not isinstance(value, str):
        return [text]
    return list({text, json.dumps(value)[1:-1], repr(value)[1:-1]})


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``MASK``."""
    pattern = _pattern(frozenset(secrets))
    return text if pattern is None else pattern.sub(MASK, text)


@functools.lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    # Longest first, so a secret that contains another is masked whole.
    return re.compile("|".join(map(re.escape, sorted(secrets, key=len, reverse=True))))


class _Remembered:
    """The secret values of the runs this process has run, newest last (bounded)."""

    def __init__(self) -> None:
        self.values: dict[str, None] = {}
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()

    def add(self, values: set[str]) -> None:
        with self.lock:
            new = values - self.values.keys()
            if not new:
                return
            self.values.update(dict.fromkeys(sorted(new)))
            while len(self.values) > MAX_REMEMBERED:
                del self.values[next(iter(self.values))]
            self.pattern = _pattern(frozenset(self.values))


_remembered = _Remembered()


def remember_secrets(parameters: Mapping[str, Any]) -> None:
    """Mask the secret values of ``parameters`` (a run's) in every text this process stores
    or prints from now on (``mask_known``)."""
    values = secret_values(parameters)
    if values:
        _remembered.add(values)


def remember_secret(value: Any) -> None:
    """Mask a secret's value (``Secret.load``'s: a string, or every scalar in a JSON value,
    as ``secret_values`` counts them) in every text this process stores or prints from now
    on (``mask_known``)."""
    remember_secrets({"secret": value})


def mask_known(text: str) -> str:
    """``text`` with the secret values this process was told of masked; at once when none
    were (most processes, most runs)."""
    pattern = _remembered.pattern
    return text if pattern is None or not text else pattern.sub(MASK, text)


# Fields of gnomon's log events that are never user text: masking a four-digit secret in a
# timestamp or an id would garble them and hide nothing.
_STRUCTURAL_FIELDS = frozenset(
    {"timestamp", "level", "logger", "flow_run_id", "task_run_id", "run_id", "worker_pid"}
)


def mask_known_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A log event's fields with the known secret values masked in their text (see
    ``mask_known``), at any depth; structural fields (times, ids, levels) are left alone."""
    if _remembered.pattern is None:
        return dict(fields)
    return {
        key: value if key in _STRUCTURAL_FIELDS else _mask_known_value(value)
        for key, value in fields.items()
    }


def _mask_known_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_known(value)
    if isinstance(value, Mapping):
        return {key: _mask_known_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_known_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_mask_known_value(item) for item in value)
    return value


def mask_known_processor(_logger: object, _method: str, event_dict: Any) -> Any:
    """structlog processor: mask known secret values in an event's text, its exception's
    traceback included (rendered here, so the renderer prints the masked text)."""
    if _remembered.pattern is None:
        return event_dict
    if event_dict.get("exc_info"):
        import structlog

        event_dict = structlog.processors.format_exc_info(_logger, _method, event_dict)
    return mask_known_fields(event_dict)


class MaskingWriter:
    """A text stream that masks known secret values in what is written to it: a daemon
    worker's stdout and stderr, which carry whatever its flows print.

    gnomon's own log lines are masked field by field before they are rendered and go to
    ``unmasked(stream)`` instead: masking the rendered JSON line as a whole could garble it.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(mask_known(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer, ...
        return getattr(self.stream, name)


def unmasked(stream: Any) -> Any:
    """The stream under a ``MaskingWriter``, or ``stream`` itself."""
    return stream.stream if isinstance(stream, MaskingWriter) else stream
