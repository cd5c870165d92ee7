"""The task LM: any Hugging Face encoder with dropout + a linear layer over its pooled output.

Shapes: ``B`` batch, ``L`` sequence length, ``H`` hidden size, ``C`` classes.

The head classifies the encoder's ``pooler_output`` as UNIREX's reference does (its task head reads
``pooler_output``), with dropout ``model.dropout`` before the linear layer: for BERT this is exactly what
``BertForSequenceClassification`` computes. Encoders without a pooler (DeBERTa, ELECTRA, DistilBERT)
classify the first token's last hidden state instead (:attr:`TaskLM.pooling` says which).

**Multiple choice** (CoS-E, ``num_choices=C``): as UNIREX's reference models it, every answer choice is
its own input row (question + choice) and the head gives one logit per row (a linear layer with one
output, as ``BertForMultipleChoice``); :meth:`TaskLM.group_choices` turns the ``[N, 1]`` row logits of
``N = B x C`` rows into the ``[B, C]`` logits the task loss and the probabilities read (softmax over the
choices). Everything per token (extractors, top-k, removal) stays per row.

Removal of a rationale in training (:meth:`TaskLM.forward_rationale`, :mod:`unirex.models.removal`)
drops the removed tokens and keeps the others' original position ids where the arch allows it, else
goes through the attention mask; both give the same logits and gradients. The hard top-k selection
that makes the rationale has no gradient, so the faithfulness losses train the task LM through these
passes, not the extractor (unless ``model.rationale_relaxation=straight_through``, see
:meth:`TaskLM.forward_rationale`).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from unirex.arch import check_hub_arch, hub_unreachable_message, resolve_arch
from unirex.errors import UnirexError


def load_encoder(arch: str | None, attn_implementation: str | None = None) -> nn.Module:
    """``AutoModel.from_pretrained`` of an arch name (``default`` = the bundled MiniLM)."""
    # lazy: pulls transformers, which this module does not otherwise load
    from transformers import AutoModel

    target = resolve_arch(arch)
    check_hub_arch(arch)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        return AutoModel.from_pretrained(target, **kwargs)
    except Exception as e:  # noqa: BLE001 - a failed load is a user-facing problem
        # lazy: only on the error path
        from unirex.hubnet import is_unreachable

        if is_unreachable(e):
            raise UnirexError(hub_unreachable_message(arch, type(e).__name__)) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnirexError(f"cannot load the encoder of arch '{arch}' ({target}): {first}") from None


def group_choices(logits: torch.Tensor, num_choices: int | None) -> torch.Tensor:
    """``[N, 1]`` per-choice logits of ``N = B x C`` rows (an example's rows consecutive) -> ``[B, C]``;
    ``logits`` unchanged when ``num_choices`` is None (a classifier's ``[B, C]``)."""
    if not num_choices:
        return logits
    if logits.shape[-1] != 1 or logits.shape[0] % num_choices:
        raise ValueError(f"multiple choice expects [B x {num_choices}, 1] row logits, got {tuple(logits.shape)}")
    return logits.reshape(-1, num_choices)


def encoder_pooling(encoder: nn.Module) -> str:
    """How :class:`TaskLM` pools an encoder's hidden states: ``"pooler"`` (its ``pooler_output``: BERT,
    RoBERTa, MPNet, ALBERT, BigBird) or ``"first_token"`` (no pooler: DeBERTa, ELECTRA, DistilBERT)."""
    return "pooler" if getattr(encoder, "pooler", None) is not None else "first_token"


class TaskLM(nn.Module):
    """Encoder + dropout + linear over the encoder's pooled output (the first token without a pooler).

    Args:
        encoder: a Hugging Face ``AutoModel`` (BERT, RoBERTa, BigBird, DeBERTa, MiniLM, ...).
        num_classes: ``C``.
        dropout: dropout before the classification layer (``model.dropout``).
        labels: the label names, in class order (written as ``id2label`` when saved).
        pooling: ``"pooler"`` or ``"first_token"``; default :func:`encoder_pooling` (checkpoints written
            before the head read the pooler output say ``"first_token"``).
        num_choices: multiple choice with this many choices per example (``num_classes`` must equal it):
            the head has one output per row, see :meth:`group_choices`.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1, labels: list[str] | None = None,
                 pooling: str | None = None, num_choices: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.num_classes = int(num_classes)
        self.num_choices = int(num_choices) if num_choices else None
        if self.num_choices and self.num_choices != self.num_classes:
            raise ValueError(f"num_choices={self.num_choices} but num_classes={self.num_classes}: a multiple-choice "
                             "task has one class per choice")
        self.dropout_p = float(dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.hidden_size, 1 if self.num_choices else self.num_classes)
        self.labels = [str(x) for x in labels] if labels else None
        self.pooling = pooling or encoder_pooling(encoder)
        if self.pooling not in ("pooler", "first_token") or (self.pooling == "pooler" and encoder_pooling(encoder) != "pooler"):
            raise ValueError(f"pooling={self.pooling!r} does not fit this encoder ({type(encoder).__name__})")
        self._takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    @classmethod
    def from_arch(cls, arch: str | None, num_classes: int, dropout: float = 0.1,
                  attn_implementation: str | None = None, labels: list[str] | None = None,
                  num_choices: int | None = None) -> "TaskLM":
        return cls(load_encoder(arch, attn_implementation), num_classes, dropout, labels, num_choices=num_choices)

    def group_choices(self, logits: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, C]`` from what :meth:`forward` returns: the same tensor for a classifier;
        for multiple choice, the per-row logits ``[B x C, 1]`` (rows of one example consecutive) reshaped
        so that column ``j`` is choice ``j``."""
        return group_choices(logits, self.num_choices)

    def example_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """``[B]`` labels from a batch's ``label`` (multiple choice: one per row, the example's answer)."""
        return labels if not self.num_choices else labels.view(-1, self.num_choices)[:, 0]

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

    def attentions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The attention weights of every layer, ``[B, heads, L, L]`` each (first layer first). The
        encoder runs with eager attention for this call (fused kernels such as SDPA return no weights)
        and is switched back after; the graph is kept when gradients are enabled."""
        enc = self.encoder
        kwargs = {"attention_mask": attention_mask, "output_attentions": True}
        if token_type_ids is not None and self._takes_token_types:
            kwargs["token_type_ids"] = token_type_ids
        before = getattr(enc.config, "_attn_implementation", None)
        switch = before not in (None, "eager") and hasattr(enc, "set_attn_implementation")
        if switch:
            enc.set_attn_implementation("eager")
        try:
            out = enc(input_ids=input_ids, **kwargs)
        finally:
            if switch:
                enc.set_attn_implementation(before)
        if not getattr(out, "attentions", None):
            raise UnirexError(f"this encoder ({type(enc).__name__}) returns no attention weights")
        return tuple(out.attentions)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, H]`` from last hidden states ``[B, L, H]``: the encoder's own pooler applied to them (what
        it returns as ``pooler_output``), or the first token when it has none."""
        pooler = getattr(self.encoder, "pooler", None)
        if pooler is None or self.pooling == "first_token":
            return hidden[:, 0]
        if isinstance(pooler, nn.Linear):  # ALBERT, BigBird: a linear layer + an activation module beside it
            act = getattr(self.encoder, "pooler_activation", None) or getattr(self.encoder, "activation", None)
            pooled = pooler(hidden[:, 0])
            return act(pooled) if act is not None else pooled
        return pooler(hidden)  # BertPooler and its kin take the hidden states and read the first token

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from hidden states ``[B, L, H]``: dropout + linear over :meth:`pool`
        (multiple choice: ``[N, 1]``, one per row; see :meth:`group_choices`)."""
        return self.classifier(self.dropout(self.pool(hidden)))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]``."""
        return self.classify(self.encode(input_ids, attention_mask, token_type_ids, inputs_embeds, position_ids))

    def forward_rationale(self, batch: dict[str, torch.Tensor], rationale: torch.Tensor, mode: str,
                          soft: torch.Tensor | None = None, removal: str = "drop") -> torch.Tensor:
        """Logits ``[B, C]`` on the input with the rationale removed (``mode="remove"``: every other
        non-padding token stays, special tokens and the query included) or kept alone (``mode="only"``: the
        first token, [CLS], and the rationale, as UNIREX's training step keeps them); see
        :func:`unirex.rationale.keep_mask`.

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
        # lazy: pulls omegaconf, which this module does not otherwise load
        from unirex.models.removal import variant_logits

        return variant_logits(self, batch, [(rationale, mode)], soft, removal)[0]

    # ------------------------------------------------------------------------------ persistence
    def save_pretrained(self, folder: str | Path, labels: list[str] | None = None) -> str:
        """Write the task LM to ``folder`` in Hugging Face layout (safetensors): where the arch's
        ``AutoModelForSequenceClassification`` reproduces this head, in that layout (BERT / MiniLM /
        ALBERT, RoBERTa / XLM-R / MPNet, DeBERTa; ``AutoModelForMultipleChoice`` for multiple choice); else
        the encoder plus ``task_head.safetensors``
        (see :mod:`unirex.models.hf_layout`). ``labels`` (default: :attr:`labels`) become ``id2label``.

        Returns:
            the layout written (:data:`unirex.models.hf_layout.LAYOUTS`).
        """
        # lazy: unirex.models.hf_layout imports this module
        from unirex.models.hf_layout import save_task_lm

        return save_task_lm(self, folder, labels)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TaskLM":
        """Inverse of :meth:`save_pretrained` (also reads the layout of earlier versions: encoder +
        ``task_head.safetensors``). Safetensors only; returned in eval mode."""
        # lazy: unirex.models.hf_layout imports this module
        from unirex.models.hf_layout import load_task_lm

        return load_task_lm(folder, cls)
