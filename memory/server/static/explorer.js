// tiermem memory explorer: plain JS over the server's REST routes (/v1), drawing with SVG.
// Nothing here is fetched from anywhere but this server.

const API = new URL("../v1/", location.href);  // the page lives at <server>/explorer/
const TOKEN_KEY = "tiermem.explorer.token";
const PAGE = 1000;         // memories asked for per request (the server's largest page); pages follow next_offset
const MAX_SHOWN = 20000;   // memories one timeline holds; narrow the steps to see the rest
const TIERS = ["stm", "im", "ltm"];
const TYPES = ["state", "action", "interaction"];
const COLOURS = { stm: "#1b9e77", im: "#d95f02", ltm: "#7570b3" };  // as in explorer.css
const MAX_COORDINATE = 1e150;  // as memory/_engine/derive.py: beyond it a coordinate is no place
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (selector) => document.querySelector(selector);

const state = {
  agent: "",
  agentsNext: null,
  memories: [],     // the timeline's memories, sorted by step
  byId: new Map(),
  domain: [0, 1],
  rows: Object.fromEntries(TYPES.map((type) => [type, []])),  // memory type -> its memories in step order
  places: [],       // {memory, x, y} of the memories that have a place
  placeScale: null,
  nearCircle: null, // {x, y, r} of the last near-a-place search with a radius
  selected: null,   // the memory shown
  hits: [],         // the last search's memories
  search: null,     // {body, offset} of the last search, for "More results"
  load: null,       // the AbortController of the range being loaded
};

// -- talking to the server --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, { method = "GET", params, body, signal } = {}) {
  const url = new URL(path, API);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NetworkError", `the server did not answer (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const named = data && typeof data === "object" && !Array.isArray(data);
    throw new ApiError(response.status, named && data.error ? String(data.error) : `HTTP ${response.status}`,
      named && data.message ? String(data.message) : text || response.statusText);
  }
  return data;
}

const agentPath = (agent, rest = "") => `agents/${encodeURIComponent(agent)}${rest}`;

// -- messages ----------------------------------------------------------------------------------------

function showError(error) {
  if (error && error.name === "AbortError") return;
  const box = $("#error");
  const form = $("#token-form");
  if (error instanceof ApiError) {
    let text = `${error.error}: ${error.message}`;
    if (error.status === 401) {
      text += token() ? "\nThis token is not accepted: enter another above." : "\nThis server needs a token: enter it above.";
      form.setAttribute("aria-invalid", "true");
      $("#token").focus();
    }
    box.textContent = text;
  } else {
    box.textContent = String(error && error.message ? error.message : error);
  }
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
  $("#token-form").removeAttribute("aria-invalid");
}

function status(text) {
  $("#status").textContent = text;
}

// Runs a user's action, showing what fails; <body data-busy> counts the actions still running.
let busy = 0;
async function guarded(action) {
  document.body.dataset.busy = String(++busy);
  try {
    clearError();
    await action();
  } catch (error) {
    showError(error);
  } finally {
    document.body.dataset.busy = String(--busy);
  }
}

// -- agents ------------------------------------------------------------------------------------------

async function loadAgents(more = false) {
  const select = $("#agent");
  if (!more) {
    select.replaceChildren();
    state.agentsNext = 0;
  }
  const page = await api("agents", { params: { limit: 200, offset: state.agentsNext } });
  for (const agent of page.agents) {
    if (!select.querySelector(`option[value="${CSS.escape(agent)}"]`)) select.add(new Option(agent, agent));
  }
  state.agentsNext = page.next_offset;
  $("#agents-more").hidden = page.next_offset === null || page.next_offset === undefined;
  $("#agents-count").textContent = `${select.options.length} agent${select.options.length === 1 ? "" : "s"} listed` +
    ($("#agents-more").hidden ? "." : "; more on the server.");
}

function ensureAgentOption(agent) {
  const select = $("#agent");
  if (agent && !select.querySelector(`option[value="${CSS.escape(agent)}"]`)) select.add(new Option(agent, agent));
  select.value = agent;
}

// -- the view's state in the address (#agent=...&start=...&end=...&type=...) --------------------------

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { agent: params.get("agent") || "", start: params.get("start") || "", end: params.get("end") || "",
    type: params.get("type") || "" };
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.agent) params.set("agent", state.agent);
  if ($("#start-step").value) params.set("start", $("#start-step").value);
  if ($("#end-step").value) params.set("end", $("#end-step").value);
  if ($("#range-type").value) params.set("type", $("#range-type").value);
  history.replaceState(null, "", `#${params}`);
}

