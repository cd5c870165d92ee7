"""Models: the task LM, the rationale extractors, A2R's attention predictor, and the builder."""

from unirex.models.a2r import A2RAttentionPredictor
from unirex.models.builder import UnirexModel, build_extractor, build_model
from unirex.models.extractors import (AttributionExtractor, Extractor, LMExtractor, SelfLMExtractor,
                                      input_x_gradient)
from unirex.models.heads import TokenHead, make_mlp
from unirex.models.task_lm import TaskLM, load_encoder

__all__ = ["A2RAttentionPredictor", "AttributionExtractor", "Extractor", "LMExtractor", "SelfLMExtractor",
           "TaskLM", "TokenHead", "UnirexModel", "build_extractor", "build_model", "input_x_gradient",
           "load_encoder", "make_mlp"]
