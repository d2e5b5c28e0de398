"""Core results and live streams -> response schemas and events (no I/O, no locking)."""

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from service.history import Point
from service.live import Applied, LiveStream, Unavailable
from service.model_schemas import (
    CollapseOut,
    HistoryModelOut,
    HistoryOut,
    HistoryPointOut,
    ModelCollapseOut,
    ModelParamsOut,
)
from service.pubsub import Messages
from service.schemas import (
    BatchOut,
    SelectionOut,
    StreamOut,
)
from streaming.report import ModelParams, StepReport, effective_rank, variance_share
from streaming.spec import StreamSpec


def selection(report: StepReport | None) -> SelectionOut:
    """The selection after `report` (before the first batch: step 0, no models). Built as one
    dict validated once: constructing its nested models one by one cost ~60 us at D = 10, as
    much as the step it reports."""
    if report is None:
        return SelectionOut(
            step=0,
            rows_seen=0,
            best_latent_dim=None,
            converged=False,
            margin=None,
            path=[],
            training=None,
            models=[],
        )
    models = []
    best_rank = None
    for m in report.models:
        rank = effective_rank(m.sigma2, m.tau2, report.dim)
        if m.latent_dim == report.best_latent_dim:
            best_rank = rank
        models.append(
            {
                "latent_dim": m.latent_dim,
                "entropy_elbo": m.entropy_elbo,
                "bic": m.bic,
                "batch_elbo": m.batch_elbo,
                "batch_bic": m.batch_bic,
                "sigma2": m.sigma2,
                "active_latents": m.active_latents,
                "converged": m.converged,
                "effective_rank": rank,
                "variance_share": variance_share(m.sigma2, m.tau2, report.dim),
            }
        )
    return SelectionOut.model_validate(
        {
            "step": report.step,
            "rows_seen": report.rows_seen,
            "best_latent_dim": report.best_latent_dim,
            "converged": report.converged,
            "margin": report.margin,
            "path": [vars(piece) for piece in report.path],
            "training": vars(report.training),
            "models": models,
            "effective_rank": best_rank,
        }
    )


def collapse(live: LiveStream) -> CollapseOut:
    report = live.report
    models = [] if report is None else report.models
    return CollapseOut(
        step=live.step,
        threshold=live.spec.collapse_threshold,
        models=[
            ModelCollapseOut(
                latent_dim=m.latent_dim,
                encoder_entropies=list(m.encoder_entropies),
                collapsed=list(m.collapsed),
                tau2=list(m.tau2),
                active_latents=m.active_latents,
                s_reg=m.s_reg,
                s_rec=m.s_rec,
            )
            for m in models
        ],
    )


def batch_out(applied: Applied, selected: SelectionOut | None = None) -> BatchOut:
    """The answer to a batch (`selected`: its selection, when already built)."""
    return BatchOut(
        step=applied.report.step,
        rows=applied.rows,
        duplicate=applied.duplicate,
        selection=selected if selected is not None else selection(applied.report),
    )


def step_events(applied: Applied) -> Messages:
    """The events of one applied batch, in the order sent: `selection_change` if the best H
    changed, then `step` (service/pubsub.py gives ids and explains the order)."""
    report = applied.report
    messages: Messages = []
    if applied.previous_best not in (None, report.best_latent_dim):
        change = {
            "step": report.step,
            "previous": applied.previous_best,
            "best_latent_dim": report.best_latent_dim,
        }
        messages.append(("selection_change", json.dumps(change)))
    selected = applied.selection if applied.selection is not None else selection(report)
    messages.append(("step", selected.model_dump_json()))
    return messages


def stream(live: LiveStream | Unavailable) -> StreamOut:
    if isinstance(live, Unavailable):
        return unavailable_stream(live)
    report = live.report
    return StreamOut(
        name=live.name,
        **{**live.config, "device": live.device},
        dim=live.dim,
        step=live.step,
        rows_seen=0 if report is None else report.rows_seen,
        best_latent_dim=None if report is None else report.best_latent_dim,
        converged=report is not None and report.converged,
        created_at=datetime.fromisoformat(live.created_at),
    )


def unavailable_stream(record: Unavailable) -> StreamOut:
    """An unavailable stream's stored settings (the defaults where they cannot be read)."""
    defaults = {k: v for k, v in StreamSpec().to_record().items() if k != "spec_version"}
    known = {k: v for k, v in record.config.items() if k in defaults}
    fixed: dict[str, Any] = {
        "name": record.name,
        "dim": record.dim,
        "step": record.step,
        "rows_seen": 0,
        "best_latent_dim": None,
        "created_at": datetime.fromisoformat(record.created_at),
        "available": False,
        "unavailable_reason": record.reason,
    }
    try:
        return StreamOut(**{**defaults, **known, **fixed})
    except ValidationError:
        return StreamOut(**{**defaults, **fixed})


def history(live: LiveStream, points: list[Point]) -> HistoryOut:
    dims = live.spec.latent_dims
    data = [
        HistoryPointOut(
            step=p.step,
            best_latent_dim=p.best_latent_dim,
            models=[
                HistoryModelOut(latent_dim=h, bic=bic, batch_bic=bbic)
                for h, bic, bbic in zip(dims, p.bic, p.batch_bic, strict=True)
            ],
        )
        for p in points
    ]
    return HistoryOut(data=data, count=len(data), capacity=live.history.capacity)


def model_params(step: int, params: ModelParams) -> ModelParamsOut:
    return ModelParamsOut(
        step=step,
        latent_dim=params.latent_dim,
        dim=params.dim,
        W=params.W,
        mu=params.mu,
        sigma2=params.sigma2,
        V=params.V,
        b=params.b,
        tau2=params.tau2,
        standardized=params.standardized,
        scaler_mean=params.scaler_mean,
        scaler_scale=params.scaler_scale,
    )
