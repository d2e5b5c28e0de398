// The dashboard's HTML panels (sidebar, figures, legend, list of changes), built with
// textContent only: names and values from the server are never parsed as markup.

import { seriesClass } from "./views.js";

/** The sidebar: one link per stream (#stream=NAME), the current one marked. */
export function renderStreamList(list, streams, currentName) {
  list.replaceChildren();
  for (const stream of streams) {
    const link = document.createElement("a");
    link.href = `#stream=${encodeURIComponent(stream.name)}`;
    link.className = "stream-link";
    if (stream.name === currentName) link.setAttribute("aria-current", "page");
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
}

/** The pick's effective rank (exp of the entropy of its covariance's eigenvalues) and the share
 * of that covariance's variance in its top H directions, as shown; "–" before data or from a
 * server that does not say. */
function spectrumStats(selection) {
  const pick = selection?.models?.find((m) => m.latent_dim === selection.best_latent_dim);
  const rank = selection?.effective_rank;
  const share = pick?.variance_share;
  return [
    ["effective rank", typeof rank === "number" ? rank.toFixed(1) : "–"],
    ["variance in top H", typeof share === "number" ? `${(100 * share).toFixed(1)}%` : "–"],
  ];
}

/** The stream's figures; the first one (id best-h) is the selected H, marked provisional while
 * the server says its models have not converged. */
export function renderStats(list, stream, provisional = false, selection = null) {
  const best = stream.best_latent_dim ?? "–";
  const stats = [
    ["selected H", provisional && stream.best_latent_dim !== null ? `${best} (provisional)` : best],
    ...spectrumStats(selection),
    ["step", stream.step.toLocaleString("en-US")],
    ["rows seen", stream.rows_seen.toLocaleString("en-US")],
    ["data dim D", stream.dim ?? "–"],
    ["candidates H", stream.latent_dims.join(", ")],
    ["optimizer", stream.optimizer === "subspace" || stream.optimizer === "natural" ? stream.optimizer : `${stream.optimizer} ${stream.learning_rate}`],
    ["estimator", stream.estimator],
    ["BIC N", stream.bic_n],
    ["device", stream.device],
  ];
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

/** Colour per candidate H and the line styles of the BIC chart. */
export function renderLegend(legend, latentDims, showBatch) {
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
  if (showBatch) add("", "stroke faint", "batch BIC");
  add("", "stroke change", "selection change");
}

/** The latest changes of the selected H, newest first. */
export function renderChanges(list, changes) {
  list.replaceChildren();
  for (const change of changes.slice(-8).reverse()) {
    const item = document.createElement("li");
    item.textContent = `step ${change.step.toLocaleString("en-US")}: H ${change.previous} → ${change.best_latent_dim}`;
    list.append(item);
  }
}
