"""Masking secrets: values of keys named like passwords, tokens and API keys.

The rule is by key name, so it needs no list of secrets and holds for parameters, the
environment, config keys and log fields alike. A key is secret when, ignoring case and the
separators ``_``, ``-``, ``.`` and spaces, it *ends with* one of ``SECRET_SUFFIXES``:
``db_password``, ``PGPASSWORD``, ``GITHUB_TOKEN``, ``apiKey``, ``X-Api-Key`` and
``Proxy-Authorization`` are secret. Ending, not containing, keeps keys that merely talk
about a secret readable: ``tokenizer_path``, ``password_file``, ``token_url``,
``max_tokens`` and ``secret_name`` are not masked (a path or a name is not the secret).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
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
