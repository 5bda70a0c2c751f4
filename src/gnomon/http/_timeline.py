"""The overview's timeline, as values: which window it shows (6 h, 24 h or 7 d, some
windows back), its bins, and each deployment's marks in them: finished runs counted by
state (the store's ``run_bins`` summed to the window's bin width), runs not finished yet,
and the next fires, hollow. Pure: the clock and the store are the caller's.

A bin's mark shows its worst state (failed, then missed, running, cancelled, completed),
as a colour and a glyph, with every state's count in its title.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

from gnomon.control import iso
from gnomon.states import FAILED_TYPES, STATE_NAMES, StateName, StateType
from gnomon.store import RUN_BIN_SPANS

# Window -> (length, bin width): 72, 96 and 84 bins, each width a multiple of the store's.
WINDOWS = {
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=2)),
}
DEFAULT_WINDOW = "24h"
MAX_BACK = 1000  # windows back: 19 years of 7 d windows
FUTURE_SHARE = 4  # a quarter of the window at "now" lies ahead: the next fires
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A mark's kind: its CSS class, its glyph (never colour alone) and its legend, worst first.
KINDS = {
    "failed": ("✕", "failed (Failed, TimedOut, Crashed)"),
    "missed": ("!", "missed"),
    "running": ("▸", "running or waiting to start"),
    "cancelled": ("-", "cancelled or skipped"),
    "completed": ("✓", "completed"),
}
NEXT_GLYPH = "○"


def kind_of(state_name: str, state_type: str | None = None) -> str:
    """The mark kind of a state."""
    kind = state_type or STATE_NAMES.get(state_name)
    if kind in FAILED_TYPES:
        return "failed"
    if state_name == StateName.MISSED:
        return "missed"
    if kind == StateType.COMPLETED:
        return "completed"
    if kind == StateType.CANCELLED:
        return "cancelled"
    return "running"


@dataclass(frozen=True)
class Window:
    """The span the timeline shows: [start, end), in ``bins`` bins of ``width``."""

    name: str
    back: int
    start: datetime
    end: datetime
    width: timedelta

    @property
    def bins(self) -> int:
        return (self.end - self.start) // self.width

    def bin_of(self, moment: datetime) -> int | None:
        """The index of the bin ``moment`` falls in, or None outside the window."""
        if not self.start <= moment < self.end:
            return None
        return (moment - self.start) // self.width

    def bin_start(self, index: int) -> datetime:
        return self.start + index * self.width


def window_at(name: str, back: int, now: datetime) -> Window:
    """The window ``name`` at ``now`` (three quarters past, one ahead), ``back`` windows
    earlier; its bins aligned to their width since the epoch, as the store's are."""
    length, width = WINDOWS[name]
    assert width.total_seconds() % RUN_BIN_SPANS[0] == 0
    past = now - length + length / FUTURE_SHARE - back * length
    start = EPOCH + ((past - EPOCH) // width + 1) * width
    return Window(name, back, start, start + length, width)


@dataclass
class Mark:
    """One bin of one deployment: runs counted by state name (and of what kind), and the
    first next fire in it."""

    counts: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    next_fire: datetime | None = None
    fires: int = 0

    def add(self, state_name: str, state_type: str | None, runs: int) -> None:
        """``runs`` more runs in ``state_name``."""
        self.counts[state_name] = self.counts.get(state_name, 0) + runs
        self.kinds[state_name] = kind_of(state_name, state_type)

    @property
    def kind(self) -> str | None:
        """The worst kind among its runs; None for a bin with next fires only."""
        present = set(self.kinds.values())
        return next((kind for kind in KINDS if kind in present), None)

    @property
    def glyph(self) -> str:
        kind = self.kind
        return KINDS[kind][0] if kind else NEXT_GLYPH

    def title(self, span: str) -> str:
        """What hovering shows: the bin's span, its runs by state, its next fires."""
        parts = [f"{runs} {name}" for name, runs in sorted(self.counts.items())]
        if self.next_fire is not None:
            more = " and more" if self.fires > 1 else ""
            parts.append(f"next fire {self.next_fire:%H:%M:%S} UTC{more}")
        return f"{span}: " + ", ".join(parts)


Marks = dict[int, Mark]


def add_counts(
    marks: dict[str, Marks],
    window: Window,
    rows: Iterable[tuple[str, datetime, str | None, str | None, int]],
) -> None:
    """Finished runs (deployment, bin or nominal time, state type, state name, runs) into
    the marks of their deployment and bin."""
    for deployment, moment, state_type, state_name, runs in rows:
        index = window.bin_of(moment)
        if index is not None and runs > 0 and deployment in marks:
            mark = marks[deployment].setdefault(index, Mark())
            mark.add(state_name or state_type or "?", state_type, runs)


def add_fires(
    marks: Marks,
    window: Window,
    now: datetime,
    next_fires: Callable[[datetime, int], list[datetime]],
) -> None:
    """The next fires after ``now`` in the window, as hollow marks: the first of each bin
    and whether there are more, asking ``next_fires(after, 1)`` at most twice per bin (a
    deployment firing every second costs no more than one firing hourly)."""
    after = max(now, window.start - timedelta(microseconds=1))
    while True:
        fires = next_fires(after, 1)
        if not fires or fires[0] >= window.end:
            return
        fire = fires[0]
        index = window.bin_of(fire)
        if index is None:
            return
        mark = marks.setdefault(index, Mark())
        if mark.next_fire is None:
            mark.next_fire = fire
        mark.fires += 1
        # Once a bin has a fire after its first ("and more"), on to the next bin.
        skip = window.bin_start(index + 1) - timedelta(microseconds=1)
        after = skip if mark.fires >= 2 else fire


def bin_labels(window: Window) -> list[tuple[str, str]]:
    """Each bin's start (ISO, for ``data-bin``) and span in words, worked out once a page."""
    labels = []
    for index in range(window.bins):
        start = window.bin_start(index)
        span = f"{start:%Y-%m-%d %H:%M} to {start + window.width:%H:%M} UTC"
        labels.append((iso(start) or "", span))
    return labels


def bins_html(marks: Marks, labels: list[tuple[str, str]]) -> Markup:
    """A timeline row's bins as ``<li>`` elements, the text of each escaped.

    Written here rather than in the template: a page has up to 100 rows of 96 bins, and
    Jinja took ~25 µs a bin (a quarter of a second a page), this a few; see
    docs/design.md, "The overview's data"."""
    parts = []
    for index, (start, span) in enumerate(labels):
        mark = marks.get(index)
        if mark is None:
            parts.append("<li></li>")
            continue
        kind = mark.kind
        css = f"{kind} with-next" if kind and mark.next_fire else kind or "next"
        title = escape(mark.title(span))
        parts.append(f'<li class="m {css}" data-bin="{start}" title="{title}">{mark.glyph}</li>')
    return Markup("".join(parts))