// -- an agent's memories in a step range ---------------------------------------------------------------

function stepInput(selector, what) {
  const raw = $(selector).value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a whole number of 0 or more, got ${raw}`);
  return value;
}

async function showAgent() {
  state.agent = $("#agent").value;
  writeHash();
  if (!state.agent) return;
  await Promise.all([loadStats(), loadRange()]);
}

async function loadRange() {
  if (state.load) state.load.abort();
  const load = (state.load = new AbortController());
  const agent = state.agent;
  const params = { start_step: stepInput("#start-step", "From step"), end_step: stepInput("#end-step", "To step"),
    memory_type: $("#range-type").value, limit: PAGE, offset: 0 };
  if (params.start_step !== undefined && params.end_step !== undefined && params.start_step > params.end_step) {
    throw new Error("From step must not be after to step");
  }
  const memories = [];
  const failed = new Set();
  let truncated = false;
  status(`Loading the memories of ${agent}…`);
  while (true) {
    const page = await api(agentPath(agent, "/memories"), { params, signal: load.signal });
    memories.push(...page.memories);
    for (const tier of page.failed_tiers || []) failed.add(tier);
    status(`Loading the memories of ${agent}: ${memories.length} so far…`);
    if (page.next_offset === null || page.next_offset === undefined) break;
    if (memories.length >= MAX_SHOWN) {
      truncated = true;
      break;
    }
    params.offset = page.next_offset;
  }
  if (load.signal.aborted) return;
  state.load = null;
  setMemories(memories, params);
  status(`${agent}: ${memories.length} memor${memories.length === 1 ? "y" : "ies"}` +
    (truncated ? ` shown, the first ${memories.length}; narrow the steps to see the rest.` : ".") +
    (failed.size ? ` The ${[...failed].join(", ")} tier did not answer: its memories are missing here.` : ""));
}

function setMemories(memories, params) {
  memories.sort((a, b) => a.step_number - b.step_number || TYPES.indexOf(typeOf(a)) - TYPES.indexOf(typeOf(b)));
  state.memories = memories;
  state.byId = new Map(memories.map((memory) => [memory.memory_id, memory]));
  const steps = memories.map((memory) => memory.step_number);
  const lo = params.start_step ?? (steps.length ? steps[0] : 0);
  const hi = params.end_step ?? (steps.length ? steps[steps.length - 1] : lo + 1);
  state.domain = [lo, Math.max(hi, lo)];
  state.rows = Object.fromEntries(TYPES.map((type) => [type, memories.filter((memory) => typeOf(memory) === type)]));
  if (state.selected && !state.byId.has(state.selected.memory_id)) state.selected = null;
  computePlaces();
  drawTimeline();
  drawPlaces();
  drawRangeCounts();
}

const typeOf = (memory) => memory.metadata.memory_type;
const tierOf = (memory) => memory.tier;  // the tier that answered

// -- the tier and type distribution (the agent's whole memory: /v1/agents/{id}/stats) ---------------------

async function loadStats() {
  const agent = state.agent;
  const stats = await api(agentPath(agent, "/stats"));
  if (agent !== state.agent) return;  // another agent was picked meanwhile
  const total = stats.total_memories;
  $("#distribution-total").textContent = `${agent}: ${total} memor${total === 1 ? "y" : "ies"} in all tiers.`;
  const tierRows = TIERS.map((tier) => {
    const summary = stats.tiers[tier];
    return distributionRow(tier, summary.count, total, `tier-${tier}`,
      [summary.bytes.toLocaleString("en"), `${Number(summary.compression_ratio).toFixed(2)}x`]);
  });
  $("#tier-distribution tbody").replaceChildren(...tierRows);
  const types = stats.memory_type_distribution;
  $("#type-distribution tbody").replaceChildren(...TYPES.map((type) => distributionRow(type, types[type] || 0, total, "")));
  const importance = stats.importance;
  $("#importance").textContent = importance.mean === null ? "" :
    `Importance: min ${fixed(importance.min)}, mean ${fixed(importance.mean)}, max ${fixed(importance.max)}.`;
}

function distributionRow(name, count, total, barClass, extra = []) {
  const row = document.createElement("tr");
  row.dataset.name = name;
  row.dataset.count = String(count);
  row.append(cell(name, "th"), cell(count.toLocaleString("en")), ...extra.map((text) => cell(text)));
  const bar = document.createElement("div");
  bar.className = "share";
  bar.setAttribute("role", "presentation");
  const fill = document.createElement("div");
  if (barClass) fill.className = barClass;
  fill.style.width = `${total ? (100 * count) / total : 0}%`;
  bar.append(fill);
  const barCell = cell("");
  barCell.append(bar);
  row.append(barCell);
  return row;
}

function cell(text, tag = "td") {
  const element = document.createElement(tag);
  if (tag === "th") element.scope = "row";
  element.textContent = text;
  return element;
}

const fixed = (value) => (typeof value === "number" ? value.toFixed(3) : "–");

function drawRangeCounts() {
  const rows = TYPES.map((type) => {
    const row = document.createElement("tr");
    row.dataset.type = type;
    row.append(cell(type, "th"));
    for (const tier of TIERS) {
      const n = state.rows[type].filter((memory) => tierOf(memory) === tier).length;
      const td = cell(String(n));
      td.dataset.tier = tier;
      row.append(td);
    }
    return row;
  });
  $("#range-counts tbody").replaceChildren(...rows);
}

// -- the timeline: x = step, a row per type, one mark per memory, a path per (tier, type) ----------------

const TL = { left: 84, right: 16, top: 10, row: 38, axis: 26 };

function timelineX(step) {
  const [lo, hi] = state.domain;
  const width = timelineWidth() - TL.left - TL.right;
  return TL.left + (hi === lo ? width / 2 : ((step - lo) / (hi - lo)) * width);
}

const timelineWidth = () => Math.max($("#timeline").clientWidth, 320);
const rowCenter = (type) => TL.top + TL.row * TYPES.indexOf(type) + TL.row / 2;

// Half a mark's width from how crowded the steps are: a state's bar 0.5 to 3 px, a shape 3 to 6 px.
function markHalfWidth() {
  const [lo, hi] = state.domain;
  return ((timelineWidth() - TL.left - TL.right) / (hi - lo + 1)) * 0.45;
}

function markPath(memory, half) {
  const x = timelineX(memory.step_number);
  const y = rowCenter(typeOf(memory));
  const shape = Math.min(6, Math.max(3, half));
  const h = shape.toFixed(2);
  switch (typeOf(memory)) {
    case "action": return `M${x.toFixed(1)},${y - 7}l${h},12h${(-2 * shape).toFixed(2)}z`;
    case "interaction": return `M${x.toFixed(1)},${y - 7}l${h},7l-${h},7l-${h},-7z`;
    default: {
      const bar = Math.min(3, Math.max(0.5, half));
      return `M${(x - bar).toFixed(2)},${y - 8}h${(2 * bar).toFixed(2)}v16h${(-2 * bar).toFixed(2)}z`;
    }
  }
}

function ringPath(memory, at = timelineX(memory.step_number), y = rowCenter(typeOf(memory)), r = 10) {
  return `M${(at - r).toFixed(1)},${y}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
}

