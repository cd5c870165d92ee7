"""The task LM: any Hugging Face encoder with dropout + a linear layer over the first token.

Shapes: ``B`` batch, ``L`` sequence length, ``H`` hidden size, ``C`` classes.

Removal of a rationale in training (:meth:`TaskLM.forward_rationale`, :mod:`unirex.models.removal`)
drops the removed tokens and keeps the others' original position ids where the arch allows it, else
goes through the attention mask; both give the same logits and gradients. The hard top-k selection
that makes the rationale has no gradient, so the faithfulness losses train the task LM through these
passes, not the extractor (unless ``model.rationale_relaxation=straight_through``, see
:meth:`TaskLM.forward_rationale`).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import nn

HEAD_FILE = "task_head.safetensors"
HEAD_META = "task_head.json"


def load_encoder(arch: str | None, attn_implementation: str | None = None) -> nn.Module:
    """``AutoModel.from_pretrained`` of an arch name (``default`` = the bundled MiniLM)."""
    from transformers import AutoModel

    from unirex.arch import resolve_arch
    from unirex.errors import UnirexError

    target = resolve_arch(arch)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        return AutoModel.from_pretrained(target, **kwargs)
    except Exception as e:  # noqa: BLE001 - a failed load is a user-facing problem
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnirexError(f"cannot load the encoder of arch '{arch}' ({target}): {first}") from None


class TaskLM(nn.Module):
    """Encoder + dropout + linear over the first token.

    Args:
        encoder: a Hugging Face ``AutoModel`` (BERT, RoBERTa, BigBird, DeBERTa, MiniLM, ...).
        num_classes: ``C``.
        dropout: dropout before the classification layer.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.num_classes = int(num_classes)
        self.dropout_p = float(dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.hidden_size, self.num_classes)
        self._takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    @classmethod
    def from_arch(cls, arch: str | None, num_classes: int, dropout: float = 0.1,
                  attn_implementation: str | None = None) -> "TaskLM":
        return cls(load_encoder(arch, attn_implementation), num_classes, dropout)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.encoder.config, "pad_token_id", None)
        return int(pad) if pad is not None else 0

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings ``[B, L, H]`` of ``input_ids`` ``[B, L]`` (what ``inputs_embeds`` takes:
        position and segment embeddings are added inside the encoder)."""
        return self.encoder.get_input_embeddings()(input_ids)

    def encode(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden states ``[B, L, H]``. Give ``input_ids`` or ``inputs_embeds``; ``position_ids``
        ``[B, L]`` (optional) overrides the encoder's own (dropped-token variants keep their original ones)."""
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None and self._takes_token_types:
            kwargs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if inputs_embeds is not None:
            out = self.encoder(inputs_embeds=inputs_embeds, **kwargs)
        else:
            out = self.encoder(input_ids=input_ids, **kwargs)
        return out.last_hidden_state

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from hidden states ``[B, L, H]`` (first token)."""
        return self.classifier(self.dropout(hidden[:, 0]))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]``."""
        return self.classify(self.encode(input_ids, attention_mask, token_type_ids, inputs_embeds, position_ids))

    def forward_rationale(self, batch: dict[str, torch.Tensor], rationale: torch.Tensor, mode: str,
                          soft: torch.Tensor | None = None, removal: str = "drop") -> torch.Tensor:
        """Logits ``[B, C]`` on the input with the rationale removed (``mode="remove"``) or kept alone
        (``mode="only"``); special tokens and the query (``attention_mask=1``, ``explainable=False``) are
        always kept (:func:`unirex.rationale.keep_mask`).

        Args:
            batch: needs ``input_ids``, ``attention_mask``, ``explainable`` (``token_type_ids`` optional).
            rationale: ``[B, L]`` bool hard rationale.
            mode: ``"remove"`` or ``"only"``.
            soft: optional ``[B, L]`` probabilities in [0, 1] for a straight-through relaxation: the
                forward value is unchanged (the hard mask decides), and the kept tokens' embeddings are
                scaled by ``1 + (soft - soft.detach())`` (``"only"``) or ``1 - (soft - soft.detach())``
                (``"remove"``), so the gradient reaches the extractor's scores. Off by default.
            removal: ``"drop"`` (delete the removed tokens, keep the others' position ids, where the
                arch allows it) or ``"mask"`` (hide them through the attention mask); see
                :mod:`unirex.models.removal`.
        """
        from unirex.models.removal import variant_logits

        return variant_logits(self, batch, [(rationale, mode)], soft, removal)[0]

    # ------------------------------------------------------------------------------ persistence
    def save_pretrained(self, folder: str | Path) -> None:
        """Encoder in Hugging Face layout (safetensors) + the head (``task_head.safetensors``)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder)
        state = {f"classifier.{k}": v.detach().contiguous().cpu() for k, v in self.classifier.state_dict().items()}
        save_file(state, str(folder / HEAD_FILE))
        (folder / HEAD_META).write_text(json.dumps({"num_classes": self.num_classes, "dropout": self.dropout_p}))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TaskLM":
        """Inverse of :meth:`save_pretrained`."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / HEAD_META).read_text())
        model = cls(load_encoder(str(folder)), meta["num_classes"], meta["dropout"])
        state = load_file(str(folder / HEAD_FILE))
        model.classifier.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})
        return model
