// SVG drawing primitives for the dashboard: scales, ticks, axes, paths. No library; every chart
// is redrawn from plain arrays, so a chart is a pure function of its data and its size.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes and append it to parent (when given). */
export function svgEl(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

/** Add a text node to parent; text is set with textContent (never parsed as markup). */
export function svgText(parent, x, y, text, attrs = {}) {
  const node = svgEl("text", { x, y, ...attrs }, parent);
  node.textContent = text;
  return node;
}

/** Linear map from the domain [d0, d1] to the range [r0, r1]. */
export function linearScale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const mid = (r0 + r1) / 2;
  return (v) => (k === 0 ? mid : r0 + (v - d0) * k);
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times 10^k). */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i += 1) {
    ticks.push(Number((i * step).toPrecision(12)));
  }
  return ticks;
}

/**
 * Integer ticks for an x axis `pixels` wide: one per ~80 px, and at least two whenever the
 * domain holds two integers (a narrow axis with one label cannot be read).
 */
export function axisTicks(lo, hi, pixels) {
  const want = Math.max(2, Math.floor(pixels / 80));
  let ticks = [];
  for (let count = want; count <= want + 8 && ticks.length < 2; count += 1) {
    ticks = niceTicks(lo, hi, count).filter(Number.isInteger);
  }
  return ticks;
}

/** Short label for an axis tick or a statistic: 12.5k, 1.2M, 0.0035, -3.21. */
export function formatNumber(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (Number.isInteger(v)) return String(v);
  if (abs >= 100) return v.toFixed(0);
  return String(Number(v.toPrecision(3)));
}

/** Bounds that contain every finite value, padded by `pad` of the span on both sides. */
export function paddedExtent(values, pad = 0.05) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo === Infinity) return [0, 1];
  const span = hi - lo || Math.abs(hi) || 1;
  return [lo - span * pad, hi + span * pad];
}

/** The q-quantile (0..1) of the finite values (nearest rank), or NaN when there are none. */
export function quantile(values, q) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

/**
 * Reduce [x, y] pairs (sorted by x) to at most 2 * buckets pairs, keeping each bucket's lowest
 * and highest y in x order, so that a noisy curve keeps its envelope at any zoom.
 */
export function decimate(pairs, buckets) {
  if (pairs.length <= 2 * buckets) return pairs;
  const out = [];
  const size = pairs.length / buckets;
  for (let b = 0; b < buckets; b += 1) {
    const slice = pairs.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    if (slice.length === 0) continue;
    let low = slice[0];
    let high = slice[0];
    for (const p of slice) {
      if (p[1] < low[1]) low = p;
      if (p[1] > high[1]) high = p;
    }
    if (low === high) out.push(low);
    else out.push(...(low[0] <= high[0] ? [low, high] : [high, low]));
  }
  return out;
}

/** SVG path data through the pairs, skipping non-finite values (which break the line). */
export function linePath(pairs, x, y) {
  let d = "";
  let pen = "M";
  for (const [px, py] of pairs) {
    if (!Number.isFinite(py)) {
      pen = "M";
      continue;
    }
    d += `${pen}${x(px).toFixed(1)},${y(py).toFixed(1)}`;
    pen = "L";
  }
  return d;
}

/**
 * Draw the frame of an x/y chart into svg (emptied first): grid, axes, tick labels and axis
 * titles. Returns the scales and a clipped group to draw the data into.
 * opts: {width, height, margin: {top, right, bottom, left}, xDomain, yDomain, xLabel, yLabel,
 *        yTicks (optional explicit ticks), yTickLabel (optional formatter), xTicks (false: none),
 *        clipId}
 */
export function drawFrame(svg, opts) {
  const { width, height, margin } = opts;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const left = margin.left;
  const right = width - margin.right;
  const top = margin.top;
  const bottom = height - margin.bottom;
  const x = linearScale(opts.xDomain[0], opts.xDomain[1], left, right);
  const y = linearScale(opts.yDomain[0], opts.yDomain[1], bottom, top);

  const grid = svgEl("g", { class: "grid" }, svg);
  const axes = svgEl("g", { class: "axis" }, svg);
  const yTicks = opts.yTicks ?? niceTicks(opts.yDomain[0], opts.yDomain[1], 6);
  const yTickLabel = opts.yTickLabel ?? formatNumber;
  for (const t of yTicks) {
    svgEl("line", { x1: left, x2: right, y1: y(t), y2: y(t) }, grid);
    svgText(axes, left - 6, y(t), yTickLabel(t), { "text-anchor": "end", dy: "0.32em" });
  }
  const xTicks = opts.xTicks === false ? [] : axisTicks(opts.xDomain[0], opts.xDomain[1], right - left);
  for (const t of xTicks) {
    svgEl("line", { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4 }, axes);
    svgText(axes, x(t), bottom + 16, formatNumber(t), { "text-anchor": "middle" });
  }
  svgEl("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "baseline" }, axes);
  svgEl("line", { x1: left, x2: left, y1: top, y2: bottom, class: "baseline" }, axes);
  svgText(axes, (left + right) / 2, height - 4, opts.xLabel, { class: "axis-title", "text-anchor": "middle" });
  svgText(axes, 0, 0, opts.yLabel, {
    class: "axis-title",
    "text-anchor": "middle",
    transform: `translate(12 ${(top + bottom) / 2}) rotate(-90)`,
  });

  const clip = svgEl("clipPath", { id: opts.clipId }, svgEl("defs", {}, svg));
  svgEl("rect", { x: left, y: top - 2, width: right - left, height: bottom - top + 4 }, clip);
  const plot = svgEl("g", { "clip-path": `url(#${opts.clipId})` }, svg);
  return { x, y, plot, left, right, top, bottom };
}
