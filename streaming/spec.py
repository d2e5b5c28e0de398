"""One stream's settings: the single source of their names, defaults, bounds and help texts.

The API's request schema (service/schemas.py), the CLI's flags (clients/_parser.py) and the
stored record (service/store.py) are all derived from `StreamSpec`, and tests check that they
agree. Stored records carry `spec_version`; `StreamSpec.from_record` migrates older ones.

Pure standard library: the client imports this module without the server's packages.
"""

import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from streaming.errors import InvalidConfigError

SPEC_VERSION = 2  # 2: optimizer "subspace" (was "natural"), switch_margin; 1: records before it
MAX_LEARNING_RATE = 1.0  # larger Adam/SGD steps overflow float32 within a few batches
MAX_SEED = 2**53 - 1  # exact in every JSON parser (JavaScript's numbers are doubles)
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]{1,3})?)$"

Optimizer = Literal["subspace", "adam", "sgd", "natural"]  # "natural": the old name of subspace
Estimator = Literal["analytic", "mc"]
RENAMED = {"natural": "subspace"}  # optimizer values of earlier releases, accepted and renamed


def setting(default: Any, doc: str, **bounds: float) -> Any:
    """A field of StreamSpec: its default, its help text and its numeric bounds (ge, gt, le)."""
    return field(default=default, metadata={"doc": doc, **bounds})


@dataclass(frozen=True)
class StreamSpec:
    """How one stream is learned and scored. Frozen; validated on construction."""

    latent_dims: tuple[int, ...] = setting(
        (2, 4, 6), "candidate latent sizes H, distinct, each below the data dimension D", ge=1
    )
    optimizer: Optimizer = setting(
        "subspace",
        "the online update: subspace (the exact p-PCA fit of every candidate from one tracked "
        "principal subspace; docs/math.md), or adam/sgd on the ELBO's gradient at "
        "learning_rate (the paper: adam, estimator mc); natural is the old name of subspace",
    )
    learning_rate: float = setting(
        0.002, "step size of optimizer adam/sgd (the paper's Adam: 0.002)", gt=0,
        le=MAX_LEARNING_RATE,
    )  # fmt: skip
    estimator: Estimator = setting(
        "analytic", "batch ELBO of adam/sgd: closed form (analytic) or Monte Carlo (mc)"
    )
    mc_samples: int = setting(100, "reparameterised samples per row for estimator mc", ge=1)
    bic_n: int = setting(10, "N in BIC = (H D + 1) log N - 2 N F_ent (docs/math.md)", ge=1)
    collapse_threshold: float = setting(
        1.0, "a latent is collapsed when its encoder entropy exceeds this"
    )
    seed: int = setting(0, "seeds the initialisation and Monte Carlo sampling", ge=0, le=MAX_SEED)
    device: str = setting("auto", "torch device: auto (cuda when there is one), cpu, cuda[:N]")
    standardize: bool = setting(
        False, "model the running z-scores of the columns (for columns in different units)"
    )
    adaptive: bool = setting(
        True, "detect changes of the stream and restart training when one is found"
    )
    boost_learning_rate: float = setting(
        0.05, "adam/sgd learning rate right after a detected change", gt=0, le=MAX_LEARNING_RATE
    )
    switch_margin: float = setting(
        5.0, "the pick moves only to an H whose BIC is lower by more than this (0: none)", ge=0
    )

    def __post_init__(self) -> None:
        dims = self.latent_dims
        if isinstance(dims, str | bytes) or not all(_is_int(h) for h in dims):
            raise InvalidConfigError(f"latent_dims: expected a list of integers, got {dims!r}")
        object.__setattr__(self, "latent_dims", tuple(int(h) for h in dims))
        object.__setattr__(self, "optimizer", RENAMED.get(self.optimizer, self.optimizer))
        self._check()

    def _check(self) -> None:
        dims = self.latent_dims
        if not dims:
            raise InvalidConfigError("latent_dims: expected at least one latent size, got none")
        if len(set(dims)) != len(dims):
            raise InvalidConfigError(f"latent_dims: expected distinct sizes, got {list(dims)}")
        for f in fields(self):
            _check_bounds(f.name, getattr(self, f.name), f.metadata)
        for name, kind in (("optimizer", Optimizer), ("estimator", Estimator)):
            allowed = [v for v in get_args(kind) if v not in RENAMED]
            if getattr(self, name) not in allowed:
                raise InvalidConfigError(
                    f"{name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if not re.match(DEVICE_PATTERN, str(self.device)):
            raise InvalidConfigError(
                f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}"
            )
        if self.optimizer == "subspace" and self.estimator != "analytic":
            raise InvalidConfigError(
                "estimator: the subspace optimizer fits the exact posterior (estimator "
                f"'analytic'); got {self.estimator!r}: use optimizer 'adam' for 'mc'"
            )

    @property
    def gradient(self) -> bool:
        """Trained by steps on the ELBO's gradient (adam/sgd), as in the paper."""
        return self.optimizer in ("adam", "sgd")

    def check_dim(self, dim: int) -> None:
        """InvalidConfigError unless every candidate satisfies H < D = dim."""
        if dim < 2:
            raise InvalidConfigError(f"dim: expected a data dimension >= 2, got {dim}")
        too_big = [h for h in self.latent_dims if h >= dim]
        if too_big:
            fits = list(range(1, min(dim, 4)))
            raise InvalidConfigError(
                f"latent_dims: expected every H < D = {dim}, got {too_big} >= {dim}; use "
                f"latent_dims below {dim} (e.g. {fits}) or rows of more than {max(too_big)} "
                "columns"
            )

    def replace(self, **changes: Any) -> "StreamSpec":
        return StreamSpec(**{**asdict(self), **changes})

    def to_record(self) -> dict[str, Any]:
        """The stored form: every setting (lists for tuples) and spec_version."""
        record = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {**record, "spec_version": SPEC_VERSION}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "StreamSpec":
        """A stored record of any spec version, migrated (KeyError names a missing setting)."""
        values = migrate(dict(record))
        known = {f.name for f in fields(cls)}
        return cls(**{k: values[k] for k in known})