function drawTimeline() {
  const svg = $("#timeline");
  const width = timelineWidth();
  const height = TL.top + TL.row * TYPES.length + TL.axis;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", String(height));
  const grid = [];
  for (const type of TYPES) {
    const y = rowCenter(type);
    grid.push(svgElement("line", { class: "gridline", x1: TL.left, x2: width - TL.right, y1: y, y2: y }));
    grid.push(svgElement("text", { class: "row-label", x: 8, y: y + 4 }, type));
  }
  const axisY = TL.top + TL.row * TYPES.length;
  grid.push(svgElement("line", { class: "axis", x1: TL.left, x2: width - TL.right, y1: axisY, y2: axisY }));
  const steps = state.memories.length ? ticks(state.domain[0], state.domain[1], Math.max(2, Math.floor(width / 110)), true) : [];
  for (const step of steps) {
    const x = timelineX(step);
    grid.push(svgElement("line", { class: "axis", x1: x, x2: x, y1: axisY, y2: axisY + 4 }));
    grid.push(svgElement("text", { x, y: axisY + 16, "text-anchor": "middle" }, String(step)));
  }
  grid.push(svgElement("text", { x: 8, y: axisY + 16 }, "step"));
  $("#timeline-grid").replaceChildren(...grid);

  const series = [];
  const half = markHalfWidth();
  for (const type of TYPES) {
    for (const tier of TIERS) {
      const marks = state.rows[type].filter((memory) => tierOf(memory) === tier);
      if (!marks.length) continue;
      series.push(svgElement("path", { class: "series", fill: COLOURS[tier], "data-tier": tier, "data-type": type,
        "data-count": marks.length, d: marks.map((memory) => markPath(memory, half)).join("") }));
    }
  }
  $("#timeline-marks").replaceChildren(...series);
  const [lo, hi] = state.domain;
  $("#timeline-summary").textContent = state.memories.length
    ? `${state.memories.length} memories of ${state.agent}, steps ${lo} to ${hi}.`
    : `No memories of ${state.agent || "this agent"} in these steps.`;
  $("#timeline").dataset.count = String(state.memories.length);
  drawTimelineOverlays();
}

