// The pick panel: is the selected H final or provisional, by how much it leads, where training
// stands, and which H the BIC would pick for every N (the selection's `path`, docs/math.md
// section 12) on a log axis with the stream's own N marked. textContent only.

const N_MAX = 1e6; // the strip ends here; the last piece runs on to infinity

function logPosition(n) {
  return (100 * Math.log(n / 3)) / Math.log(N_MAX / 3);
}

function formatN(n) {
  if (n === null || n >= N_MAX) return "∞";
  return n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US");
}

/** The status line: provisional or converged, the margin and the training state. */
function statusText(selection) {
  if (!selection || selection.best_latent_dim === null) return "no data yet";
  const parts = [selection.converged ? "converged" : "provisional: the models are still converging"];
  if (selection.margin !== null && selection.margin !== undefined) {
    parts.push(`leads the runner-up by ${selection.margin.toFixed(1)} BIC units`);
  }
  const training = selection.training;
  if (training) {
    const state = training.alarmed ? "change detected" : "quiet";
    parts.push(`training ${state}, step size ${training.step_size.toPrecision(2)}, ${training.restarts} restarts`);
  }
  return parts.join(" · ");
}

/** Draw the panel into container (#pick) from a selection object and the stream's bic_n. */
export function renderPick(container, selection, bicN) {
  const status = container.querySelector("#pick-status");
  const strip = container.querySelector("#pick-path");
  const marker = container.querySelector("#pick-marker");
  status.textContent = statusText(selection);
  status.classList.toggle("provisional", Boolean(selection && selection.best_latent_dim !== null && !selection.converged));
  strip.replaceChildren();
  const path = selection?.path ?? [];
  for (const piece of path) {
    const from = Math.min(piece.n_from, N_MAX);
    const to = piece.n_to === null ? N_MAX : Math.min(piece.n_to, N_MAX);
    if (to <= from) continue;
    const segment = document.createElement("div");
    segment.className = "pick-piece";
    if (piece.latent_dim === selection.best_latent_dim) segment.classList.add("current");
    segment.style.width = `${logPosition(to) - logPosition(from)}%`;
    segment.textContent = `H=${piece.latent_dim}`;
    segment.title = `N from ${formatN(piece.n_from)} to ${formatN(piece.n_to)}: H = ${piece.latent_dim}`;
    strip.append(segment);
  }
  marker.hidden = path.length === 0 || !(bicN >= 3);
  marker.style.left = `${Math.min(100, logPosition(Math.max(3, bicN)))}%`;
  marker.textContent = `N = ${bicN}`;
}
