"""The memory explorer (memory/server/static/) end to end: uvicorn serves ``create_app`` over an embedded
engine holding a small simulation (three agents, 500-900 steps, places, every memory type, all three tiers),
and headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser is downloaded) uses
the page as a person would. What the page shows is checked against what the REST API answers.

Each test keeps full-page screenshots in its tmp_path and copies them to tests/artifacts/explorer/
(git-ignored). Every test also checks that the page logged no console error it did not expect and sent
no request beyond loopback (any such request is aborted, then reported).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from memory import AgentMemoryAPI, MemoryConfig
from memory._engine.derive import PositionReader
from memory.server.app import create_app
from memory.server.auth import TokenTable
from support import unavailable

uvicorn = pytest.importorskip("uvicorn")  # the server extra
playwright_api = pytest.importorskip("playwright.sync_api")  # the test extra

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "explorer"
AGENTS = ("scout-0", "scout-1", "scout-2")
STEPS = {"scout-0": 500, "scout-1": 900, "scout-2": 500}  # scout-1: ~1,070 memories, two of the page's loads
TOKEN = "explorer-observer-token"
COLOURS = {"stm": "#1b9e77", "im": "#d95f02", "ltm": "#7570b3"}
TYPES = ("state", "action", "interaction")
VOCABULARY = {word: n for n, word in enumerate(["wood", "stone", "river", "bridge", "market", "night"])}


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic text model (the real one would cost seconds to load): a bucket per vocabulary word,
    other words hashed into the rest of 64."""
    rows = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in zip(rows, texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            row[VOCABULARY.get(word, 8 + zlib.crc32(word.encode()) % 56)] += 1.0
        row[7] += 0.01
    return rows


def simulate(engine: AgentMemoryAPI) -> None:
    """A random walk per agent: a state every step (scout-2 gives its place as position_x/_y, a 3-D place
    every 40 steps), a trade every 7 steps (no place), a meeting every 25 (a place, and text)."""
    rng = np.random.default_rng(7)
    for number, agent in enumerate(AGENTS):
        x = y = 0
        records: list[dict[str, Any]] = []
        for step in range(STEPS[agent]):
            x, y = (int(v) for v in np.clip((x, y) + rng.integers(-1, 2, size=2), 0, 30))
            state: dict[str, Any] = {"health": round(1 - step / 1000, 3), "inventory": {"wood": step % 7}}
            if number == 2:
                state.update(position_x=x, position_y=y)
            else:
                state["position"] = [x, y, step % 3] if step % 40 == 0 else [x, y]
            records.append({"agent_id": agent, "data": state, "step_number": step, "memory_type": "state",
                            "priority": float(rng.random())})
            if step % 7 == 3:
                records.append({"agent_id": agent, "step_number": step, "memory_type": "action",
                                "data": {"action_type": "trade", "outcome": "success" if step % 2 else "failure",
                                         "target_agent": AGENTS[(number + 1) % 3], "items_given": {"wood": step % 4}}})
            if step % 25 == 10:
                words = ("met a trader at the river market at night", "crossed the stone bridge with wood")[step % 2]
                records.append({"agent_id": agent, "step_number": step, "memory_type": "interaction",
                                "data": {"note": words, "position": [x, y]}})
        for start in range(0, len(records), 200):
            engine.store_many(records[start:start + 200])
        engine.force_memory_maintenance(agent)


class Served:
    """uvicorn serving an app in a thread, on a loopback socket bound before it starts."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentMemoryAPI]:
    config = MemoryConfig(redis_url="", data_dir=str(tmp_path_factory.mktemp("explorer") / "data"),
                          key_prefix=f"x{uuid.uuid4().hex[:8]}", cleanup_interval=100,
                          stm_config={"memory_limit": 80}, im_config={"memory_limit": 200},
                          search_config={"text_model": bag_of_words})
    with AgentMemoryAPI(config) as api:
        simulate(api)
        yield api


def _serve(app: Any) -> Iterator[str]:
    served = Served(app)
    try:
        yield served.url
    finally:
        served.stop()


@pytest.fixture(scope="module")
def server(engine: AgentMemoryAPI) -> Iterator[str]:
    yield from _serve(create_app(engine))


@pytest.fixture(scope="module")
def rest(server: str) -> Iterator[httpx.Client]:
    """The REST API the page talks to, asked directly: what the page shows must be what it answers."""
    with httpx.Client(base_url=server) as client:
        yield client


@pytest.fixture(scope="module")
def guarded_server(engine: AgentMemoryAPI) -> Iterator[str]:
    tokens = TokenTable.parse([{"token": TOKEN, "tier": "observer"}], "the explorer's test")
    yield from _serve(create_app(engine, tokens=tokens))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"Chromium at {CHROMIUM}", FileNotFoundError("Debian's chromium package is not installed"))
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


class Explorer:
    """The page in a fresh browser context, with what it logged and asked for."""

    def __init__(self, browser: Any, artifacts: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.artifacts = artifacts
        self.requests: list[Any] = []
        self.errors: list[str] = []
        self.expected_errors: list[str] = []  # console errors a test provokes (a 401, a 400)
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.page.set_default_timeout(5000)  # ms; a page that answers at all answers within this
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    @staticmethod
    def _only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    def open(self, base: str, fragment: str = "") -> None:
        self.page.goto(f"{base}/explorer/{fragment}")
        self.idle()

    def idle(self) -> None:
        """Wait until every action the page started has finished (explorer.js counts them in data-busy)."""
        self.page.wait_for_selector('body[data-busy="0"]', state="attached")

    def text(self, selector: str) -> str:
        return (self.page.locator(selector).text_content() or "").strip()

    def field(self, name: str) -> str:
        return self.text(f'#memory-meta dd[data-field="{name}"]')

    def shown_memory_id(self) -> str:
        return self.field("memory id")

    def series(self, svg: str) -> list[dict[str, Any]]:
        """The marks drawn in one plot, per series: its tier, type, colour, claimed count and subpaths."""
        return self.page.eval_on_selector_all(
            f"#{svg}-marks path.series",
            "paths => paths.map(p => ({tier: p.dataset.tier, type: p.dataset.type || null, fill: p.getAttribute('fill'),"
            " count: Number(p.dataset.count), d: p.getAttribute('d')}))")

    def click_at(self, svg: str, x: float, y: float, **options: Any) -> None:
        plot = self.page.locator(f"#{svg}")
        plot.scroll_into_view_if_needed()
        box = plot.bounding_box()  # in the viewport, where the mouse is
        self.page.mouse.click(box["x"] + x, box["y"] + y, **options)
        self.idle()

    def shot(self, name: str) -> None:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ARTIFACTS / path.name)

    def check(self) -> None:
        unexpected = [e for e in self.errors if not any(expected in e for expected in self.expected_errors)]
        assert unexpected == [], f"console errors: {unexpected}"
        beyond = [r.url for r in self.requests if urlsplit(r.url).scheme not in ("data", "blob")
                  and urlsplit(r.url).hostname != "127.0.0.1"]
        assert beyond == [], f"requests beyond loopback: {beyond}"


@pytest.fixture
def explorer(browser: Any, tmp_path: Path) -> Iterator[Explorer]:
    page = Explorer(browser, tmp_path)
    try:
        yield page
        page.check()
    finally:
        page.context.close()


def subpaths(d: str) -> list[tuple[float, float]]:
    """The starting point of every mark in a path (each mark is one subpath, ``M x,y ...``)."""
    return [(float(x), float(y)) for x, y in re.findall(r"M(-?[\d.]+),(-?[\d.]+)", d)]


def every_memory(rest: httpx.Client, agent: str, **params: Any) -> list[dict[str, Any]]:
    memories: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = rest.get(f"/v1/agents/{agent}/memories", params={**params, "limit": 1000, "offset": offset}).json()
        memories += page["memories"]
        offset = page["next_offset"]
    return memories


def tally(memories: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((m["tier"], m["metadata"]["memory_type"]) for m in memories)


def in_page_order(memories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The explorer's order: by step, then by type (state, action, interaction)."""
    return sorted(memories, key=lambda m: (m["step_number"], TYPES.index(m["metadata"]["memory_type"])))


def drawn(explorer: Explorer, svg: str) -> Counter[tuple[str, str | None]]:
    found: Counter[tuple[str, str | None]] = Counter()
    for series in explorer.series(svg):
        assert len(subpaths(series["d"])) == series["count"]  # the count it claims is the marks it draws
        assert series["fill"] == COLOURS[series["tier"]]
        found[(series["tier"], series["type"])] += series["count"]
    return found


def test_the_timeline_draws_a_mark_per_memory_coloured_by_tier(server, rest, explorer):
    explorer.open(server)
    assert explorer.page.locator("#agent option").all_inner_texts() == sorted(rest.get("/v1/agents").json()["agents"])
    explorer.page.select_option("#agent", "scout-1")
    explorer.idle()
    memories = every_memory(rest, "scout-1")
    assert len(memories) > 1000 and {m["tier"] for m in memories} == {"stm", "im", "ltm"}
    assert drawn(explorer, "timeline") == tally(memories)
    assert explorer.page.get_attribute("#timeline", "data-count") == str(len(memories))
    offsets = [parse_qs(urlsplit(r.url).query).get("offset") for r in explorer.requests
               if urlsplit(r.url).path == "/v1/agents/scout-1/memories"]
    assert offsets == [["0"], ["1000"]]  # two pages, the second at the first's next_offset
    legend = explorer.page.eval_on_selector_all(
        ".legend .swatch", "spans => spans.map(s => getComputedStyle(s).backgroundColor)")
    assert legend == [f"rgb({int(c[1:3], 16)}, {int(c[3:5], 16)}, {int(c[5:], 16)})" for c in COLOURS.values()]
    explorer.shot("timeline-all-steps")

    explorer.page.fill("#start-step", "120")
    explorer.page.fill("#end-step", "319")
    explorer.page.select_option("#range-type", "")
    explorer.page.click("#range-show")
    explorer.idle()
    window = every_memory(rest, "scout-1", start_step=120, end_step=319)
    assert drawn(explorer, "timeline") == tally(window)
    table = explorer.page.eval_on_selector_all(
        "#range-counts td", "cells => cells.map(c => [c.dataset.tier, c.closest('tr').dataset.type, Number(c.textContent)])")
    assert {(tier, kind): n for tier, kind, n in table if n} == tally(window)
    assert "#agent=scout-1&start=120&end=319" in explorer.page.url
    explorer.shot("timeline-steps-120-319")


def test_the_distribution_is_the_agents_statistics(server, rest, explorer):
    explorer.open(server, "#agent=scout-2")
    stats = rest.get("/v1/agents/scout-2/stats").json()
    shown = dict(explorer.page.eval_on_selector_all(
        "#tier-distribution tbody tr", "rows => rows.map(r => [r.dataset.name, Number(r.dataset.count)])"))
    assert shown == {tier: stats["tiers"][tier]["count"] for tier in ("stm", "im", "ltm")}
    assert all(shown.values())
    types = dict(explorer.page.eval_on_selector_all(
        "#type-distribution tbody tr", "rows => rows.map(r => [r.dataset.name, Number(r.dataset.count)])"))
    assert types == stats["memory_type_distribution"]
    assert explorer.text("#distribution-total") == f"scout-2: {stats['total_memories']} memories in all tiers."
    explorer.shot("distribution")


def test_a_clicked_mark_shows_its_memory(server, rest, explorer):
    explorer.open(server, "#agent=scout-0&start=0&end=199")
    memories = in_page_order(every_memory(rest, "scout-0", start_step=0, end_step=199))
    (ltm_states,) = [s for s in explorer.series("timeline") if (s["tier"], s["type"]) == ("ltm", "state")]
    left, top = subpaths(ltm_states["d"])[0]  # a state's mark: a bar from (left, top), 16 px tall
    width = float(re.match(r"M[^h]*h([\d.]+)", ltm_states["d"]).group(1))
    explorer.click_at("timeline", left + width / 2, top + 8)
    expected = next(m for m in memories if (m["tier"], m["metadata"]["memory_type"]) == ("ltm", "state"))
    assert explorer.shown_memory_id() == expected["memory_id"]
    assert json.loads(explorer.text("#memory-contents")) == expected["contents"]
    assert (explorer.field("step"), explorer.field("tier"), explorer.field("type")) == (
        str(expected["step_number"]), "ltm", "state")
    assert json.loads(explorer.text("#memory-metadata"))["metadata"]["memory_type"] == "state"
    explorer.shot("a-clicked-mark")

    explorer.page.focus("#timeline")
    explorer.page.keyboard.press("ArrowRight")
    following = memories[memories.index(expected) + 1]
    assert explorer.shown_memory_id() == following["memory_id"]
    assert json.loads(explorer.text("#memory-contents")) == following["contents"]

    interaction = next(m for m in memories if m["metadata"]["memory_type"] == "interaction")
    explorer.page.fill("#memory-id", interaction["memory_id"])
    explorer.page.click("#memory-open")
    explorer.idle()
    by_id = rest.get(f"/v1/agents/scout-0/memories/{interaction['memory_id']}").json()
    assert explorer.shown_memory_id() == by_id["memory_id"]
    assert json.loads(explorer.text("#memory-contents")) == by_id["contents"]


@pytest.mark.parametrize("agent", ["scout-0", "scout-2"])  # places as [x, y] / [x, y, z]; as position_x, _y
def test_the_places_are_where_the_engine_places_memories(server, rest, explorer, agent):
    explorer.open(server, f"#agent={agent}")
    memories = in_page_order(every_memory(rest, agent))
    place_of = PositionReader("position")  # the engine's own rule (search_config.position_key)
    placed = [m for m in memories if place_of(m["contents"]) is not None]
    assert 0 < len(placed) < len(memories)
    assert drawn(explorer, "places") == Counter((m["tier"], None) for m in placed)
    assert explorer.text("#places-summary").startswith(f"{len(placed)} of {len(memories)} memories have a place")

    first = explorer.series("places")[0]  # the long-term points, drawn first
    left, y = subpaths(first["d"])[0]  # a point: a circle of radius 3.5 from its leftmost point
    explorer.click_at("places", left + 3.5, y)
    spot = place_of(next(m for m in placed if m["tier"] == first["tier"])["contents"])[:2]
    latest_there = max((m for m in placed if place_of(m["contents"])[:2] == spot), key=lambda m: m["step_number"])
    assert explorer.shown_memory_id() == latest_there["memory_id"]
    assert explorer.field("place").startswith(f"({spot[0]:g}, {spot[1]:g}")
    explorer.shot(f"places-{agent}")

    explorer.page.fill("#place-key", "location")
    explorer.page.dispatch_event("#place-key", "change")
    assert explorer.series("places") == []
    assert explorer.text("#places-summary") == f"None of the {len(memories)} memories on the timeline has a place."


SEARCHES = [
    ("attributes", {"#search-attributes": '{"outcome": "success", "items_given.wood": {"$gte": 2}}',
                    "#search-type": "action"},
     {"attributes": {"outcome": "success", "items_given.wood": {"$gte": 2}}, "memory_type": "action"}),
    ("similar", {"#search-similar": '{"position": [10, 5], "health": 0.8}', "#search-start": "100",
                 "#search-end": "400"},
     {"similar_to": {"position": [10, 5], "health": 0.8}, "start_step": 100, "end_step": 400}),
    ("text", {"#search-text": "river market"}, {"text": "river market"}),
    ("near", {"#near-x": "5", "#near-y": "5", "#near-radius": "3"}, {"near": {"center": [5, 5], "radius": 3}}),
    ("near", {"#near-x": "12.5", "#near-y": "4", "#near-radius": "", "#search-type": "interaction"},
     {"near": {"center": [12.5, 4]}, "memory_type": "interaction"}),
]


def test_each_search_answers_what_the_api_answers(server, rest, explorer):
    """Attributes, a similar state, text, near a place (within a radius, and nearest), each with the
    filters it takes, then its next page; a result clicked shows its memory."""
    explorer.open(server, "#agent=scout-0")

    def shown() -> list[str]:
        return explorer.page.eval_on_selector_all("#search-results button", "bs => bs.map(b => b.dataset.memoryId)")

    for number, (kind, inputs, body) in enumerate(SEARCHES):
        explorer.page.select_option("#search-kind", kind)
        if kind != "text":  # a text search takes no steps: the page disables them
            for selector in ("#search-start", "#search-end"):
                explorer.page.fill(selector, "")
        explorer.page.select_option("#search-type", "")
        for selector, value in inputs.items():
            if selector == "#search-type":
                explorer.page.select_option(selector, value)
            else:
                explorer.page.fill(selector, value)
        explorer.page.fill("#search-limit", "15")
        explorer.page.click("#search-run")
        explorer.idle()
        first = rest.post("/v1/agents/scout-0/search", json={**body, "limit": 15}).json()
        assert len(first["memories"]) > 1, f"the simulation should answer {body}"
        assert shown() == [m["memory_id"] for m in first["memories"]], body
        if first["next_offset"] is not None:
            explorer.page.click("#search-more")
            explorer.idle()
            second = rest.post("/v1/agents/scout-0/search", json={**body, "limit": 15, "offset": first["next_offset"]})
            assert shown() == [m["memory_id"] for m in first["memories"] + second.json()["memories"]], body
        explorer.page.locator("#search-results button").nth(1).click()
        assert explorer.shown_memory_id() == first["memories"][1]["memory_id"]
        assert json.loads(explorer.text("#memory-contents")) == first["memories"][1]["contents"]
        explorer.shot(f"search-{number}-{kind}")


def test_a_refused_search_shows_the_servers_error(server, rest, explorer):
    explorer.open(server, "#agent=scout-0")
    explorer.expected_errors = ["status of 400"]  # the browser logs the failed request itself
    explorer.page.fill("#search-attributes", '{"inventory.wood": {"$near": 3}}')
    explorer.page.click("#search-run")
    explorer.idle()
    refused = rest.post("/v1/agents/scout-0/search", json={"attributes": {"inventory.wood": {"$near": 3}}, "limit": 20})
    assert refused.status_code == 400
    assert explorer.text("#error") == f"{refused.json()['error']}: {refused.json()['message']}"
    explorer.page.fill("#search-attributes", "{not json")
    explorer.page.click("#search-run")
    explorer.idle()
    assert explorer.text("#error").startswith("Attributes is not JSON")


def test_a_token_is_asked_for_when_the_server_has_tokens(guarded_server, explorer):
    explorer.expected_errors = ["status of 401"]
    explorer.open(guarded_server)
    assert explorer.text("#error") == "Unauthorized: a bearer token is required\nThis server needs a token: enter it above."
    assert explorer.page.get_attribute("#token-form", "aria-invalid") == "true"
    assert explorer.page.evaluate("document.activeElement.id") == "token"
    explorer.shot("token-required")

    explorer.page.fill("#token", "not-the-token")
    explorer.page.click("#token-save")
    explorer.idle()
    assert explorer.text("#error").startswith("Unauthorized: the bearer token is not known")

    explorer.page.fill("#token", TOKEN)
    explorer.page.click("#token-save")
    explorer.idle()
    assert explorer.page.locator("#error").is_hidden()
    with httpx.Client(base_url=guarded_server, headers={"Authorization": f"Bearer {TOKEN}"}) as rest:
        count = len(every_memory(rest, "scout-0"))
    assert explorer.page.get_attribute("#timeline", "data-count") == str(count)
    assert explorer.page.evaluate("sessionStorage.getItem('tiermem.explorer.token')") == TOKEN
    last = explorer.requests[-1]
    assert last.url.startswith(f"{guarded_server}/v1/") and last.headers["authorization"] == f"Bearer {TOKEN}"
    explorer.page.reload()  # the token stays for the tab's session
    explorer.idle()
    assert explorer.page.locator("#error").is_hidden()
    assert explorer.page.get_attribute("#timeline", "data-count") == str(count)
    explorer.shot("token-accepted")
