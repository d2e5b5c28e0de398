"""The subspace update (the default rule): every candidate's exact p-PCA fit from one tracked
principal subspace of the running covariance (docs/math.md, "The subspace update").

At a stationary point the linear VAE of H latents is probabilistic PCA (Tipping & Bishop 1999):
W's columns span the top-H eigenvectors of the data covariance C, sigma^2 is the mean of the
other D - H eigenvalues, and the exact posterior has tau_h^2 = sigma^2 / l_h. Every candidate
H <= Hmax is therefore a function of C's top Hmax eigenpairs and its trace. This module keeps
them for the rows seen so far in O(D K) numbers, K = Hmax + OVERSAMPLE:

    U (D, K)   an orthonormal basis                    c (D,)  the running mean
    M (K, K)   U^T C U  (C around c, weights 1/n)      T       tr C (exact)
    G (D, K)   C U, to widen the basis (float32)      n       rows since the (re)start
    d (D,)     C's diagonal (a standardized stream's change of scaler needs it)

A batch folds in exactly as the running covariance would (Chan et al.'s merge: the batch's
centred rows plus one row for the shift of the mean), costing two (B, D) x (D, K) products.
While U is fixed, M and G are exact. U moves at rebases, spaced geometrically in rows (when the
rows since the last one reach n / REBASE_EVERY): Rayleigh-Ritz on span(U, (I - U U^T) C U), one
block-Krylov step, with the unknown variance of the new directions set to the tail's mean
rho = (T - tr M) / (D - K); after it U is M's eigenbasis. Between rebases the latents keep their
directions, U's columns (kept sorted by variance), and the candidates' variances are their
Rayleigh quotients, M's diagonal: no K x K eigen-decomposition per batch (an exact p-PCA fit
within those directions: a stationary point of every variance parameter, Corollary 1's
condition). Until n reaches
WARM_ROWS_PER_DIRECTION K rows, each batch's own directions widen the basis instead
(incremental SVD, Ross et al. 2008), so the first rows define the subspace. With D <= K +
FULL_MARGIN the whole covariance is kept (U = I) and eigen-decomposed after every batch: the fit
is then exact for the rows seen.

Everything is float64: real data in raw units span 12 orders of magnitude of variance
(bench/RESULTS.md, raw breast cancer), beyond float32's precision. Arrays are numpy's on the
CPU and torch's on an accelerator (streaming/arrays.py). Every array carries a leading axis S of
streams: one learner is S = 1, and `learn_together` steps S streams of the same shape in one
computation with the very same operations (so their results are the same to the bit). Row
counts n are host numbers (S,). A tracked subspace (K < D) and torch arrays step one stream.
"""

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from streaming.arrays import Array, Arrays

OVERSAMPLE = 8  # directions tracked beyond the largest candidate
FULL_MARGIN = 8  # D <= K + FULL_MARGIN: keep the whole covariance
REBASE_EVERY = 4.0  # rebase when rows since the last rebase reach n / REBASE_EVERY
WARM_ROWS_PER_DIRECTION = 4  # batches widen the basis with their own directions until n >= 4 K
RANK_TOL = 1e-24  # a widening direction needs a squared norm above this share of the total
SINGLE_TOL = 1e-12  # ... and, from G (float32), above this share of |G|^2
MIN_VARIANCE = 1e-12  # sigma^2 >= MIN_VARIANCE tr(C) / D: data in an exact subspace
LOG_2PI = math.log(2 * math.pi)


def directions(dim: int, latent_dims: tuple[int, ...]) -> int:
    """K: the directions tracked for these candidates on data of dimension `dim` (D when the
    whole covariance is kept)."""
    k = max(latent_dims) + OVERSAMPLE
    return dim if dim <= k + FULL_MARGIN else k


@dataclass(slots=True)
class Subspace:
    """The tracked state of S streams (float64 arrays of one device, leading axis S). Never
    modified (by convention: a frozen dataclass's __init__ costs microseconds a step): `updated`
    returns a new one, so a step whose result is not finite leaves the old one untouched."""

    U: Array  # (S, D, K) orthonormal; the identity when the whole covariance is kept
    M: Array  # (S, K, K) U^T C U
    G: Array | None  # (S, D, K) C U in float32 (it only finds directions); None: whole covariance
    c: Array  # (S, D) running mean
    T: Array  # (S,) trace of C
    n: np.ndarray  # (S,) rows since the (re)start (host numbers)
    since: np.ndarray  # (S,) rows since the last rebase
    evals: Array  # (S, K) the latents' variances, descending
    R: Array | None  # (S, K, K) the whole covariance's eigenvectors (columns); None when a
    # subspace is tracked: its latents are U's columns, sorted by variance (M's diagonal)
    d: Array | None  # (S, D) C's diagonal (T its sum) when a subspace is tracked; else None

    @property
    def full(self) -> bool:
        return self.G is None

    @property
    def warm(self) -> bool:
        """Still in the first rows, where batches widen the basis themselves (one stream)."""
        return not self.full and self.n[0] < WARM_ROWS_PER_DIRECTION * self.U.shape[2]


