// The dashboard's state and wiring: the stream list, one stream's history (loaded once, then
// extended by the server-sent events), collapse statistics (refreshed at most once a second),
// and the API token dialog. Drawing lives in views.js.

import { AuthError, getHistory, getJson, openEvents, setToken, streamPath } from "./api.js";
import { drawBicChart, drawCollapseChart, drawSelectionChart, seriesClass } from "./views.js";

const STREAM_POLL_MS = 5000; // how often the stream list is refreshed
const COLLAPSE_MIN_INTERVAL_MS = 1000; // /collapse is fetched at most this often while live
const RECONNECT_MS = 3000; // wait before reopening an event stream the server closed
const MAX_POINTS = 20000; // history kept in the page; older points are thinned beyond this

const $ = (id) => document.getElementById(id);

const state = {
  streams: [], // stream objects from GET /v1/streams
  name: null, // the stream on display
  stream: null, // its stream object, kept current by the events
  points: [], // [{step, best_latent_dim, models: {H: {bic, batch_bic}}}], oldest first
  steps: new Set(), // steps present in points
  collapse: null, // the last GET /collapse answer
  source: null, // the EventSource of the stream on display
  generation: 0, // bumped on every switch of stream; answers for an older one are dropped
  windowSteps: Infinity, // show the last N steps only
  showBatch: true,
  hadError: false, // the event stream failed since it last opened: catch up on reopening
  tokenDeclined: false, // the token dialog was cancelled: do not reopen it on every poll
};

function toPoint(raw) {
  const models = {};
  for (const m of raw.models) models[m.latent_dim] = { bic: m.bic, batch_bic: m.batch_bic ?? null };
  return { step: raw.step, best_latent_dim: raw.best_latent_dim, models };
}

/** Merge points into the history (once per step, kept in step order, bounded in size). */
function addPoints(raws) {
  let unordered = false;
  for (const raw of raws) {
    if (state.steps.has(raw.step) || raw.best_latent_dim === null) continue;
    const last = state.points[state.points.length - 1];
    if (last && raw.step < last.step) unordered = true;
    state.points.push(toPoint(raw));
    state.steps.add(raw.step);
  }
  if (unordered) state.points.sort((a, b) => a.step - b.step);
  if (state.points.length > MAX_POINTS) {
    // Drop every second point of the older half: the whole span stays visible, memory bounded.
    const half = Math.floor(state.points.length / 2);
    const older = state.points.slice(0, half).filter((_, i) => i % 2 === 0);
    state.points = older.concat(state.points.slice(half));
    state.steps = new Set(state.points.map((p) => p.step));
  }
}

function changesOf(points) {
  const changes = [];
  for (let i = 1; i < points.length; i += 1) {
    const previous = points[i - 1].best_latent_dim;
    if (points[i].best_latent_dim !== previous) {
      changes.push({ step: points[i].step, previous, best_latent_dim: points[i].best_latent_dim });
    }
  }
  return changes;
}

/** Call fn at most once per `ms`; a call inside the quiet period runs at its end. */
function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, wait);
  };
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function handleError(error) {
  if (error instanceof AuthError && state.tokenDeclined) {
    showError("This server needs an API token: set one with the API token button.");
  } else if (error instanceof AuthError) {
    openTokenDialog();
  } else {
    showError(error.message);
  }
}

function setConnection(status) {
  const node = $("connection");
  node.textContent = status;
  node.className = `connection ${status}`;
}

// ---- stream list ----------------------------------------------------------------------------

async function refreshStreams() {
  try {
    const body = await getJson("v1/streams");
    state.streams = body.data;
    const current = state.streams.find((s) => s.name === state.name);
    if (current && state.stream) {
      // The events are usually ahead of this list; take the list's answer only when it is newer.
      if (current.step >= state.stream.step) state.stream = current;
      else state.stream.dim = current.dim;
      scheduleRender();
    }
    renderStreamList();
    if (!state.name && state.streams.length > 0 && !hashStream()) selectStream(state.streams[0].name);
  } catch (error) {
    handleError(error);
  }
}

