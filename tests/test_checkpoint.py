"""The task LM's head (the pooler output, as UNIREX's reference) and its Hugging Face layout; checkpoints
of the earlier layout; corrupt checkpoint files (one line naming the file); pickles refused, never loaded."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from unirex.checkpoint import load_checkpoint, open_checkpoint, resolve_checkpoint, save_checkpoint
from unirex.config import resolve_config, to_dict
from unirex.errors import UnirexError
from unirex.models import TaskLM, build_model
from unirex.models.hf_layout import FALLBACK, SEQ_LAYOUTS, probe_batch

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=100,
             max_position_embeddings=64)
ARCHS = [  # model type, extra config, expected pooling, expected layout
    ("bert", {}, "pooler", "pooler"),
    ("albert", {"embedding_size": 16}, "pooler", "pooler"),
    ("roberta", {}, "pooler", "dense_out_proj"),
    ("xlm-roberta", {}, "pooler", "dense_out_proj"),
    ("mpnet", {}, "pooler", "dense_out_proj"),
    ("deberta-v2", {}, "first_token", "identity_context_pooler"),
    ("big_bird", {"attention_type": "original_full"}, "pooler", FALLBACK),
    ("electra", {}, "first_token", FALLBACK),
    ("distilbert", {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 37}, "first_token", FALLBACK),
]


@pytest.mark.parametrize("model_type,extra,pooling,layout", ARCHS, ids=[a[0] for a in ARCHS])
def test_head_reads_the_pooler_output_and_saves_where_transformers_reproduces_it(model_type, extra, pooling, layout,
                                                                                 tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    torch.manual_seed(0)
    encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **SMALL, **extra))
    lm = TaskLM(encoder, 3, 0.2, ["x", "y", "z"]).eval()
    batch = probe_batch(SMALL["vocab_size"])
    with torch.no_grad():
        out = encoder(**batch)
        pooled = out.pooler_output if pooling == "pooler" else out.last_hidden_state[:, 0]
        assert lm.pooling == pooling
        assert torch.allclose(lm(**batch), lm.classifier(pooled), atol=1e-6)
    assert lm.save_pretrained(tmp_path) == layout
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["id2label"] == {"0": "x", "1": "y", "2": "z"} and config["label2id"] == {"x": 0, "y": 1, "z": 2}
    back = TaskLM.from_pretrained(tmp_path)
    assert (back.pooling, back.labels, back.dropout_p, back.training) == (pooling, ["x", "y", "z"], 0.2, False)
    with torch.no_grad():
        assert torch.allclose(back(**batch), lm(**batch), atol=1e-5)
        if layout in SEQ_LAYOUTS:
            hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
            assert torch.allclose(hf(**batch).logits, lm(**batch), atol=1e-5)
        else:  # only the encoder is plain transformers' there
            assert (tmp_path / "task_head.safetensors").is_file()
            plain = AutoModel.from_pretrained(tmp_path).eval()
            assert torch.allclose(plain(**batch).last_hidden_state, out.last_hidden_state, atol=1e-5)


MC_LAYOUTS = {"roberta": "pooler", "xlm-roberta": "pooler", "mpnet": "pooler", "big_bird": "pooler"}  # else as above


@pytest.mark.parametrize("model_type,extra,pooling,layout", ARCHS, ids=[a[0] for a in ARCHS])
def test_a_multiple_choice_task_lm_saves_as_the_arch_s_multiple_choice_model(model_type, extra, pooling, layout, tmp_path):
    """One logit per choice row (CoS-E): where the arch's AutoModelForMultipleChoice holds the head (pooler +
    dropout + one-output linear; their MC heads read the pooler even where their classifier does not),
    it reproduces the grouped [B, C] logits from [B, C, L] inputs; else encoder + head, as for classifiers."""
    from transformers import AutoConfig, AutoModel, AutoModelForMultipleChoice

    from unirex.models.hf_layout import choice_inputs

    torch.manual_seed(0)
    encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **SMALL, **extra))
    lm = TaskLM(encoder, 4, 0.2, list("ABCD"), num_choices=4).eval()
    batch = probe_batch(SMALL["vocab_size"], rows=8)  # 2 examples x 4 choices
    assert lm.save_pretrained(tmp_path) == MC_LAYOUTS.get(model_type, layout)
    back = TaskLM.from_pretrained(tmp_path)
    assert (back.num_choices, back.num_classes, back.classifier.out_features, back.labels) == (4, 4, 1, list("ABCD"))
    with torch.no_grad():
        ours = lm.group_choices(lm(**batch))
        assert ours.shape == (2, 4) and torch.allclose(back.group_choices(back(**batch)), ours, atol=1e-5)
        if MC_LAYOUTS.get(model_type, layout) != FALLBACK:
            hf = AutoModelForMultipleChoice.from_pretrained(tmp_path).eval()
            assert torch.allclose(hf(**choice_inputs(batch, 4)).logits, ours, atol=1e-5)


def test_training_mode_logits_are_bert_for_sequence_classification_s_with_model_dropout(tiny_arch, tmp_path):
    """Same weights, same RNG: our training-mode logits (dropout = model.dropout) are HF's, draw for draw."""
    from transformers import AutoModelForSequenceClassification

    lm = TaskLM.from_arch(tiny_arch, 2, dropout=0.3, labels=["NEG", "POS"])
    lm.save_pretrained(tmp_path)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert hf.config.classifier_dropout == 0.3 and hf.dropout.p == 0.3
    lm.train()
    hf.train()
    batch = probe_batch(lm.encoder.config.vocab_size)
    torch.manual_seed(5)
    ours = lm(**batch)
    torch.manual_seed(5)
    theirs = hf(**batch).logits
    assert torch.allclose(ours, theirs, atol=1e-6)
    torch.manual_seed(6)
    assert not torch.allclose(lm(**batch), ours)  # dropout is on: the check above could fail


