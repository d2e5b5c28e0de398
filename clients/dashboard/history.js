// One stream's score history in the page: the points of GET /history, extended by the events.
// A point: {step, best_latent_dim, models: {H: {bic, batch_bic}}}; points stay in step order.

function toPoint(raw) {
  const models = {};
  for (const m of raw.models) models[m.latent_dim] = { bic: m.bic, batch_bic: m.batch_bic ?? null };
  return { step: raw.step, best_latent_dim: raw.best_latent_dim, models };
}

export class History {
  /** maxPoints: beyond it, every second point of the older half is dropped (span kept). */
  constructor(maxPoints) {
    this.maxPoints = maxPoints;
    this.points = [];
    this.steps = new Set();
  }

  get lastStep() {
    return this.points.length ? this.points[this.points.length - 1].step : null;
  }

  /** Merge history points or selections (once per step; those without a selection skipped). */
  add(raws) {
    let unordered = false;
    for (const raw of raws) {
      if (this.steps.has(raw.step) || raw.best_latent_dim === null) continue;
      if (this.lastStep !== null && raw.step < this.lastStep) unordered = true;
      this.points.push(toPoint(raw));
      this.steps.add(raw.step);
    }
    if (unordered) this.points.sort((a, b) => a.step - b.step);
    if (this.points.length > this.maxPoints) {
      const half = Math.floor(this.points.length / 2);
      const older = this.points.slice(0, half).filter((_, i) => i % 2 === 0);
      this.points = older.concat(this.points.slice(half));
      this.steps = new Set(this.points.map((p) => p.step));
    }
  }

  /** The points of the last `steps` steps (all of them for Infinity). */
  window(steps) {
    const last = this.lastStep ?? 0;
    return this.points.filter((p) => p.step > last - steps);
  }

  /** [{step, previous, best_latent_dim}] wherever the selected H differs from the point before. */
  changes() {
    const changes = [];
    for (let i = 1; i < this.points.length; i += 1) {
      const previous = this.points[i - 1].best_latent_dim;
      const current = this.points[i].best_latent_dim;
      if (current !== previous) changes.push({ step: this.points[i].step, previous, best_latent_dim: current });
    }
    return changes;
  }
}
