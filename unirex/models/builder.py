"""Build the models a config asks for: :func:`build_model` -> :class:`UnirexModel`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from unirex.models.a2r import A2RAttentionPredictor
from unirex.models.extractors import Extractor
from unirex.models.task_lm import TaskLM, load_encoder
from unirex.rationale import Scoring
from unirex.registry import get_extractor

if TYPE_CHECKING:
    from unirex.config import RunConfig


class UnirexModel(nn.Module):
    """Everything one run trains, as one ``nn.Module`` (``.parameters()``, ``.to()``, ``state_dict()``).

    Attributes:
        task_lm: the :class:`TaskLM`.
        extractor: the rationale :class:`Extractor` (may have no parameters: ``attr_algo`` + ``sum``).
        a2r: the :class:`A2RAttentionPredictor` for ``model=a2r``, else None.
        token_classes: outputs per token of a learned extractor's head (1, or L2E's classes).
        scoring: how the evaluator scores this model (:class:`unirex.rationale.Scoring`):
            select-then-predict for A2R and FRESH, ERASER's protocol otherwise.
    """

    def __init__(self, task_lm: TaskLM, extractor: Extractor, a2r: A2RAttentionPredictor | None = None,
                 token_classes: int = 1, scoring: Scoring | None = None):
        super().__init__()
        self.task_lm = task_lm
        self.extractor = extractor
        self.a2r = a2r
        self.token_classes = token_classes
        self.scoring = scoring or Scoring()

    @property
    def num_classes(self) -> int:
        return self.task_lm.num_classes

    @property
    def num_choices(self) -> int | None:
        """Choices per example of a multiple-choice task (the forward then gives one logit per row)."""
        return self.task_lm.num_choices

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None) -> torch.Tensor:
        """The task LM's logits ``[B, C]``."""
        return self.task_lm(input_ids, attention_mask, token_type_ids, inputs_embeds)

    def predict_and_explain(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` on the full input and the extractor's scores ``[B, L]`` (for the predicted
        class), no graph kept. A token head on the task LM's own encoder (SLM) reads the hidden states of
        the same forward pass, so both cost one pass."""
        return self.extractor.predict_and_explain(batch, self.task_lm)

    def explain(self, batch: dict[str, torch.Tensor], target: torch.Tensor | None = None) -> torch.Tensor:
        """Token scores ``[B, L]`` for evaluation (target ``None``: the predicted class), no graph kept."""
        return self.extractor.explain(batch, self.task_lm, target)


def build_extractor(cfg: "RunConfig", task_lm: TaskLM, new_encoder=None) -> tuple[Extractor, int]:
    """The extractor of ``cfg.model`` (and its head's outputs per token): the class of its
    ``model.explainer_type`` spec (:mod:`unirex.registry`; FRESH's is its pruned input). ``new_encoder()``
    makes the DLM's own encoder (default: ``load_encoder(cfg.arch)``)."""
    m = cfg.model
    new_encoder = new_encoder or (lambda: load_encoder(cfg.arch))
    # the input of a FRESH run is already pruned to the teacher's top-k: that is the rationale
    spec = get_extractor("fresh" if m.name == "fresh" else m.explainer_type)
    return spec.cls().from_config(cfg, task_lm, new_encoder)


def build_model(cfg: "RunConfig", num_classes: int, task_lm: TaskLM | None = None, new_encoder=None,
                num_choices: int | None = None) -> UnirexModel:
    """Task LM (from ``cfg.arch``, or the one given, e.g. loaded from a checkpoint), extractor, and A2R's
    attention predictor for ``model=a2r``. Seeds torch with ``cfg.seed`` before creating new layers.

    ``new_encoder()`` makes the second encoders (DLM, A2R); default ``load_encoder(cfg.arch)``. Loading a
    checkpoint builds them from the task LM's config instead (their weights come from the checkpoint), so
    the original arch need not be reachable. ``num_choices``: a multiple-choice task (CoS-E), see
    :class:`TaskLM` (a given ``task_lm`` brings its own)."""
    torch.manual_seed(cfg.seed)
    if task_lm is None:
        task_lm = TaskLM.from_arch(cfg.arch, num_classes, cfg.model.dropout, num_choices=num_choices)
    new_encoder = new_encoder or (lambda: load_encoder(cfg.arch))
    extractor, token_classes = build_extractor(cfg, task_lm, new_encoder)
    a2r = None
    if cfg.model.name == "a2r":  # one logit per row for multiple choice, as the task LM's head
        a2r = A2RAttentionPredictor(new_encoder(), 1 if task_lm.num_choices else num_classes)
    return UnirexModel(task_lm, extractor, a2r, token_classes, model_scoring(cfg))


def model_scoring(cfg: "RunConfig") -> Scoring:
    """How a model of ``cfg`` is scored: A2R and FRESH predict from their rationale (UNIREX's
    ``expl_forward`` with ``a2r=True`` / ``fresh=True``); FRESH's rationale is its whole pruned input.
    The run's ``protocol`` decides the UNIREX-style metrics' top-k and inputs (:mod:`unirex.evaluate`)."""
    if cfg.model.name == "a2r":
        return Scoring(select_then_predict=True, protocol=cfg.protocol)
    if cfg.model.name == "fresh":
        return Scoring(select_then_predict=True, hard_k=100.0, protocol=cfg.protocol)
    return Scoring(protocol=cfg.protocol)