def _write_previous_layout(encoder, classifier: nn.Linear, folder: Path, dropout: float = 0.1) -> None:
    """What TaskLM.save_pretrained wrote before the head read the pooler output."""
    from safetensors.torch import save_file

    encoder.save_pretrained(folder)
    save_file({f"classifier.{k}": v.contiguous() for k, v in classifier.state_dict().items()},
              str(folder / "task_head.safetensors"))
    (folder / "task_head.json").write_text(json.dumps({"num_classes": classifier.out_features, "dropout": dropout}))


def test_checkpoints_of_the_previous_layout_load_and_predict_as_they_were_trained(tiny_arch, tmp_path):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_arch).eval()
    torch.manual_seed(1)
    head = nn.Linear(encoder.config.hidden_size, 2)
    _write_previous_layout(encoder, head, tmp_path / "old")
    back = TaskLM.from_pretrained(tmp_path / "old")
    assert back.pooling == "first_token"  # as it was trained, although BERT has a pooler
    batch = probe_batch(encoder.config.vocab_size)
    with torch.no_grad():
        want = head(encoder(**batch).last_hidden_state[:, 0])
        assert torch.allclose(back(**batch), want, atol=1e-6)
        # saved again, it keeps its meaning (no Hugging Face head classifies the first token of a BERT)
        assert back.save_pretrained(tmp_path / "again", labels=["NEG", "POS"]) == FALLBACK
        assert torch.allclose(TaskLM.from_pretrained(tmp_path / "again")(**batch), want, atol=1e-6)


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture
def ckpt(tmp_path, tiny_arch, bundled_tokenizer) -> Path:
    cfg = resolve_config([f"arch={tiny_arch}", "method=slm_plaus_linear"])
    model = build_model(cfg, 2)
    return save_checkpoint(model, to_dict(cfg), tmp_path / "ckpt", bundled_tokenizer,
                           {"labels": ["NEG", "POS"], "epoch": 0, "run_id": "R-test"})