# Settings added after the first release (spec_version 1), with the values that keep streams
# stored before them as they were.
LEGACY_DEFAULTS: dict[str, Any] = {"adaptive": False, "boost_learning_rate": 0.05,
                                   "standardize": False}  # fmt: skip


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record brought to SPEC_VERSION. Version 1 (no spec_version): settings added
    later take LEGACY_DEFAULTS; optimizer "natural" is "subspace"; switch_margin was 5 BIC units
    with adaptive and none without."""
    version = int(record.pop("spec_version", 1))
    if version > SPEC_VERSION:
        raise InvalidConfigError(
            f"spec_version: stored by a newer dimwatch ({version} > {SPEC_VERSION}); upgrade"
        )
    if version == 1:
        record = {**LEGACY_DEFAULTS, **record}
        record.setdefault("switch_margin", 5.0 if record["adaptive"] else 0.0)
    if "optimizer" in record:
        record["optimizer"] = RENAMED.get(record["optimizer"], record["optimizer"])
    return record


def defaults() -> dict[str, Any]:
    """Every setting's default (lists for tuples), as the API documents them."""
    out = {}
    for f in fields(StreamSpec):
        value = f.default if f.default is not MISSING else None
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bounds(name: str, value: Any, meta: Any) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if "ge" in meta and not v >= meta["ge"]:
            raise InvalidConfigError(f"{name}: expected values >= {meta['ge']}, got {value!r}")
        if "gt" in meta and not v > meta["gt"]:
            raise InvalidConfigError(f"{name}: expected a number > {meta['gt']}, got {value!r}")
        if "le" in meta and not v <= meta["le"]:
            raise InvalidConfigError(f"{name}: expected a number <= {meta['le']}, got {value!r}")
