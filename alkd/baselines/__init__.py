"""The KD baselines of the paper's Table 1 behind one call (BASELINES.md).

``train_baseline(method, dataset, backbone, teacher=..., ...)`` trains a
student with DE, FTD, HTD, unKD, DSL or DLLM2Rec under the plain student's
``TrainConfig``, iteration budget, validation schedule and early stopping
(``alkd.train.fit``), so that rows differ only in the distillation. Each
method has an options dataclass whose defaults are BASELINES.md's settings;
``tuning_grid(method)`` lists the validation grid of its distillation
weight where BASELINES.md gives one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alkd.baselines import de, dllm2rec, dsl, ftd, htd, unkd
from alkd.baselines.common import BaselineOptions, BaselineResult, Context
from alkd.data import SessionDataset
from alkd.models import SessionRecommender
from alkd.train import TrainConfig, resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineSpec:
    """One registered baseline: its options class and trainer."""

    name: str
    options: type[BaselineOptions]
    train: Callable[..., BaselineResult]
    needs_teacher: bool
    needs_llm: bool = False


BASELINES: dict[str, BaselineSpec] = {
    "de": BaselineSpec("DE", de.DEOptions, de.train, True),
    "ftd": BaselineSpec("FTD", ftd.FTDOptions, ftd.train, True),
    "htd": BaselineSpec("HTD", htd.HTDOptions, htd.train, True),
    "unkd": BaselineSpec("unKD", unkd.UnKDOptions, unkd.train, True),
    "dsl": BaselineSpec("DSL", dsl.DSLOptions, dsl.train, False),
    "dllm2rec": BaselineSpec(
        "DLLM2Rec", dllm2rec.DLLM2RecOptions, dllm2rec.train, False, True
    ),
}


def get_spec(method: str) -> BaselineSpec:
    key = method.lower()
    if key not in BASELINES:
        raise ValueError(
            f"unknown baseline {method!r}; choose one of {list(BASELINES)}"
        )
    return BASELINES[key]


def make_options(
    method: str, options: BaselineOptions | Mapping[str, Any] | None = None
) -> BaselineOptions:
    """The method's options from an instance, a dict (unknown keys refused) or None."""
    cls = get_spec(method).options
    if isinstance(options, cls):
        return options
    if isinstance(options, BaselineOptions):
        raise ValueError(f"{method}: expected {cls.__name__}, got {type(options)}")
    return cls.from_dict(options)


def train_baseline(
    method: str,
    dataset: SessionDataset,
    backbone: str,
    *,
    teacher: SessionRecommender | None = None,
    llm_rankings: Mapping[int, list[int]] | None = None,
    seed: int = 0,
    config: TrainConfig | None = None,
    options: BaselineOptions | Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
) -> BaselineResult:
    """Train the student of one KD baseline; returns (model, fit, extras).

    Args:
        method: ``de``, ``ftd``, ``htd``, ``unkd``, ``dsl`` or ``dllm2rec``.
        teacher: the trained d = 100 recommender of the same backbone (DE,
            FTD, HTD, unKD); used frozen, in eval mode, under no_grad.
        llm_rankings: DLLM2Rec's LLM lists, train session id -> item ids.
        options: the method's options (dataclass or dict); defaults are
            BASELINES.md's settings.

    Returns:
        ``BaselineResult``: the trained student alone (KD modules dropped),
        the ``FitResult`` and method figures (last loss parts, DSL's
        non-zero counts, unKD's groups, ...).
    """
    spec = get_spec(method)
    opts = make_options(method, options)
    if spec.needs_teacher and teacher is None:
        raise ValueError(f"{method}: needs a trained teacher (teacher=None)")
    config = config or TrainConfig()
    ctx = Context(
        method=method.lower(),
        dataset=dataset,
        backbone=backbone.lower(),
        seed=seed,
        config=config,
        rng=seed_everything(seed),
        device=resolve_device(device),
        progress=progress,
        teacher=teacher,
    )
    log.info(
        "baseline start method=%s dataset=%s backbone=%s seed=%d",
        method,
        dataset.name,
        backbone,
        seed,
    )
    if spec.needs_llm:
        result = spec.train(ctx, opts, llm_rankings)
    else:
        result = spec.train(ctx, opts)
    result.extras["method"] = spec.name
    return result


def tuning_grid(method: str) -> list[dict[str, Any]]:
    """Option overrides to try on validation (BASELINES.md 0, 1, 8).

    DE: {5, 30} experts x {1e-3, 1e-2}. FTD/HTD, whose summed KD terms are
    divided by the batch size here: lambda x {0.1, 1, 10}. unKD, DSL and
    DLLM2Rec keep their published reductions, so no weight grid is given
    (one entry: the defaults).
    """
    spec = get_spec(method)
    key = method.lower()
    if key == "de":
        return [{"n_experts": m, "kd_weight": w} for m in (5, 30) for w in (1e-3, 1e-2)]
    if key in ("ftd", "htd"):
        base = spec.options().kd_weight
        return [{"kd_weight": base * f} for f in (0.1, 1.0, 10.0)]
    return [{}]


__all__ = [
    "BASELINES",
    "BaselineResult",
    "BaselineSpec",
    "make_options",
    "train_baseline",
    "tuning_grid",
]