def test_checkpoint_round_trip_and_a_missing_arch(ckpt, tiny_arch, tmp_path):
    cfg = resolve_config([f"arch={tiny_arch}", "method=dlm_plaus_linear"])
    model = build_model(cfg, 2).eval()
    arch_copy = tmp_path / "arch-copy"
    shutil.copytree(tiny_arch, arch_copy)
    cfg.arch = str(arch_copy)
    folder = save_checkpoint(model, to_dict(cfg), tmp_path / "dlm", None, {"labels": ["NEG", "POS"]})
    shutil.rmtree(arch_copy)  # a checkpoint made elsewhere: its arch folder does not exist here
    back, saved, info = load_checkpoint(folder)
    assert saved.arch == str(folder / "task_lm") and back.task_lm.labels == ["NEG", "POS"]
    batch = {**probe_batch(model.task_lm.encoder.config.vocab_size), "explainable": torch.ones(2, 8, dtype=torch.bool)}
    batch["explainable"][:, 0] = False
    assert torch.allclose(back.eval().explain(batch), model.explain(batch), atol=1e-5)


CORRUPTIONS = [  # file, new bytes, what the message says
    ("extractor.safetensors", b"\x00not safetensors", "extractor.safetensors: not a readable safetensors file"),
    ("config.json", b'{"model": {"comp_wt": ', "config.json: the run config is not valid JSON"),
    ("config.json", b'{"modle": {}}', "config.json: not a UNIREX run config"),
    ("checkpoint.json", b"[1, 2", "checkpoint.json: the checkpoint description is not valid JSON"),
    ("checkpoint.json", b"[]", "checkpoint.json: the checkpoint description should hold a JSON object"),
    ("task_lm/config.json", b"{", "task_lm/config.json: the task LM config is not valid JSON"),
    ("task_lm/model.safetensors", None, "task_lm/model.safetensors: not a readable safetensors file"),
]


@pytest.mark.parametrize("name,data,message", CORRUPTIONS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CORRUPTIONS)])
def test_corrupt_checkpoint_files_give_one_line_naming_the_file(ckpt, name, data, message):
    path = ckpt / name
    path.write_bytes(data if data is not None else path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnirexError) as e:
        load_checkpoint(ckpt)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name,value", [("task_lm/model.safetensors", float("nan")),
                                        ("extractor.safetensors", float("inf"))])
def test_weights_with_nan_or_inf_are_refused_at_load_naming_file_and_tensor(ckpt, name, value):
    """A diverged run's weights load without complaint and explain with a silent nan: refused, one line."""
    from safetensors.torch import load_file, save_file

    path = ckpt / name
    tensors = load_file(str(path))
    victim = sorted(k for k, t in tensors.items() if t.is_floating_point())[-1]
    tensors[victim] = tensors[victim].clone()
    tensors[victim].view(-1)[0] = value
    save_file(tensors, str(path), metadata={"format": "pt"})
    with pytest.raises(UnirexError) as e:
        load_checkpoint(ckpt)
    msg = str(e.value)
    assert f"{name}: tensor '{victim}' holds 1 NaN or infinite value" in msg and "\n" not in msg
    with pytest.raises(UnirexError, match="NaN or infinite"):
        open_checkpoint(ckpt)


def test_extractor_weights_of_another_model_are_named(ckpt):
    from safetensors.torch import save_file

    save_file({"extractor.head.net.0.weight": torch.zeros(3, 3)}, str(ckpt / "extractor.safetensors"))
    with pytest.raises(UnirexError, match="extractor.safetensors: .*(does not match|wrong shape)"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("name,message", [("task_head.safetensors", "task_head.safetensors: not a readable safetensors"),
                                          ("task_head.json", "task_head.json: the task head description is not valid JSON")])
def test_corrupt_task_head_files_of_the_previous_layout(ckpt, tiny_arch, name, message):
    from transformers import AutoModel

    shutil.rmtree(ckpt / "task_lm")
    _write_previous_layout(AutoModel.from_pretrained(tiny_arch), nn.Linear(32, 2), ckpt / "task_lm")
    load_checkpoint(ckpt)  # intact, it loads
    (ckpt / "task_lm" / name).write_bytes(b"\x01garbage")
    with pytest.raises(UnirexError) as e:
        load_checkpoint(ckpt)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["extractor.safetensors", "config.json", "checkpoint.json"])