function drawTimelineOverlays() {
  const shown = state.hits.filter((memory) => state.byId.has(memory.memory_id));
  $("#timeline-hits").setAttribute("d", shown.map((memory) => ringPath(memory)).join(""));
  const selected = state.selected && state.byId.get(state.selected.memory_id);
  $("#timeline-selected").setAttribute("d", selected ? ringPath(selected, undefined, undefined, 12) : "");
}

// The memory under a click: the row from y, then the mark nearest x in that row (within 8 px).
function pickOnTimeline(event) {
  const box = $("#timeline").getBoundingClientRect();
  const x = event.clientX - box.left;
  const row = Math.floor((event.clientY - box.top - TL.top) / TL.row);
  if (row < 0 || row >= TYPES.length) return null;
  let best = null;
  let bestDistance = 8;
  for (const memory of state.rows[TYPES[row]]) {
    const distance = Math.abs(timelineX(memory.step_number) - x);
    if (distance <= bestDistance) {
      best = memory;
      bestDistance = distance;
    }
  }
  return best;
}

function stepSelection(delta) {
  if (!state.memories.length) return;
  const index = state.selected ? state.memories.findIndex((memory) => memory.memory_id === state.selected.memory_id) : -1;
  const next = index < 0 ? (delta > 0 ? 0 : state.memories.length - 1)
    : Math.min(state.memories.length - 1, Math.max(0, index + delta));
  select(state.memories[next]);
}

// "Nice" round values for an axis: about `count` ticks at multiples of 1, 2 or 5 x 10^k (whole ones for steps).
function ticks(lo, hi, count, whole = false) {
  if (hi <= lo) return [lo];
  const raw = whole ? Math.max(1, (hi - lo) / count) : (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= raw) || 10 * magnitude;
  const first = Math.ceil(lo / unit) * unit;
  const found = [];
  for (let value = first; value <= hi + unit * 1e-9; value += unit) found.push(Number(value.toPrecision(12)));
  return found;
}

// -- places: the engine's rule (memory/_engine/derive.py PositionReader) ---------------------------------

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const inRange = (point) => point.every((value) => Math.abs(value) <= MAX_COORDINATE);

function placeOf(contents, key) {
  if (contents === null || typeof contents !== "object" || Array.isArray(contents)) return null;
  const value = contents[key];
  if (value !== undefined && value !== null) {
    if (Array.isArray(value) && (value.length === 2 || value.length === 3) && value.every(isNumber)) {
      return inRange(value) ? value.map(Number) : null;
    }
    return null;
  }
  const x = contents[`${key}_x`];
  if (x === undefined || x === null) return null;
  const y = contents[`${key}_y`];
  const z = contents[`${key}_z`];
  if (!isNumber(x) || !isNumber(y)) return null;
  const point = isNumber(z) ? [x, y, z] : [x, y];
  return inRange(point) ? point : null;
}

function computePlaces() {
  const key = $("#place-key").value.trim() || "position";
  for (const element of document.querySelectorAll(".place-key")) element.textContent = key;
  state.places = [];
  for (const memory of state.memories) {
    const place = placeOf(memory.contents, key);
    if (place) state.places.push({ memory, x: place[0], y: place[1] });
  }
}

const PL = { left: 56, right: 16, top: 12, bottom: 30 };

