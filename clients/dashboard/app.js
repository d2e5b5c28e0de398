// The dashboard's state and wiring: the stream list, one stream's history (loaded once, then
// extended by the server-sent events), collapse statistics (refreshed at most once a second),
// and the API token dialog. The page's history is history.js; the charts are views.js (on the SVG
// primitives of charts.js); the HTML panels are panels.js; the REST calls are api.js.

import { AuthError, getHistory, getJson, openEvents, setToken, streamPath } from "./api.js";
import { History } from "./history.js";
import { renderChanges, renderLegend, renderStats, renderStreamList } from "./panels.js";
import { renderPick } from "./pick.js";
import { drawBicChart, drawCollapseChart, drawSelectionChart } from "./views.js";

const STREAM_POLL_MS = 5000; // how often the stream list is refreshed
const COLLAPSE_MIN_INTERVAL_MS = 1000; // /collapse is fetched at most this often while live
const RECONNECT_MS = 3000; // wait before reopening an event stream the server closed
const MAX_POINTS = 20000; // history kept in the page; older points are thinned beyond this

const $ = (id) => document.getElementById(id);

const state = {
  streams: [], // stream objects from GET /v1/streams
  name: null, // the stream on display
  stream: null, // its stream object, kept current by the events
  history: new History(MAX_POINTS), // score points of the stream on display
  collapse: null, // the last GET /collapse answer
  selection: null, // the last selection (GET /selection, then each step event)
  source: null, // the EventSource of the stream on display
  generation: 0, // bumped on every switch of stream; answers for an older one are dropped
  windowSteps: Infinity, // show the last N steps only
  showBatch: true,
  hadError: false, // the event stream failed since it last opened: catch up on reopening
  tokenDeclined: false, // the token dialog was cancelled: do not reopen it on every poll
  pinned: false, // the user picked the stream on display (a link, or #stream= in the address)
  steps: new Map(), // name -> step at the previous poll: a stream whose step grew is being pushed to
};

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
    showStreamList();
    const followed = state.pinned ? null : activeStream(state.streams);
    if (followed && followed !== state.name) selectStream(followed, { pinned: false });
  } catch (error) {
    handleError(error);
  }
}

/**
 * The stream to follow: the one whose step grew since the last poll (the one on display if it
 * did too), else, at the first poll, the most recently created one with the most steps.
 */
function activeStream(streams) {
  const grew = streams.filter((s) => state.steps.has(s.name) && s.step > state.steps.get(s.name));
  const first = state.steps.size === 0;
  state.steps = new Map(streams.map((s) => [s.name, s.step]));
  if (grew.some((s) => s.name === state.name)) return state.name;
  if (grew.length > 0) return grew[0].name;
  if (state.name || streams.length === 0 || !first) return null;
  const newest = [...streams].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  return newest[0].name;
}

function showFollowNote() {
  $("follow-note").hidden = state.pinned || state.streams.length === 0;
  $("unpin").hidden = !state.pinned;
}

// ---- one stream -----------------------------------------------------------------------------

function hashStream() {
  return new URLSearchParams(window.location.hash.slice(1)).get("stream");
}

async function selectStream(name, { pinned = true } = {}) {
  state.generation += 1;
  const generation = state.generation;
  state.source?.close();
  Object.assign(state, { name, pinned, stream: null, history: new History(MAX_POINTS), collapse: null, selection: null, source: null });
  // A pick is kept in the address (a reload stays on it); a followed stream is not.
  const address = pinned ? `#stream=${encodeURIComponent(name)}` : window.location.pathname;
  if ((hashStream() ?? null) !== (pinned ? name : null)) window.history.replaceState(null, "", address);
  showStreamList();
  showFollowNote();
  showError("");
  try {
    const [stream, history, collapse, selection] = await Promise.all([
      getJson(streamPath(name)),
      getHistory(name),
      getJson(streamPath(name, "/collapse")),
      getJson(streamPath(name, "/selection")),
    ]);
    if (generation !== state.generation) return;
    state.stream = stream;
    state.collapse = collapse;
    state.selection = selection;
    state.history.add(history);
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
  const history = await getHistory(state.name, state.history.lastStep ?? -1);
  if (generation !== state.generation) return;
  state.history.add(history);
  scheduleRender();
  refreshCollapseSoon();
}

async function reload(generation) {
  const [history, selection] = await Promise.all([
    getHistory(state.name),
    getJson(streamPath(state.name, "/selection")),
  ]);
  if (generation !== state.generation) return;
  state.history = new History(MAX_POINTS);
  state.history.add(history);
  state.selection = selection;
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
    state.selection = selection;
    state.history.add([selection]);
    Object.assign(state.stream, {
      step: Math.max(state.stream.step, selection.step),
      rows_seen: Math.max(state.stream.rows_seen, selection.rows_seen),
      best_latent_dim: selection.best_latent_dim,
    });
    showStreamList();
    scheduleRender();
    refreshCollapseSoon();
  });
  source.addEventListener("reset", () => {
    // Some missed events are no longer kept by the server: read the whole history again.
    reload(generation).catch(handleError);
  });
  source.addEventListener("end", (event) => {
    if (JSON.parse(event.data).reason !== "deleted") return; // shutdown: the browser reconnects
    source.close();
    setConnection("ended");
    showError(`Stream ${state.name} was deleted.`);
    refreshStreams();
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

function chartWidth(svg) {
  return Math.max(200, Math.floor(svg.parentElement.getBoundingClientRect().width));
}

function showStreamList() {
  // The stream on display is fresher (its events) than the last poll of the list.
  const streams = state.streams.map((s) => (s.name === state.name && state.stream ? state.stream : s));
  renderStreamList($("stream-list"), streams, state.name);
  $("streams-empty").hidden = state.streams.length > 0;
}

function render() {
  const stream = state.stream;
  $("placeholder").hidden = Boolean(stream);
  $("stream-view").hidden = !stream;
  if (!stream) return;
  $("stream-name").textContent = stream.name;
  renderStats($("stats"), stream, state.selection?.converged === false, state.selection);
  renderLegend($("legend"), stream.latent_dims, state.showBatch);
  const points = state.history.window(state.windowSteps);
  const changes = state.history.changes();
  const visibleChanges = changes.filter((c) => points.length && c.step >= points[0].step);
  const latentDims = stream.latent_dims;
  const common = { points, latentDims, changes: visibleChanges };
  drawBicChart($("bic-chart"), { ...common, showBatch: state.showBatch, width: chartWidth($("bic-chart")) });
  drawSelectionChart($("selection-chart"), { ...common, width: chartWidth($("selection-chart")) });
  drawCollapseChart($("collapse-chart"), {
    collapse: state.collapse,
    latentDims,
    bestLatentDim: stream.best_latent_dim,
    scores: state.selection?.models ?? [],
    width: chartWidth($("collapse-chart")),
  });
  renderPick($("pick"), state.selection, stream.bic_n);
  renderChanges($("changes"), changes);
  $("changes-empty").hidden = changes.length > 0;
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
    if (name) selectStream(name); // a click on a stream: stay on it
  });
  $("unpin").addEventListener("click", (event) => {
    event.preventDefault();
    state.pinned = false;
    state.steps = new Map(); // follow from the next poll as on a fresh page
    window.history.replaceState(null, "", window.location.pathname);
    showFollowNote();
    refreshStreams();
  });
  window.addEventListener("resize", scheduleRender);
}

wireControls();
const initial = hashStream();
if (initial) selectStream(initial); // an address with #stream= is a pick
refreshStreams();
setInterval(refreshStreams, STREAM_POLL_MS);