def test_cli_turns_a_corrupt_checkpoint_into_exit_status_2(ckpt, tmp_path, small_demo_dir, capsys, name):
    from cli import main

    (ckpt / name).write_bytes(b"garbage")
    argv = ["--no-progress", f"workspace={tmp_path / 'ws'}", f"data_dir={small_demo_dir}", "data=demo",
            "data.max_length=64", "training=evaluate", f"training.ckpt_path={ckpt}", "training.eval_splits='dev'"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and f"{ckpt / name}: " in err
    assert not (tmp_path / "ws" / "runs").exists() or not list((tmp_path / "ws" / "runs").iterdir())


# -------------------------------------------------------------------------------------------- pickles
class _Trap:
    """Unpickling this creates a folder: proof that something was unpickled."""

    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.makedirs, (self.sentinel,))


def _trap(path: Path, sentinel: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(_Trap(sentinel), f)
    return path


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if torch.load or pickle.load runs at all."""
    def refuse(*a, **kw):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_the_trap_works(tmp_path):
    sentinel = tmp_path / "sprung"
    with open(_trap(tmp_path / "x.bin", sentinel), "rb") as f:
        pickle.load(f)
    assert sentinel.is_dir()


def test_a_task_lm_with_only_pickled_weights_is_refused_unread(ckpt, tmp_path, no_unpickling):
    sentinel = tmp_path / "sprung"
    (ckpt / "task_lm" / "model.safetensors").unlink()
    _trap(ckpt / "task_lm" / "pytorch_model.bin", sentinel)
    with pytest.raises(UnirexError, match="task_lm: the task LM weights are not safetensors \\(pytorch_model.bin\\)"):
        load_checkpoint(ckpt)
    with pytest.raises(UnirexError, match="never unpickles"):
        TaskLM.from_pretrained(ckpt / "task_lm")
    assert not sentinel.exists()


def test_a_pickle_beside_safetensors_is_ignored(ckpt, tmp_path, no_unpickling):
    sentinel = tmp_path / "sprung"
    _trap(ckpt / "task_lm" / "pytorch_model.bin", sentinel)
    _trap(ckpt / "extractor.bin", sentinel)
    load_checkpoint(ckpt)
    assert not sentinel.exists()


@pytest.mark.parametrize("name", ["model.bin", "epoch=3-step=100.ckpt", "weights.pt"])
def test_a_pickle_given_as_ckpt_path_is_refused_unread(tmp_path, name, no_unpickling):
    sentinel = tmp_path / "sprung"
    path = _trap(tmp_path / name, sentinel)
    with pytest.raises(UnirexError, match="pickle file .* never unpickles"):
        resolve_checkpoint(str(path), tmp_path / "runs")
    with pytest.raises(UnirexError, match="pickle"):
        open_checkpoint(str(path), workspace=tmp_path)
    # a folder holding only a pickle is no checkpoint either
    folder = tmp_path / "folder"
    _trap(folder / "pytorch_model.bin", sentinel)
    with pytest.raises(UnirexError, match="not a UNIREX checkpoint.*pytorch_model.bin.*never loaded"):
        resolve_checkpoint(str(folder), tmp_path / "runs")
    # UNIREX's own 'ER-XXXX/checkpoints/epoch=X.ckpt' of an unknown run
    with pytest.raises(UnirexError, match="no run 'ER-1'.*never loaded"):
        resolve_checkpoint("ER-1/checkpoints/epoch=0-step=4.ckpt", tmp_path / "runs")
    assert not sentinel.exists()


@pytest.mark.slow
def test_the_bundled_minilm_task_lm_is_a_bert_for_sequence_classification(tmp_path, bundled_tokenizer):
    from transformers import AutoModelForSequenceClassification

    lm = TaskLM.from_arch("default", 2, labels=["NEG", "POS"]).eval()
    assert lm.pooling == "pooler" and lm.save_pretrained(tmp_path) == "pooler"
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == "BertForSequenceClassification" and hf.config.id2label == {0: "NEG", 1: "POS"}
    enc = bundled_tokenizer(["a superb film overall", "the plot was dull and the acting was not good"],
                            padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(hf(**enc).logits, lm(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]),
                              atol=1e-5)