function drawPlaces() {
  const svg = $("#places");
  const width = Math.max(svg.clientWidth, 320);
  const plotW = width - PL.left - PL.right;
  const near = state.nearCircle;
  let [x0, x1, y0, y1] = near ? [near.x - near.r, near.x + near.r, near.y - near.r, near.y + near.r]
    : [Infinity, -Infinity, Infinity, -Infinity];
  for (const p of state.places) {  // a loop, not Math.min(...): thousands of arguments overflow the stack
    x0 = Math.min(x0, p.x);
    x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, p.y);
    y1 = Math.max(y1, p.y);
  }
  if (x0 > x1) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  // as tall as the places' extent asks for at this width, within 200 to 480 px (80 px when there are none)
  const empty = !state.places.length && !near;
  const plotH = (empty ? 80 : Math.min(480, Math.max(200, (plotW * (y1 - y0)) / (x1 - x0)))) - PL.top - PL.bottom;
  const height = plotH + PL.top + PL.bottom;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", String(height));
  // one scale for both axes, so distances on screen are distances in the world
  const unit = Math.min(plotW / (x1 - x0), plotH / (y1 - y0));
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const sx = (x) => PL.left + plotW / 2 + (x - cx) * unit;
  const sy = (y) => PL.top + plotH / 2 - (y - cy) * unit;  // y grows upwards
  state.placeScale = { sx, sy, unit, wx: (px) => cx + (px - PL.left - plotW / 2) / unit,
    wy: (py) => cy - (py - PL.top - plotH / 2) / unit };

  const grid = empty ? [svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No places to show")] : [];
  const visibleX = [cx - plotW / 2 / unit, cx + plotW / 2 / unit];
  const visibleY = [cy - plotH / 2 / unit, cy + plotH / 2 / unit];
  for (const x of empty ? [] : ticks(visibleX[0], visibleX[1], Math.max(2, Math.floor(plotW / 90)))) {
    grid.push(svgElement("line", { class: "gridline", x1: sx(x), x2: sx(x), y1: PL.top, y2: PL.top + plotH }));
    grid.push(svgElement("text", { x: sx(x), y: height - 10, "text-anchor": "middle" }, String(x)));
  }
  for (const y of empty ? [] : ticks(visibleY[0], visibleY[1], Math.max(2, Math.floor(plotH / 60)))) {
    grid.push(svgElement("line", { class: "gridline", x1: PL.left, x2: PL.left + plotW, y1: sy(y), y2: sy(y) }));
    grid.push(svgElement("text", { x: PL.left - 6, y: sy(y) + 4, "text-anchor": "end" }, String(y)));
  }
  $("#places-grid").replaceChildren(...grid);

  const series = [];
  for (const tier of [...TIERS].reverse()) {  // long-term first: the most recent tier's points lie on top
    const points = state.places.filter((p) => tierOf(p.memory) === tier);
    if (!points.length) continue;
    series.push(svgElement("path", { class: "series", fill: COLOURS[tier], "data-tier": tier,
      "data-count": points.length, d: points.map((p) => dot(sx(p.x), sy(p.y), 3.5)).join("") }));
  }
  $("#places-marks").replaceChildren(...series);
  const circle = $("#places-near");
  if (near) {
    circle.setAttribute("cx", sx(near.x));
    circle.setAttribute("cy", sy(near.y));
    circle.setAttribute("r", Math.max(near.r * unit, 2));
    circle.setAttribute("visibility", "visible");
  } else {
    circle.setAttribute("visibility", "hidden");
  }
  const distinct = new Set(state.places.map((p) => `${p.x},${p.y}`)).size;
  $("#places-summary").textContent = state.places.length
    ? `${state.places.length} of ${state.memories.length} memories have a place; ${distinct} distinct place${distinct === 1 ? "" : "s"}.`
    : `None of the ${state.memories.length} memories on the timeline has a place.`;
  $("#places").dataset.count = String(state.places.length);
  drawPlaceOverlays();
}