function renderStreamList() {
  const list = $("stream-list");
  list.replaceChildren();
  for (const listed of state.streams) {
    const stream = listed.name === state.name && state.stream ? state.stream : listed;
    const link = document.createElement("a");
    link.href = `#stream=${encodeURIComponent(stream.name)}`;
    link.className = "stream-link";
    if (stream.name === state.name) link.setAttribute("aria-current", "page");
    const name = document.createElement("span");
    name.className = "stream-name";
    name.textContent = stream.name;
    const meta = document.createElement("span");
    meta.className = "stream-meta";
    const best = stream.best_latent_dim === null ? "no data yet" : `H=${stream.best_latent_dim}`;
    meta.textContent = `${best} · step ${stream.step} · D=${stream.dim ?? "?"}`;
    link.append(name, meta);
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
  }
  $("streams-empty").hidden = state.streams.length > 0;
}

// ---- one stream -----------------------------------------------------------------------------

function hashStream() {
  return new URLSearchParams(window.location.hash.slice(1)).get("stream");
}

async function selectStream(name) {
  state.generation += 1;
  const generation = state.generation;
  state.source?.close();
  Object.assign(state, { name, stream: null, points: [], steps: new Set(), collapse: null, source: null });
  if (hashStream() !== name) window.history.replaceState(null, "", `#stream=${encodeURIComponent(name)}`);
  renderStreamList();
  showError("");
  try {
    const [stream, history, collapse] = await Promise.all([
      getJson(streamPath(name)),
      getHistory(name),
      getJson(streamPath(name, "/collapse")),
    ]);
    if (generation !== state.generation) return;
    state.stream = stream;
    state.collapse = collapse;
    addPoints(history);
    render();
    connect(generation);
  } catch (error) {
    if (generation === state.generation) handleError(error);
  }
}

async function refreshCollapse() {
  const generation = state.generation;
  try {
    const collapse = await getJson(streamPath(state.name, "/collapse"));
    if (generation !== state.generation) return;
    state.collapse = collapse;
    scheduleRender();
  } catch (error) {
    handleError(error);
  }
}
const refreshCollapseSoon = throttle(refreshCollapse, COLLAPSE_MIN_INTERVAL_MS);

async function catchUp(generation) {
  const last = state.points[state.points.length - 1];
  const history = await getHistory(state.name, last ? last.step : -1);
  if (generation !== state.generation) return;
  addPoints(history);
  scheduleRender();
  refreshCollapseSoon();
}

function connect(generation) {
  const source = openEvents(state.name);
  state.source = source;
  state.hadError = false;
  setConnection("connecting");
  source.addEventListener("open", () => {
    setConnection("live");
    if (state.hadError) catchUp(generation).catch(handleError);
    state.hadError = false;
  });
  source.addEventListener("step", (event) => {
    const selection = JSON.parse(event.data);
    addPoints([selection]);
    Object.assign(state.stream, {
      step: Math.max(state.stream.step, selection.step),
      rows_seen: Math.max(state.stream.rows_seen, selection.rows_seen),
      best_latent_dim: selection.best_latent_dim,
    });
    renderStreamList();
    scheduleRender();
    refreshCollapseSoon();
  });
  source.addEventListener("selection_change", (event) => {
    const change = JSON.parse(event.data);
    $("change-note").textContent = `step ${change.step}: selected H ${change.previous} → ${change.best_latent_dim}`;
    const badge = $("best-h");
    if (!badge) return;
    badge.classList.remove("flash");
    void badge.offsetWidth; // restart the highlight animation
    badge.classList.add("flash");
  });
  source.addEventListener("error", () => {
    state.hadError = true;
    if (source.readyState !== EventSource.CLOSED) {
      setConnection("reconnecting");
      return;
    }
    // The server refused or ended the stream: check why (a 401 opens the token dialog), retry.
    setConnection("offline");
    setTimeout(() => {
      if (generation !== state.generation) return;
      getJson(streamPath(state.name))
        .then(() => catchUp(generation))
        .then(() => generation === state.generation && connect(generation))
        .catch(handleError);
    }, RECONNECT_MS);
  });
}

// ---- drawing --------------------------------------------------------------------------------

function renderStats(stream) {
  const stats = [
    ["selected H", stream.best_latent_dim ?? "–"],
    ["step", stream.step.toLocaleString("en-US")],
    ["rows seen", stream.rows_seen.toLocaleString("en-US")],
    ["data dim D", stream.dim ?? "–"],
    ["candidates H", stream.latent_dims.join(", ")],
    ["estimator", stream.estimator],
    ["learning rate", stream.learning_rate],
    ["BIC N", stream.bic_n],
    ["device", stream.device],
  ];
  const list = $("stats");
  // Built once, then only the values change: a running highlight is not restarted by a redraw.
  if (list.children.length !== stats.length) {
    list.replaceChildren();
    for (const [label] of stats) {
      const item = document.createElement("div");
      item.className = "stat";
      const term = document.createElement("dt");
      term.textContent = label;
      item.append(term, document.createElement("dd"));
      list.append(item);
    }
    list.firstChild.id = "best-h";
    list.firstChild.addEventListener("animationend", (event) => event.currentTarget.classList.remove("flash"));
  }
  stats.forEach(([, value], i) => {
    list.children[i].lastChild.textContent = String(value);
  });
}

