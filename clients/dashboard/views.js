// The dashboard's three charts, drawn from the state that app.js keeps:
//   points  [{step, best_latent_dim, models: {H: {bic, batch_bic}}}], oldest first
//   changes [{step, previous, best_latent_dim}] where the selected H changed
// Colours come from CSS classes c0..c7 (one per candidate H, in the stream's order).

import { decimate, drawFrame, formatNumber, linePath, paddedExtent, quantile, svgEl, svgText } from "./charts.js";

export const PRIOR_ENTROPY = 0.5 * Math.log(2 * Math.PI * Math.E); // 1/2 log(2 pi e), docs/math.md

const MARGIN = { top: 14, right: 18, bottom: 38, left: 66 };
const NARROW = 520; // px: below this, charts use small margins and short labels

function margin(width, extra = {}) {
  return width < NARROW ? { ...MARGIN, left: 50, right: 10, ...extra } : { ...MARGIN, ...extra };
}

export function seriesClass(latentDims, h) {
  return `c${latentDims.indexOf(h) % 8}`;
}

function drawEmpty(svg, width, height, message) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svgText(svg, width / 2, height / 2, message, { class: "empty", "text-anchor": "middle" });
}

function stepDomain(points) {
  const first = points[0].step;
  const last = points[points.length - 1].step;
  return first === last ? [first - 1, last] : [first, last];
}

function drawChangeLines(plot, frame, changes) {
  for (const change of changes) {
    const cx = frame.x(change.step);
    svgEl("line", { x1: cx, x2: cx, y1: frame.top, y2: frame.bottom, class: "change-line" }, plot);
  }
}

/** Entropy BIC (solid) and batch BIC (faint) of every candidate over the steps; lower is better. */
export function drawBicChart(svg, { points, latentDims, changes, showBatch, width }) {
  const height = 300;
  if (points.length === 0) return drawEmpty(svg, width, height, "Waiting for the first batch…");
  const entropy = points.flatMap((p) => latentDims.map((h) => p.models[h]?.bic));
  const yValues = [...entropy];
  if (showBatch) {
    const batch = points.flatMap((p) => latentDims.map((h) => p.models[h]?.batch_bic ?? NaN));
    // The batch BIC is an order of magnitude noisier: frame its central 96%, clip the rest.
    yValues.push(quantile(batch, 0.02), quantile(batch, 0.98));
  }
  const frame = drawFrame(svg, {
    width,
    height,
    margin: margin(width),
    xDomain: stepDomain(points),
    yDomain: paddedExtent(yValues),
    xLabel: "step (one optimizer step per batch)",
    yLabel: "BIC (lower is better)",
    clipId: "clip-bic",
  });
  drawChangeLines(frame.plot, frame, changes);
  const buckets = Math.max(50, Math.floor(frame.right - frame.left));
  const layers = showBatch ? ["batch_bic", "bic"] : ["bic"];
  for (const key of layers) {
    for (const h of latentDims) {
      const pairs = points.map((p) => [p.step, p.models[h]?.[key] ?? NaN]);
      svgEl(
        "path",
        {
          d: linePath(decimate(pairs, buckets), frame.x, frame.y),
          class: `${key === "bic" ? "entropy-bic" : "batch-bic"} ${seriesClass(latentDims, h)}`,
          "data-h": h,
          "data-points": pairs.length,
        },
        frame.plot,
      );
    }
  }
  const last = points[points.length - 1];
  for (const h of latentDims) {
    const value = last.models[h]?.bic;
    if (!Number.isFinite(value)) continue;
    const dot = svgEl("circle", { cx: frame.x(last.step), cy: frame.y(value), r: 3.5, class: `last-point ${seriesClass(latentDims, h)}` }, svg);
    svgEl("title", {}, dot).textContent = `H=${h}: entropy BIC ${formatNumber(value)} at step ${last.step}`;
  }
}

/** The selected H (lowest entropy BIC) over the steps, with every change marked. */
export function drawSelectionChart(svg, { points, latentDims, changes, width }) {
  const height = 150;
  if (points.length === 0) return drawEmpty(svg, width, height, "No selection yet");
  const dims = [...latentDims].sort((a, b) => a - b);
  const level = (h) => dims.indexOf(h);
  const frame = drawFrame(svg, {
    width,
    height,
    margin: margin(width, { top: 10 }),
    xDomain: stepDomain(points),
    yDomain: [-0.5, dims.length - 0.5],
    yTicks: dims.map((_, i) => i),
    yTickLabel: (i) => `H=${dims[i]}`,
    xLabel: "step",
    yLabel: "selected H",
    clipId: "clip-selection",
  });
  drawChangeLines(frame.plot, frame, changes);
  // Only the changes shape a step curve: start, every change, then the latest step.
  const first = points[0];
  const last = points[points.length - 1];
  let d = `M${frame.x(first.step).toFixed(1)},${frame.y(level(first.best_latent_dim)).toFixed(1)}`;
  for (const change of changes) {
    d += `H${frame.x(change.step).toFixed(1)}V${frame.y(level(change.best_latent_dim)).toFixed(1)}`;
  }
  d += `H${frame.x(last.step).toFixed(1)}`;
  svgEl("path", { d, class: "selection-line", "data-points": points.length }, frame.plot);
  for (const change of changes) {
    const mark = svgEl(
      "circle",
      { cx: frame.x(change.step), cy: frame.y(level(change.best_latent_dim)), r: 4.5, class: `change-mark ${seriesClass(latentDims, change.best_latent_dim)}` },
      svg,
    );
    svgEl("title", {}, mark).textContent = `step ${change.step}: H ${change.previous} → ${change.best_latent_dim}`;
  }
}