const dot = (x, y, r) => `M${(x - r).toFixed(1)},${y.toFixed(1)}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;

function drawPlaceOverlays() {
  const scale = state.placeScale;
  if (!scale) return;
  const hitIds = new Set(state.hits.map((memory) => memory.memory_id));
  $("#places-hits").setAttribute("d", state.places.filter((p) => hitIds.has(p.memory.memory_id))
    .map((p) => dot(scale.sx(p.x), scale.sy(p.y), 7)).join(""));
  const selected = state.selected && state.places.find((p) => p.memory.memory_id === state.selected.memory_id);
  $("#places-selected").setAttribute("d", selected ? dot(scale.sx(selected.x), scale.sy(selected.y), 9) : "");
}

// The point under a click, within 10 px; of several at one place, the latest step.
function pickOnPlaces(event) {
  const scale = state.placeScale;
  if (!scale) return null;
  const box = $("#places").getBoundingClientRect();
  const x = event.clientX - box.left;
  const y = event.clientY - box.top;
  let best = null;
  let bestDistance = 10;
  for (const p of state.places) {
    const distance = Math.hypot(scale.sx(p.x) - x, scale.sy(p.y) - y);
    if (distance < bestDistance - 1e-9 || (best && Math.abs(distance - bestDistance) < 1e-9 &&
        p.memory.step_number > best.memory.step_number)) {
      best = p;
      bestDistance = distance;
    }
  }
  return best && best.memory;
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [attribute, value] of Object.entries(attributes)) element.setAttribute(attribute, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// -- one memory ----------------------------------------------------------------------------------------

function select(memory) {
  state.selected = memory;
  $("#memory-empty").hidden = true;
  $("#memory-details").hidden = false;
  const metadata = memory.metadata;
  const time = (seconds) => (typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : "–");
  const place = placeOf(memory.contents, $("#place-key").value.trim() || "position");
  const facts = [
    ["memory id", memory.memory_id], ["agent", memory.agent_id], ["step", memory.step_number],
    ["tier", tierOf(memory)], ["type", typeOf(memory)], ["importance", fixed(metadata.importance_score)],
    ["retrievals", metadata.retrieval_count ?? "–"], ["compression level", metadata.compression_level ?? "–"],
    ["stored", time(memory.timestamp)], ["last access", time(metadata.last_access_time)],
    ["place", place ? `(${place.join(", ")})` : "none"],
  ];
  for (const score of ["similarity_score", "state_distance", "distance", "fused_score", "keyword_score"]) {
    if (typeof memory[score] === "number") facts.push([score.replace("_", " "), fixed(memory[score])]);
  }
  $("#memory-meta").replaceChildren(...facts.flatMap(([name, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dd.dataset.field = name;
    return [dt, dd];
  }));
  $("#memory-contents").textContent = JSON.stringify(memory.contents, null, 2);
  const { contents, ...rest } = memory;
  $("#memory-metadata").textContent = JSON.stringify(rest, null, 2);
  for (const button of document.querySelectorAll("#search-results button")) {
    button.setAttribute("aria-current", String(button.dataset.memoryId === memory.memory_id));
  }
  drawTimelineOverlays();
  drawPlaceOverlays();
}

async function openMemory(memoryId) {
  const memory = await api(agentPath(state.agent, `/memories/${encodeURIComponent(memoryId)}`));
  select(memory);
}

// -- search --------------------------------------------------------------------------------------------

function jsonObject(selector, what) {
  let value;
  try {
    value = JSON.parse($(selector).value);
  } catch (error) {
    throw new Error(`${what} is not JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value;
}