def new(ar: Arrays, dim: int, k: int, seed: int) -> Subspace:
    """One stream, nothing seen yet: a seeded random orthonormal basis (drawn on the host, so
    that every device starts from the same numbers), or the identity when k == dim."""
    if k == dim:
        U = ar.eye(dim)
    else:
        draw = np.random.default_rng(seed).standard_normal((dim, k))
        U = ar.asarray(np.linalg.qr(draw)[0])
    G = None if k == dim else ar.single(ar.zeros(1, dim, k))
    R = ar.eye(k)[None] if k == dim else None
    zero = np.zeros(1)
    d = None if k == dim else ar.zeros(1, dim)
    return Subspace(U[None], ar.zeros(1, k, k), G, ar.zeros(1, dim), ar.zeros(1), zero, zero,
                    ar.zeros(1, k), R, d)  # fmt: skip


def stacked(ar: Arrays, states: list[Subspace]) -> Subspace:
    """S one-stream states of the same shape (whole covariance, numpy) as one of S streams."""

    def cat(name: str) -> Array:
        return ar.cat([getattr(s, name) for s in states])

    return Subspace(cat("U"), cat("M"), None, cat("c"), cat("T"), cat("n"), cat("since"),
                    cat("evals"), cat("R"), None)  # fmt: skip


def split(s: Subspace) -> list[Subspace]:
    """The S one-stream states of a stacked one (views)."""
    assert s.R is not None
    return [
        Subspace(s.U[i : i + 1], s.M[i : i + 1], None, s.c[i : i + 1], s.T[i : i + 1],
                 s.n[i : i + 1], s.since[i : i + 1], s.evals[i : i + 1], s.R[i : i + 1], None)
        for i in range(s.U.shape[0])
    ]  # fmt: skip


def project(s: Subspace, x: Array) -> Array:
    """x U (S, B, K): the rows in the basis (x itself when the whole covariance is kept)."""
    return x if s.full else x @ s.U


def updated(ar: Arrays, s: Subspace, x: Array, xu: Array) -> Subspace:
    """The state after the rows x (S, B, D) float64, xu = project(s, x); s is unchanged."""
    rows = x.shape[1]
    n1 = s.n + float(rows)
    a, b, shift, step = _merge_weights(ar, s.n, rows)
    xbar = ar.mean_rows(x)  # (S, 1, D)
    move = xbar - s.c[:, None]
    zc = ar.cat([x - xbar, move * shift], 1)  # (S, B + 1, D) centred rows
    c = s.c + (move * step)[:, 0]
    if s.full:  # the covariance itself; its trace: the sum of its eigenvalues
        M = s.M * a + (zc.mT @ zc) * b
        w, v = ar.eigh(M)  # ascending, per stream; NaN where it fails (the step is refused)
        return Subspace(s.U, M, None, c, ar.sum_last(w), n1, s.since, ar.flip(w), ar.flip(v), None)
    assert s.d is not None  # one stream: a, b are Python numbers
    d = s.d * a + ar.sum_rows(zc * zc) * b
    T = ar.sum_last(d)
    if s.warm:
        return _widened(ar, s, zc[0], a, b, c, T, d, n1)
    assert s.G is not None
    zcu = ar.cat([xu - ar.mean_rows(xu), zc[:, -1:] @ s.U], 1)  # (1, B + 1, K) in the basis
    M = s.M * a + (zcu.mT @ zcu) * b  # (1, K, K)
    G = ar.single(s.G * a + (zc.mT @ zcu) * b)  # (1, D, K)
    out = Subspace(s.U, M, G, c, T, n1, s.since + rows, s.evals, None, d)
    if out.since[0] >= out.n[0] / REBASE_EVERY:
        return _rebased(ar, out)
    # between rebases the latents keep their directions (U's columns) and refit their
    # variances: the Rayleigh quotients, M's diagonal (no O(K^3) eigh)
    return _sorted(ar, out)


