"""Rationale extractors (``model.explainer_type``, specs in :mod:`unirex.registry`): one interface,
``scores(batch, task_lm, target) -> [B, L]``, ``training_scores``, ``explain`` (see :mod:`.base`)."""

from unirex.models.extractors.attribution import AttributionExtractor
from unirex.models.extractors.base import Extractor, TrainingScores, mask_scores, ordinal_scores
from unirex.models.extractors.captum_algos import captum_attributions
from unirex.models.extractors.fresh import FreshExtractor
from unirex.models.extractors.gradients import input_x_gradient, predicted_class, saliency, second_order_attention
from unirex.models.extractors.lm import LMExtractor
from unirex.models.extractors.self_lm import SelfLMExtractor

__all__ = ["AttributionExtractor", "Extractor", "FreshExtractor", "LMExtractor", "SelfLMExtractor", "TrainingScores",
           "captum_attributions", "input_x_gradient", "mask_scores", "ordinal_scores", "predicted_class",
           "saliency", "second_order_attention"]