function numberInput(selector, what, required) {
  const raw = $(selector).value.trim();
  if (raw === "") {
    if (required) throw new Error(`${what} is needed`);
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${what} must be a number, got ${raw}`);
  return value;
}

function searchBody() {
  const kind = $("#search-kind").value;
  const body = {};
  state.nearCircle = null;
  if (kind === "attributes") body.attributes = jsonObject("#search-attributes", "Attributes");
  if (kind === "similar") body.similar_to = jsonObject("#search-similar", "The state");
  if (kind === "text") {
    const text = $("#search-text").value;
    if (!text.trim()) throw new Error("Text to search for is needed");
    body.text = text;
  }
  if (kind === "near") {
    const center = [numberInput("#near-x", "x", true), numberInput("#near-y", "y", true)];
    body.near = { center };
    const radius = numberInput("#near-radius", "radius", false);
    if (radius !== undefined) {
      body.near.radius = radius;
      state.nearCircle = { x: center[0], y: center[1], r: radius };
    }
  }
  if (kind !== "text") {
    const start = stepInput("#search-start", "The search's first step");
    const end = stepInput("#search-end", "The search's last step");
    if (start !== undefined) body.start_step = start;
    if (end !== undefined) body.end_step = end;
  }
  if ($("#search-type").value) body.memory_type = $("#search-type").value;
  const limit = stepInput("#search-limit", "At most");
  if (limit !== undefined) body.limit = limit;
  return body;
}

async function runSearch(more = false) {
  if (!state.agent) throw new Error("Pick an agent first");
  if (!more) {
    state.search = { body: searchBody(), offset: 0 };
    state.hits = [];
    $("#search-results").replaceChildren();
  }
  const { body, offset } = state.search;
  const answer = await api(agentPath(state.agent, "/search"), { method: "POST", body: { ...body, offset } });
  state.hits.push(...answer.memories);
  const failed = answer.failed_tiers || [];
  state.search.offset = answer.next_offset;
  $("#search-more").hidden = answer.next_offset === null || answer.next_offset === undefined;
  $("#search-results").append(...answer.memories.map(resultItem));
  const outside = state.hits.filter((memory) => !state.byId.has(memory.memory_id)).length;
  $("#search-summary").textContent = `${state.hits.length} result${state.hits.length === 1 ? "" : "s"}` +
    (outside ? `; ${outside} lie outside the timeline's steps.` : ".") +
    ($("#search-more").hidden ? "" : " More on the server.") +
    (failed.length ? ` The ${failed.join(", ")} tier did not answer.` : "");
  drawPlaces();  // the near circle may widen the view
  drawTimelineOverlays();
}

function resultItem(memory) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.memoryId = memory.memory_id;
  const tag = document.createElement("span");
  tag.className = `tier-tag tier-${tierOf(memory)}`;
  tag.textContent = tierOf(memory);
  const score = ["fused_score", "similarity_score", "distance"].find((name) => typeof memory[name] === "number");
  const text = document.createElement("span");
  text.textContent = ` step ${memory.step_number} · ${typeOf(memory)}` + (score ? ` · ${score.split("_")[0]} ${fixed(memory[score])}` : "");
  const id = document.createElement("div");
  id.className = "note mono";
  id.textContent = memory.memory_id;
  button.append(tag, text, id);
  button.addEventListener("click", () => select(memory));
  item.append(button);
  return item;
}

function showKind() {
  const kind = $("#search-kind").value;
  for (const box of document.querySelectorAll("#search-form .kind")) box.hidden = box.dataset.kind !== kind;
  for (const input of [$("#search-start"), $("#search-end")]) input.disabled = kind === "text";  // see index.html
}

// -- wiring ------------------------------------------------------------------------------------------------

async function start() {
  $("#token").value = token();
  const wanted = readHash();
  $("#start-step").value = wanted.start;
  $("#end-step").value = wanted.end;
  $("#range-type").value = wanted.type;
  await loadAgents();
  if (wanted.agent) ensureAgentOption(wanted.agent);
  if ($("#agent").value) await showAgent();
  else status("No agents have memories yet.");
}

function wire() {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    guarded(start);
  });
  $("#token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#token").value = "";
    status("Token forgotten.");
  });
  $("#agent").addEventListener("change", () => guarded(showAgent));
  $("#agents-more").addEventListener("click", () => guarded(() => loadAgents(true)));
  $("#range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(showAgent);
  });
  $("#open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#memory-id").value.trim();
    if (id) guarded(() => openMemory(id));
  });
  $("#search-kind").addEventListener("change", showKind);
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(() => runSearch(false));
  });
  $("#search-more").addEventListener("click", () => guarded(() => runSearch(true)));
  $("#timeline").addEventListener("click", (event) => {
    const memory = pickOnTimeline(event);
    if (memory) select(memory);
  });
  $("#timeline").addEventListener("keydown", (event) => {
    const moves = { ArrowRight: 1, ArrowLeft: -1, PageDown: 10, PageUp: -10, End: Infinity, Home: -Infinity };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const delta = moves[event.key];
    stepSelection(Number.isFinite(delta) ? delta : delta > 0 ? state.memories.length : -state.memories.length);
  });
  $("#places").addEventListener("click", (event) => {
    if (event.shiftKey && state.placeScale) {
      const box = $("#places").getBoundingClientRect();
      $("#search-kind").value = "near";
      showKind();
      $("#near-x").value = String(Number(state.placeScale.wx(event.clientX - box.left).toFixed(2)));
      $("#near-y").value = String(Number(state.placeScale.wy(event.clientY - box.top).toFixed(2)));
      return;
    }
    const memory = pickOnPlaces(event);
    if (memory) select(memory);
  });
  $("#place-key").addEventListener("change", () => {
    computePlaces();
    drawPlaces();
    if (state.selected) select(state.selected);
  });
  let resizing = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => {
      drawTimeline();
      drawPlaces();
    });
  });
}

wire();
showKind();
drawTimeline();
drawPlaces();
guarded(start);