def _merge_weights(ar: Arrays, n: np.ndarray, rows: int) -> tuple[Any, Any, Any, Any]:
    """Chan et al.'s merge of `rows` rows into n (S,) per stream, as per_stream factors: the
    old covariance's weight n / n1, a centred row's 1 / n1, the scale sqrt(n rows / n1) of the
    row that moves the old mean and the mean's step rows / n1 (n1 = n + rows). One stream's in
    Python floats: the same float64 arithmetic (sqrt correctly rounded) without numpy's
    dispatch."""
    if n.shape[0] == 1:
        m = float(n[0])
        m1 = m + rows
        return m / m1, 1.0 / m1, math.sqrt(m * rows / m1), rows / m1
    n1 = n + rows
    parts = (n / n1, 1.0 / n1, np.sqrt(n * rows / n1), rows / n1)
    return tuple(ar.per_stream(v) for v in parts)


def reexpressed(ar: Arrays, s: Subspace, g: Array, h: Array) -> Subspace:
    """The state of the same rows in the coordinates z' = z g + h (g, h (S, D): a change of a
    standardized stream's scaler). The whole covariance maps exactly (M' = diag(g) M diag(g));
    a tracked subspace maps its span: g U = Q Rq (QR), U' = Q, M' = Rq M Rq^T, G' = g G Rq^-1
    (G only finds directions: the g^2 inside C' U' is left out) and C's diagonal d' = d g^2."""
    c = s.c * g + h
    if s.full:
        M = s.M * g[:, :, None] * g[:, None, :]
        T = ar.sum_last(ar.xp.diagonal(M, 0, 1, 2))
        return Subspace(s.U, M, None, c, T, s.n, s.since, s.evals, s.R, None)
    assert s.G is not None and s.d is not None
    xp, U, gd = ar.xp, s.U[0], g[0][:, None]
    q, r = xp.linalg.qr(U * gd)
    sign = xp.where(xp.diagonal(r) < 0, -1.0, 1.0)  # U's columns keep their directions
    q, r = q * sign, r * sign[:, None]
    M = r @ s.M[0] @ r.T
    G = ar.single(xp.linalg.solve(r.T, ((s.G[0] + U * 0.0) * gd).T).T)
    d = s.d * g * g
    return Subspace(q[None], M[None], G[None], c, ar.sum_last(d), s.n, s.since, s.evals, None, d)


def restarted(s: Subspace) -> Subspace:
    """Forget every row: the next batch starts the estimate anew (a detected change)."""
    return replace(s, n=s.n * 0.0, since=s.since * 0.0)


def _tail(ar: Arrays, s: Subspace) -> Array:
    """rho: the mean variance of the D - K directions outside the basis (one stream)."""
    _, d, k = s.U.shape
    return ar.clip0(s.T[0] - ar.xp.diagonal(s.M[0]).sum()) / (d - k)


def diagonal_of(ar: Arrays, s: Subspace) -> Array:
    """(1, D) C's diagonal as a tracked state without one implies it: diag(U M U^T) plus the
    tail's mean variance rho on each coordinate's share outside span U (its sum: T)."""
    U = s.U[0]
    inside = ar.sum_last((U @ s.M[0]) * U)
    return (inside + _tail(ar, s) * (1.0 - ar.sum_last(U * U)))[None]


def _widened(
    ar: Arrays,
    s: Subspace,
    zm: Array,
    a: float,
    b: float,
    c: Array,
    T: Array,
    diag: Array,
    n1: np.ndarray,
) -> Subspace:
    """Rayleigh-Ritz on span(U, the rows' directions outside U) of a M~ + b zm^T zm (zm (m, D):
    the centred rows and the mean-shift row of one stream); the top K directions are kept."""
    U = s.U[0]
    d, k = U.shape
    pm = zm @ U  # (m, K)
    q, rq = _orth_rows(ar, zm - pm @ U.T, k, d - k)  # (D, q), (q, m): the rows outside span U
    nq = q.shape[1]
    top = ar.cat([s.M[0] * a + (pm.T @ pm) * b, (pm.T @ rq.T) * b], 1)
    bottom = ar.cat([(rq @ pm) * b, (rq @ rq.T) * b + ar.eye(nq) * (_tail(ar, s) * a)], 1)
    big = ar.cat([top, bottom])  # (K + q, K + q)
    moved = replace(s, c=c, T=T, d=diag, n=n1, since=n1 * 0.0)
    return _rotated(ar, moved, ar.cat([U, q], 1), big)