function renderLegend(latentDims) {
  const legend = $("legend");
  legend.replaceChildren();
  const add = (className, swatch, label) => {
    const key = document.createElement("span");
    key.className = `key ${className}`;
    const mark = document.createElement("i");
    mark.className = swatch;
    key.append(mark, label);
    legend.append(key);
  };
  for (const h of latentDims) add(seriesClass(latentDims, h), "swatch", `H = ${h}`);
  add("", "stroke solid", "entropy BIC");
  if (state.showBatch) add("", "stroke faint", "batch BIC");
  add("", "stroke change", "selection change");
}

function renderChanges(changes) {
  const list = $("changes");
  list.replaceChildren();
  for (const change of changes.slice(-8).reverse()) {
    const item = document.createElement("li");
    item.textContent = `step ${change.step.toLocaleString("en-US")}: H ${change.previous} → ${change.best_latent_dim}`;
    list.append(item);
  }
  $("changes-empty").hidden = changes.length > 0;
}

function chartWidth(svg) {
  return Math.max(320, Math.floor(svg.parentElement.getBoundingClientRect().width));
}

function render() {
  const stream = state.stream;
  $("placeholder").hidden = Boolean(stream);
  $("stream-view").hidden = !stream;
  if (!stream) return;
  $("stream-name").textContent = stream.name;
  renderStats(stream);
  renderLegend(stream.latent_dims);
  const last = state.points.length ? state.points[state.points.length - 1].step : 0;
  const points = state.points.filter((p) => p.step > last - state.windowSteps);
  const changes = changesOf(state.points);
  const visibleChanges = changes.filter((c) => points.length && c.step >= points[0].step);
  const latentDims = stream.latent_dims;
  const common = { points, latentDims, changes: visibleChanges };
  drawBicChart($("bic-chart"), { ...common, showBatch: state.showBatch, width: chartWidth($("bic-chart")) });
  drawSelectionChart($("selection-chart"), { ...common, width: chartWidth($("selection-chart")) });
  drawCollapseChart($("collapse-chart"), {
    collapse: state.collapse,
    latentDims,
    bestLatentDim: stream.best_latent_dim,
    width: chartWidth($("collapse-chart")),
  });
  renderChanges(changes);
  $("collapse-step").textContent = state.collapse ? `at step ${state.collapse.step.toLocaleString("en-US")}` : "";
}

// ---- token dialog and controls --------------------------------------------------------------

function openTokenDialog() {
  const dialog = $("token-dialog");
  if (dialog.open) return;
  setConnection("locked");
  $("token-input").value = "";
  dialog.showModal();
}

function wireControls() {
  $("token-button").addEventListener("click", () => {
    $("token-dialog").returnValue = "";
    openTokenDialog();
  });
  $("token-dialog").addEventListener("close", () => {
    const choice = $("token-dialog").returnValue;
    state.tokenDeclined = choice !== "save";
    if (choice === "save") setToken($("token-input").value.trim());
    if (choice === "clear") setToken("");
    if (choice === "save" || choice === "clear") {
      refreshStreams();
      if (state.name) selectStream(state.name);
    }
  });
  for (const button of document.querySelectorAll("[data-window]")) {
    button.addEventListener("click", () => {
      state.windowSteps = Number(button.dataset.window) || Infinity;
      for (const other of document.querySelectorAll("[data-window]")) other.setAttribute("aria-pressed", String(other === button));
      scheduleRender();
    });
  }
  $("show-batch").addEventListener("change", (event) => {
    state.showBatch = event.target.checked;
    scheduleRender();
  });
  window.addEventListener("hashchange", () => {
    const name = hashStream();
    if (name && name !== state.name) selectStream(name);
  });
  window.addEventListener("resize", scheduleRender);
}

wireControls();
const initial = hashStream();
if (initial) selectStream(initial);
refreshStreams();
setInterval(refreshStreams, STREAM_POLL_MS);