/** Encoder entropy of every latent of every candidate, against the collapse threshold. */
export function drawCollapseChart(svg, { collapse, latentDims, bestLatentDim, scores = [], width }) {
  const height = 270;
  if (!collapse || collapse.models.length === 0) return drawEmpty(svg, width, height, "No models trained yet");
  const models = [...collapse.models].sort((a, b) => a.latent_dim - b.latent_dim);
  const values = models.flatMap((m) => m.encoder_entropies);
  const slots = models.reduce((n, m) => n + m.encoder_entropies.length, 0) + models.length - 1;
  const yDomain = paddedExtent([...values, collapse.threshold, PRIOR_ENTROPY], 0.08);
  const frame = drawFrame(svg, {
    width,
    height,
    margin: width < NARROW ? margin(width, { bottom: 58 }) : { ...MARGIN, bottom: 58, right: 150 },
    xDomain: [0, slots],
    xTicks: false,
    yDomain,
    xLabel: "latents of each candidate H",
    yLabel: "encoder entropy (nats)",
    clipId: "clip-collapse",
  });
  const slot = (frame.right - frame.left) / slots;
  let index = 0;
  for (const model of models) {
    const start = index;
    model.encoder_entropies.forEach((value, h) => {
      const top = frame.y(Math.max(value, yDomain[0]));
      const bar = svgEl(
        "rect",
        {
          x: frame.left + (index + 0.15) * slot,
          y: top,
          width: slot * 0.7,
          height: Math.max(0, frame.bottom - top),
          class: `bar ${seriesClass(latentDims, model.latent_dim)}${model.collapsed[h] ? " collapsed" : ""}`,
        },
        frame.plot,
      );
      const state = model.collapsed[h] ? "collapsed" : "active";
      svgEl("title", {}, bar).textContent = `H=${model.latent_dim}, latent ${h + 1}: entropy ${formatNumber(value)} (${state})`;
      index += 1;
    });
    const centre = frame.left + ((start + index) / 2) * slot;
    const selected = model.latent_dim === bestLatentDim;
    // A group narrower than its long labels (a phone) gets the short ones: "H=4", "2/4 active".
    const roomy = (index - start) * slot >= 110;
    const label = `H=${model.latent_dim}${selected && roomy ? " (selected)" : ""}`;
    const note = roomy ? `${model.active_latents} of ${model.latent_dim} active` : `${model.active_latents}/${model.latent_dim} active`;
    svgText(svg, centre, frame.bottom + 15, label, {
      class: `group-label${selected ? " selected" : ""}`,
      "text-anchor": "middle",
    });
    svgText(svg, centre, frame.bottom + 28, note, { class: "group-note", "text-anchor": "middle" });
    // The share of the candidate's fitted variance in its top H (and its effective rank).
    const score = scores.find((m) => m.latent_dim === model.latent_dim);
    if (typeof score?.variance_share === "number") {
      const share = `${(100 * score.variance_share).toFixed(0)}%`;
      const spread = roomy ? `${share} of variance, rank ${score.effective_rank.toFixed(1)}` : share;
      svgText(svg, centre, frame.bottom + 41, spread, { class: "group-note spectrum", "text-anchor": "middle" });
    }
    index += 1;
  }
  // Labels to the right of the plot; the lower line's label sits below it so the two never overlap.
  const low = Math.min(collapse.threshold, PRIOR_ENTROPY);
  const refs = [
    [collapse.threshold, "threshold", `collapse threshold ${formatNumber(collapse.threshold)}`],
    [PRIOR_ENTROPY, "prior", `prior entropy ${PRIOR_ENTROPY.toFixed(3)}`],
  ];
  const narrow = width < NARROW; // no room beside the plot: labels inside it, right-aligned
  for (const [value, cls, label] of refs) {
    svgEl("line", { x1: frame.left, x2: frame.right, y1: frame.y(value), y2: frame.y(value), class: `ref-line ${cls}` }, svg);
    const dy = value === low ? "1em" : "-0.35em";
    const at = narrow ? { x: frame.right - 2, anchor: "end" } : { x: frame.right + 6, anchor: "start" };
    svgText(svg, at.x, frame.y(value), label, { class: `ref-label ${cls}`, dy, "text-anchor": at.anchor });
  }
}