def _rebased(ar: Arrays, s: Subspace) -> Subspace:
    """Rayleigh-Ritz on span(U, (I - U U^T) C U) with the new directions' variance rho."""
    assert s.G is not None
    U, M = s.U[0], s.M[0]
    d, k = U.shape
    G = s.G[0] + U * 0.0  # in float64
    gp = G - U @ (U.T @ G)  # (D, K): C U outside span U, projected out twice (to rounding)
    gp = gp - U @ (U.T @ gp)
    # G is kept in float32: a direction whose norm is within its rounding is not one
    floor = SINGLE_TOL * float(ar.sum_last(ar.sum_last(G * G)))
    q, cross = _orth_rows(ar, gp.T, k, d - k, floor)  # cross = Q^T C U (q, K)
    nq = q.shape[1]
    big = ar.cat([ar.cat([M, cross.T], 1), ar.cat([cross, ar.eye(nq) * _tail(ar, s)], 1)])
    return _rotated(ar, replace(s, since=s.since * 0.0), ar.cat([U, q], 1), big)


def _orth_rows(
    ar: Arrays, rows: Array, k: int, room: int, floor: float = 0.0
) -> tuple[Array, Array]:
    """An orthonormal basis Q (D, q) of the span of `rows` (m, D), at most min(k, room) of its
    strongest directions, and Q^T rows^T (q, m). Through the Gram matrix (m, m): directions of
    negligible squared norm (below RANK_TOL of the rows' own, or `floor`: rank deficiency,
    rounding) are dropped."""
    xp = ar.xp
    w, v = xp.linalg.eigh(rows @ rows.T)  # ascending
    w, v = ar.flip(w), ar.flip(v)
    tol = max(RANK_TOL * float(w.sum()), floor, 1e-300)
    keep = min(int((w > tol).sum()), k, room)
    w, v = w[:keep], v[:, :keep]
    root = xp.sqrt(w)
    return rows.T @ (v / root), root[:, None] * v.T  # Q^T rows^T = W^{1/2} V^T


def _rotated(ar: Arrays, s: Subspace, basis: Array, big: Array) -> Subspace:
    """Keep the top K eigenvectors of `big` (the covariance in `basis`, (D, K + q)): the new
    basis is the eigenbasis (M diagonal), largest first."""
    k = s.U.shape[2]
    w, v = ar.xp.linalg.eigh((big + big.T) * 0.5)
    w, v = ar.flip(w)[:k], ar.flip(v)[:, :k]
    U = basis @ v  # (D, K)
    G = ar.single(U * w)[None]
    return replace(s, U=U[None], M=ar.xp.diag(w)[None], G=G, evals=w[None], R=None)


def _eig(ar: Arrays, s: Subspace) -> Subspace:
    """The latents of a state: with the whole covariance, the eigen-decomposition of M (and T,
    its trace); in a tracked subspace, U's columns sorted by their variances (M's diagonal)."""
    if not s.full:
        return _sorted(ar, s)
    w, v = ar.xp.linalg.eigh(s.M)  # ascending, per stream (LinAlgError: a corrupt state)
    return Subspace(s.U, s.M, s.G, s.c, ar.sum_last(w), s.n, s.since, ar.flip(w), ar.flip(v), None)


def _sorted(ar: Arrays, s: Subspace) -> Subspace:
    """A tracked subspace (one stream) whose columns are ordered by variance, largest first:
    U's, M's rows and columns and G's moved together when the order changes."""
    evals = ar.xp.diagonal(s.M, 0, 1, 2)  # (1, K)
    order = ar.xp.argsort(-evals[0])
    if bool((order[1:] < order[:-1]).any()):
        assert s.G is not None
        U, G, M = s.U[:, :, order], s.G[:, :, order], s.M[:, order][:, :, order]
        return Subspace(U, M, G, s.c, s.T, s.n, s.since, evals[:, order], None, s.d)
    return Subspace(s.U, s.M, s.G, s.c, s.T, s.n, s.since, evals, None, s.d)


@dataclass(slots=True)
class Fit:
    """Every candidate's p-PCA fit (S streams, M candidates padded to Hmax latents), and what
    the density of a row needs: log p(x) = -1/2 (const + sum_h y_h^2 coef_h + |x - c|^2 /
    sigma^2). A padded latent reads as one more direction of the noise (ell = sigma^2): tau^2 =
    1 there, coef = 0, and const's sum over Hmax latents counts it with the D - Hmax others."""

    ell: Array  # (S, M, Hmax) the model's variance along latent h: max(l_h, sigma^2)
    sigma2: Array  # (S, M)
    tau2: Array  # (S, M, Hmax) exact posterior variances sigma^2 / ell
    coef: Array  # (S, Hmax, M) 1 / ell - 1 / sigma^2
    const: Array  # (S, M) D log 2 pi + log det C


