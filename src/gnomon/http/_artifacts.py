"""A run's artifacts as the run page draws them: markdown rendered, tables as tables,
progress as a bar with its percentage, images, each with its key and description.

Artifacts are the runs' text, so they are untrusted: markdown is rendered by markdown-it
with raw HTML off (a ``<script>`` shows as text) and every link and image checked by
``safe_link`` (``javascript:``, ``data:`` and other schemes become plain text); a table's
cells and everything else are values the template escapes. An image artifact is shown
only from an http or https URL.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from gnomon.control import artifact_table, progress_percent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
# What browsers drop from a URL before reading its scheme ("java\tscript:" is javascript:).
_IGNORED = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")


def url_scheme(url: str) -> str | None:
    """The scheme a browser reads in ``url`` (lowercase), or None for a relative URL."""
    scheme = _SCHEME.match(_IGNORED.sub("", url).lower())
    return None if scheme is None else scheme.group(1)


def safe_link(url: str) -> bool:
    """Whether ``url`` may be the address of a link or an image in markdown: http, https
    or mailto, or relative (within the dashboard)."""
    scheme = url_scheme(url)
    return scheme is None or scheme in LINK_SCHEMES


def _link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Links in artifacts lead away from the dashboard: no referrer, no ranking."""
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # js-default: CommonMark with tables and strikethrough; html False whatever it says.
    renderer = MarkdownIt("js-default", {"html": False, "linkify": False})
    renderer.validateLink = safe_link  # type: ignore[method-assign]
    renderer.add_render_rule("link_open", _link_open)
    return renderer


def markdown_html(text: str) -> Markup:
    """``text`` rendered as HTML without raw HTML and with only safe links."""
    # Markup: markdown-it escaped all the text and raw HTML in it; the links are checked.
    return Markup(_markdown().render(text))


def cell_text(value: Any) -> str:
    """A table cell as text: a string as itself, nothing for null, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def shown_artifact(view: dict[str, Any]) -> dict[str, Any]:
    """What the run page draws of an artifact's view: its ``kind`` (markdown, table,
    progress, image, or text for any other) and what that kind needs."""
    data, kind = view["data"], view["type"]
    shown: dict[str, Any] = {
        **view,
        "kind": "text",
        "description_html": markdown_html(view["description"]) if view["description"] else None,
    }
    if kind == "markdown" and isinstance(data, str):
        return {**shown, "kind": "markdown", "html": markdown_html(data)}
    if kind == "progress" and (percent := progress_percent(data)) is not None:
        return {**shown, "kind": "progress", "percent": percent}
    if kind == "image" and isinstance(data, str):
        return {**shown, "kind": "image", "safe": url_scheme(data) in IMAGE_SCHEMES}
    if kind == "table":
        try:
            header, rows = artifact_table(data)
        except ValueError:
            pass  # shown as the text it is
        else:
            cells = [[cell_text(value) for value in row] for row in rows]
            return {**shown, "kind": "table", "header": header, "rows": cells}
    return {**shown, "text": data if isinstance(data, str) else json.dumps(data, indent=2)}
