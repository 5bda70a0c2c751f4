"""What every dashboard page owes its users, checked on each page in a real browser:
readable in a 400 px wide window (nothing wider than the window), dark when the system is,
every control reachable with the keyboard, and no state told by colour alone (each badge
and mark has a word, each chart bar a title).

A page added to the dashboard is added to ``PAGES`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import browser, log_in, runs_in_every_state  # noqa: F401 (the fixture)
from test_dashboard_run import add_log, add_task, fail, started_run

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow


def failed_run(api: Api) -> str:  # noqa: F811
    from gnomon.states import StateType

    run_id = started_run(api, {"day": "2026-12-01-" + "x" * 300})
    add_task(api.store, run_id, "fetch-a-rather-long-task-name-" * 3, [StateType.FAILED] * 3)
    add_log(api.store, run_id, "a long line without spaces " + "y" * 400)
    fail(api.store, run_id)
    return run_id


def run_with_artifacts(api: Api) -> str:  # noqa: F811
    """A failed run with an artifact of each kind, wide ones included."""
    from uuid import UUID

    from gnomon.artifacts import (
        ImageArtifact,
        MarkdownArtifact,
        ProgressArtifact,
        TableArtifact,
    )

    run_id = failed_run(api)
    run = UUID(run_id)
    wide = "a-long-word-without-spaces-" * 20
    for artifact in (
        MarkdownArtifact(
            markdown=f"# {wide}\n\n| a | b |\n|---|---|\n| {wide} | 2 |\n\n    {wide}"
        ),
        TableArtifact(table=[{f"column-{n}": wide for n in range(8)}]),
        ProgressArtifact(progress=60, description=wide),
        ImageArtifact(image_url="https://example.org/" + wide),
    ):
        artifact.flow_run_id = run
        artifact.create(_sync=True)  # the browser's event loop runs in this thread
    return run_id


def long_variables(api: Api) -> str:  # noqa: F811
    from gnomon.variables import Variable

    # _sync: playwright's sync API runs an event loop in this thread, and under a running
    # loop Variable.set returns a coroutine, as Prefect's does.
    recipients = {"recipients": [f"operator-{n}@example.com" for n in range(30)]}
    name = "a-rather-long-variable-name-" * 4
    Variable.set(name, recipients, tags=["reports", "crm"], _sync=True)
    Variable.set("note", "a long line without spaces " + "z" * 300, _sync=True)
    return "/variables"


# Each page: how to reach it on the api fixture's store (given the server, its path).
PAGES: dict[str, Callable[[Api], str]] = {
    "overview": lambda api: (failed_run(api), "/")[1],  # noqa: F811
    "deployments": lambda api: "/deployments",  # noqa: F811
    "run": lambda api: f"/runs/{failed_run(api)}",  # noqa: F811
    "run-artifacts": lambda api: f"/runs/{run_with_artifacts(api)}",  # noqa: F811
    "deployment": lambda api: "/deployments/nightly-report",  # noqa: F811
    "audit": lambda api: "/audit",  # noqa: F811
    "runs": lambda api: (failed_run(api), "/runs")[1],  # noqa: F811
    "variables": long_variables,
}


@pytest.fixture(params=sorted(PAGES))
def shown(request: pytest.FixtureRequest, api: Api, browser: Any) -> Any:  # noqa: F811
    """A logged-in tab on one of the pages, 400 px wide, in dark mode."""
    path = PAGES[request.param](api)
    context = browser.new_context(viewport={"width": 400, "height": 800}, color_scheme="dark")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    log_in(tab, api, api.token, path)
    yield tab
    context.close()


def test_each_page_fits_a_400_px_window(shown: Any) -> None:
    # Wide content may scroll sideways in a box of its own (a timeline, a traceback), as
    # long as the box fits: the page itself never does.
    wide = shown.evaluate(
        """() => {
          const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
          const boxed = e => { for (let p = e.parentElement; p; p = p.parentElement)
                                 if (scrolls(p)) return true;
                               return false; };
          return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                      && !boxed(e) && !e.closest('svg'))
            .map(e => e.tagName + '.' + e.className).slice(0, 5); }"""
    )
    assert wide == []
    assert shown.evaluate("document.documentElement.scrollWidth") <= 400


def test_each_page_follows_the_systems_dark_mode(shown: Any) -> None:
    background = shown.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(part) for part in background[4:-1].split(",")[:3])
    assert red + green + blue < 150, background


def test_every_control_on_each_page_is_reached_with_the_keyboard(shown: Any) -> None:
    controls = shown.evaluate(
        """() => [...document.querySelectorAll(
              'a[href], button, input:not([type=hidden]), select, [tabindex="0"]')]
            .filter(e => e.offsetParent !== null).length"""
    )
    reached: set[str] = set()
    for _ in range(controls + 5):
        shown.keyboard.press("Tab")
        reached.add(
            shown.evaluate(
                """() => { const e = document.activeElement;
                  if (!e.dataset.seen) e.dataset.seen = String(Math.random());
                  return e.dataset.seen; }"""
            )
        )
    assert len(reached) >= controls


def test_no_state_on_each_page_is_told_by_colour_alone(shown: Any) -> None:
    wordless = shown.evaluate(
        """() => [...document.querySelectorAll('.badge, .mark')]
            .filter(e => !e.textContent.trim() && !e.title).length"""
    )
    untitled = shown.evaluate(
        """() => [...document.querySelectorAll('svg rect')]
            .filter(r => !r.querySelector('title')).length"""
    )
    assert (wordless, untitled) == (0, 0)


# The contrast ratio of a badge's or mark's text against its background (WCAG 2.x).
CONTRASTS = """() => {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll('.badge, .mark')].map((e) => {
    const style = getComputedStyle(e);
    const [a, b] = [luminance(style.color), luminance(style.backgroundColor)].sort((x, y) => y - x);
    return [e.className, Math.round((a + 0.05) / (b + 0.05) * 100) / 100];
  });
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_badge_and_mark_is_readable_in_light_and_dark_mode(
    api: Api,  # noqa: F811
    browser: Any,  # noqa: F811
    scheme: str,
) -> None:
    states = runs_in_every_state(api)
    context = browser.new_context(color_scheme=scheme)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        log_in(tab, api, api.token, "/runs")
        found = tab.evaluate(CONTRASTS)
        tab.goto(api.url + "/deployments")
        found += tab.evaluate(CONTRASTS)
    finally:
        context.close()
    shown = {name.split("state-")[1] for name, _ in found if "state-" in name}
    assert shown >= {state.lower() for state in states}
    assert [(name, ratio) for name, ratio in found if ratio < 4.5] == []