FIT_FIELDS = ("ell", "sigma2", "tau2", "coef", "const")


def fit(ar: Arrays, s: Subspace, top_of: Array, noise_dims: Array, mask: Array) -> Fit:
    """The maximum-likelihood p-PCA of each candidate H on the tracked covariance:
    sigma^2_H = (T - sum_{h<=H} l_h) / (D - H), the latents along the columns of U R (of U when
    a subspace is tracked). top_of (M,) int: the index
    H - 1 of each candidate's last latent; noise_dims (1, M) D - H; mask (M, Hmax) 1 on real
    latents."""
    xp = ar.xp
    d, hmax = s.U.shape[1], mask.shape[1]
    lam = s.evals[:, :hmax]  # (S, Hmax) descending
    top = ar.take(ar.cumsum(lam), top_of)  # (S, M) sum of the top H eigenvalues
    # (S, 1); one stream's (numpy) as a Python number: the same float64 arithmetic, and numpy
    # does not broadcast it
    T = ar.per_stream(s.T, 2) if ar.numpy else s.T[:, None]
    sigma2 = xp.maximum((T - top) / noise_dims, T * (MIN_VARIANCE / d) + 1e-300)  # (S, M)
    if not all(s.n.tolist()):  # nothing seen yet: unit variances
        sigma2 = xp.where(ar.asarray(s.n > 0, "bool")[:, None], sigma2, 1.0)
    noise = sigma2[:, :, None]
    ell = xp.maximum(lam[:, None, :] * mask, noise)  # (S, M, Hmax)
    inv = 1.0 / ell  # Python floats (not ints) as scalars: numpy converts them faster
    const = d * LOG_2PI + ar.sum_last(xp.log(ell)) + float(d - hmax) * xp.log(sigma2)
    return Fit(ell, sigma2, noise * inv, (inv - 1.0 / noise).mT, const)


def loglik(ar: Arrays, s: Subspace, f: Fit, x: Array, xu: Array) -> tuple[Array, Array]:
    """log p(x_r) per row under every candidate's fit (S, B, M): the p-PCA density
    N(c, U_H diag(ell) U_H^T + sigma^2 (I - U_H U_H^T)), xu = project(s, x); and the rows'
    squared coordinates along the latents (S, B, Hmax) (streaming/spread.py reads them)."""
    d = x - s.c[:, None]  # (S, B, D)
    hmax = f.coef.shape[1]  # coordinates along the latents (S, B, Hmax):
    latents = d @ s.R if s.R is not None else xu - s.c[:, None] @ s.U
    y2 = (latents * latents)[:, :, :hmax]  # squared whole (contiguous), then the latents'
    quad = y2 @ f.coef + ar.sum_last(d * d)[:, :, None] / f.sigma2[:, None]  # (S, B, M)
    return (f.const[:, None] + quad) * -0.5, y2


def decoder(ar: Arrays, s: Subspace, f: Fit, i: int, h: int) -> tuple[Array, ...]:
    """Candidate i's linear VAE (H = h latents) of a one-stream state: W (D, H) = U_H
    diag(ell - sigma^2)^(1/2) with orthogonal columns, mu = c, and the exact posterior's V
    (H, D), b (H,)."""
    basis = s.U[0, :, :h] if s.R is None else s.R[0, :, :h]  # (D, H)
    # an eigenvector's sign is arbitrary (and LAPACK builds differ): each column's largest entry
    # is made positive, so that the served model is the same on every device
    peak = ar.xp.argmax(abs(basis), 0)  # (H,)
    basis = basis * ar.xp.sign(basis[peak, ar.arange(h)])
    ell, sigma2 = f.ell[0, i, :h], f.sigma2[0, i]
    scale = ar.xp.sqrt(ar.clip0(ell - sigma2))  # |w_h|
    W = basis * scale
    V = (basis * (scale / ell)).T  # M^-1 W^T = diag(|w|/ell) basis^T
    return W, s.c[0], V, -(V @ s.c[0])


def resident_bytes(dim: int, k: int) -> int:
    """Bytes held: U (D K), M (K^2), R (K^2, only with the whole covariance), c, evals, T and
    (when a subspace is tracked) C's diagonal in float64, and G (D K, tracked) in float32."""
    tracked = k < dim
    return 8 * (dim * k + (1 if tracked else 2) * k * k + (1 + tracked) * dim + k + 1) + (
        4 * dim * k * tracked
    )
