"""protocol=reference|eraser in training (issue 22, section 2 items 3-7): each difference on small hand-computed
tensors against the reference's formula, under both protocols; then a debug run of every preset under each
protocol (the whole grid is slow; one fast representative per protocol)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unirex import losses as L
from unirex.callbacks import Callback, EarlyStoppingCallback
from unirex.config import from_dict, resolve_config, to_dict
from unirex.data.build import build_split
from unirex.data.eraser import write_dataset
from unirex.engine import Engine, _monitor_value, run
from unirex.methods import list_methods
from unirex.models.extractors.base import TrainingScores
from unirex.models.extractors.captum_algos import pad_baseline, reference_baseline
from unirex.models.task_lm import TaskLM
from unirex.objective import _l2e_loss, _plaus_loss
from unirex.optim import HFAdamW, build_optimizer
from unirex.protocol import InputLayout, input_layout

PROTOCOLS = ("reference", "eraser")


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _bce(x: float, y: float, pw: float) -> float:
    """BCE with logits and a positive weight, written out: ``pw * y * softplus(-x) + (1 - y) * softplus(x)``."""
    return pw * y * _softplus(-x) + (1 - y) * _softplus(x)


# ------------------------------------------------------------------------------- 3. plausibility loss
@pytest.fixture
def plaus_batch():
    # row 0: [CLS] d d [SEP] q [SEP] pad (supervised); row 1: [CLS] d [SEP] pad... (no rationale)
    return {
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0]]),
        "explainable": torch.tensor([[0, 1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0]]).bool(),
        "rationale": torch.tensor([[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]]).float(),
        "has_rationale": torch.tensor([True, False]),
    }


RAW = torch.tensor([[0.5, 2.0, -1.0, 0.3, -0.7, 0.1, 9.0], [1.0, -2.0, 0.4, 9.0, 9.0, 9.0, 9.0]])


def _reference_plaus(attrs, rationale, attn_mask, has_rationale):
    """The reference's formula in our words: every non-padding token of a supervised row, pos_weight =
    (tokens - positives) / positives, the weighted BCE summed over those tokens and divided by their count."""
    sel = has_rationale.float().unsqueeze(1) * attn_mask
    gold = rationale * sel
    n = sel.sum()
    pw = (n - gold.sum()) / gold.sum()
    return (F.binary_cross_entropy_with_logits(attrs, gold, pos_weight=pw, reduction="none") * sel).sum() / n


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plausibility_loss_covers_the_protocols_tokens(plaus_batch, protocol):
    cfg = resolve_config([f"protocol={protocol}"])
    masked = torch.where(plaus_batch["explainable"], RAW, torch.zeros_like(RAW))
    got = _plaus_loss(plaus_batch, cfg, TrainingScores(masked, unmasked=RAW)).item()
    if protocol == "reference":
        # row 0's six non-padding tokens, one positive: pos_weight 5; the head's logits at [CLS]/[SEP]/query count
        want = sum(_bce(x, y, 5.0) for x, y in zip([0.5, 2.0, -1.0, 0.3, -0.7, 0.1], [0, 1, 0, 0, 0, 0])) / 6
        ref = _reference_plaus(RAW, plaus_batch["rationale"], plaus_batch["attention_mask"].float(),
                               plaus_batch["has_rationale"])
        assert got == pytest.approx(ref.item(), rel=1e-6)
    else:
        # row 0's two document tokens, one positive, one negative: pos_weight 1
        want = (_bce(2.0, 1, 1.0) + _bce(-1.0, 0, 1.0)) / 2
    assert got == pytest.approx(want, rel=1e-6)


def test_reference_plausibility_trains_the_head_at_special_and_query_tokens(plaus_batch):
    raw = RAW.clone().requires_grad_(True)
    masked = torch.where(plaus_batch["explainable"], raw, torch.zeros_like(raw))
    for protocol, reaches in (("reference", True), ("eraser", False)):
        raw.grad = None
        _plaus_loss(plaus_batch, resolve_config([f"protocol={protocol}"]), TrainingScores(masked, unmasked=raw)).backward(
            retain_graph=True)
        assert (raw.grad[0, [0, 3, 4, 5]] != 0).all().item() is reaches
        assert (raw.grad[0, 6] == 0) and (raw.grad[1] == 0).all()  # padding and unsupervised rows: never


# -------------------------------------------------------------------------------- 4. training regime
def test_protocol_settings_and_explicit_overrides_win():
    ref, era = resolve_config(["data=esnli"]), resolve_config(["data=esnli", "protocol=eraser"])
    assert (ref.model.optimizer.name, ref.model.optimizer.betas, ref.model.optimizer.adam_epsilon) == ("hf_adamw", [0.9, 0.98], 1e-8)
    assert (ref.model.scheduler.warmup_updates, ref.training.max_grad_norm, ref.setup.precision) == (0.1, 0.0, "fp16")
    assert (era.model.optimizer.name, era.model.optimizer.betas) == ("adamw", [0.9, 0.999])
    assert (era.model.scheduler.warmup_updates, era.training.max_grad_norm, era.setup.precision) == (0.0, 1.0, "32")
    assert ref.model.optimizer.lr == era.model.optimizer.lr == 2e-5  # what every paper command sets
    over = resolve_config(["data=esnli", "model.optimizer.name=adamw", "training.max_grad_norm=2.0",
                           "setup.precision=32", "model.scheduler.warmup_updates=0", "model.optimizer.lr=1e-3"])
    assert (over.model.optimizer.name, over.training.max_grad_norm, over.setup.precision) == ("adamw", 2.0, "32")
    assert over.model.scheduler.warmup_updates == 0 and over.model.optimizer.lr == 1e-3
    assert over.model.optimizer.betas == [0.9, 0.98]  # the keys not overridden keep the protocol's values
    # recorded in config.json and read back as they were; a config saved before the key loads as eraser
    assert from_dict(to_dict(ref)) == ref
    old = to_dict(era)
    old.pop("protocol")
    assert from_dict(old).protocol == "eraser"


def test_hf_adamw_has_no_bias_correction():
    """Two steps on one weight, by hand: m, v without bias correction (reference) against torch's AdamW."""
    lr, b1, b2, eps = 0.1, 0.9, 0.98, 1e-8
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = HFAdamW([p], lr=lr, betas=(b1, b2), eps=eps)
    m = v = 0.0
    want = 1.0
    for g in (0.5, -0.2):
        p.grad = torch.tensor([g])
        opt.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        want -= lr * m / (math.sqrt(v) + eps)
        assert p.item() == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(1.0 - 0.1 * 0.05 / math.sqrt(0.005) - 0.1 * 0.025 / math.sqrt(0.005 * 0.98 + 0.02 * 0.04),
                                 rel=1e-6)
    q = torch.nn.Parameter(torch.tensor([1.0]))
    torch_opt = build_optimizer("adamw", [{"params": [q], "weight_decay": 0.0}], lr, (b1, b2), eps)
    q.grad = torch.tensor([0.5])
    torch_opt.step()
    assert q.item() == pytest.approx(1.0 - lr, rel=1e-5)  # bias-corrected first step: lr * sign(g)
    # decoupled weight decay after the step
    r = torch.nn.Parameter(torch.tensor([2.0]))
    opt2 = HFAdamW([r], lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.5)
    r.grad = torch.tensor([0.5])
    opt2.step()
    stepped = 2.0 - lr * 0.05 / (math.sqrt(0.005) + eps)
    assert r.item() == pytest.approx(stepped - lr * 0.5 * stepped, rel=1e-5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_engine_optimizer_and_warmup_follow_the_protocol(protocol, tmp_path):
    eng = Engine(resolve_config([f"protocol={protocol}", f"workspace={tmp_path}"]))
    eng.model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    opt, sched = eng._optimizer(20)
    assert isinstance(opt, HFAdamW) is (protocol == "reference")
    assert opt.param_groups[0]["betas"] == ((0.9, 0.98) if protocol == "reference" else (0.9, 0.999))
    # warmup: 10% of 20 updates = 2 under the reference (lr 0 at the start), none under eraser
    assert sched.get_last_lr()[0] == (0.0 if protocol == "reference" else 2e-5)
    opt.step()  # no gradients: moves nothing
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(1e-5 if protocol == "reference" else 2e-5 * 19 / 20)


# ------------------------------------------------------------------- 5. checkpoint selection, stopping
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_monitor_per_dataset_and_patience_count(protocol, tmp_path):
    for ds, ref_metric in (("cose", 0.75), ("sst", 0.75), ("esnli", 0.5), ("movies", 0.5), ("multirc", 0.5)):
        cfg = resolve_config([f"data={ds}", f"protocol={protocol}"])
        dev = {"acc": 0.75, "macro_f1": 0.5, "task_ref": ref_metric}
        # the reference monitors its task metric (accuracy on CoS-E and SST, macro F1 elsewhere); eraser macro F1
        assert _monitor_value(dev, cfg.training.monitor) == (ref_metric if protocol == "reference" else 0.5)
        assert cfg.training.patience == 5
    assert resolve_config(["data=cose", "training.monitor=dev_macro_f1"]).training.monitor == "dev_macro_f1"
    eng = Engine(resolve_config([f"protocol={protocol}", "training.patience=2", f"workspace={tmp_path}"]))
    stop = next(cb for cb in eng.callbacks if isinstance(cb, EarlyStoppingCallback))
    eng.state.improved = False
    stops = []
    for _ in range(3):
        stop.on_epoch_end(eng, eng.state)
        stops.append(eng.state.should_stop)
    # Lightning's EarlyStopping (the reference) stops after `patience` epochs without gain; eraser after more
    assert stops == ([False, True, True] if protocol == "reference" else [False, False, True])


# ------------------------------------------------------------------------------------------ 6. data
def _write(tmp_path, name, anns, docs):
    write_dataset(tmp_path / name, {s: anns for s in ("train", "val", "test")}, docs)
    return tmp_path


def test_reference_max_length_per_dataset_and_arch():
    assert resolve_config(["data=esnli"]).data.max_length == 125
    assert resolve_config(["data=sst"]).data.max_length == 58
    assert resolve_config(["data=movies", "arch=google/bigbird-roberta-base"]).data.max_length == 1024
    assert resolve_config(["data=cose", "arch=google/bigbird-roberta-base"]).data.max_length == 77
    assert resolve_config(["data=movies", "data.max_length=300"]).data.max_length == 300
    assert resolve_config(["data=movies", "protocol=eraser"]).data.max_length == 512
    assert resolve_config(["data=demo"]).data.max_length == 512  # a dataset the reference does not list


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_movie_review_keeps_its_rationale_tail(tmp_path, tiny_arch, protocol):
    """A review longer than the input with its only gold span at the end: the reference keeps the tail."""
    words = [f"w{i}" for i in range(60)] + ["great", "film"]
    ann = {"annotation_id": "r1", "classification": "POS", "query": "", "query_type": None, "docids": ["r1"],
           "evidences": [[{"docid": "r1", "start_token": 60, "end_token": 62, "start_sentence": 0,
                           "end_sentence": 1, "text": "great film"}]]}
    data = _write(tmp_path, "movies", [ann], {"r1": [words]})
    built = build_split(data, "movies", "train", arch=tiny_arch, max_length=16, layout=input_layout(protocol, "movies"))
    import polars as pl

    row = pl.read_parquet(built.path).row(0, named=True)
    assert row["truncated"] and len(row["input_ids"]) == 16
    kept = [w for w in row["word_ids"] if w >= 0]
    if protocol == "reference":
        assert kept[-1] == 61 and sum(row["rationale"]) > 0 and row["word_ids"][0] == -1 and row["word_ids"][-1] == -1
    else:
        assert kept[0] == 0 and sum(row["rationale"]) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_esnli_input_without_the_query_under_the_reference(tmp_path, tiny_arch, protocol):
    ann = {"annotation_id": "p1", "classification": "entailment", "query": "what is the relation", "query_type": None,
           "docids": ["p1_premise", "p1_hypothesis"],
           "evidences": [[{"docid": "p1_premise", "start_token": 0, "end_token": 1, "start_sentence": 0,
                           "end_sentence": 1, "text": "a"}]]}
    data = _write(tmp_path, "esnli", [ann], {"p1_premise": [["a", "dog", "runs"]], "p1_hypothesis": [["it", "moves"]]})
    built = build_split(data, "esnli", "train", arch=tiny_arch, max_length=64, layout=input_layout(protocol, "esnli"))
    import polars as pl

    row = pl.read_parquet(built.path).row(0, named=True)
    from unirex.arch import load_tokenizer

    tok = load_tokenizer(tiny_arch)
    text = tok.decode(row["input_ids"])
    assert row["query"] == "what is the relation"  # recorded either way
    # [CLS] premise [SEP] hypothesis [SEP] (reference) or ... [SEP] query [SEP] (eraser)
    assert ("relation" in text) is (protocol == "eraser")
    assert row["input_ids"].count(tok.sep_token_id) == (2 if protocol == "reference" else 3)
    assert sum(row["explainable"]) == sum(len(tok.tokenize(w)) for w in ["a", "dog", "runs", "it", "moves"])


def test_input_layouts_only_where_the_reference_differs():
    assert input_layout("eraser", "esnli") == input_layout("reference", "multirc") == InputLayout()
    assert InputLayout().tag == "" and input_layout("reference", "esnli").tag != input_layout("reference", "movies").tag


# ------------------------------------------------------------------------------------------- 7. L2E
def test_l2e_binning_of_multiple_choice_rows_jointly():
    # one example, two rows (choices), 4 positions each; all positions non-padding but the last of row 1
    t = torch.tensor([[0.0, 3.0, -1.0, 1.0], [0.0, 2.0, -3.0, 0.0]])
    am = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]).bool()
    joint = L.l2e_targets(t, am, rows_per_example=2)
    # over both rows: positives 3, 1, 2 -> mean 2; negatives -1, -3 -> mean -2
    assert joint.tolist() == [[2, 4, 1, 3], [2, 3, 0, -100]]
    alone = L.l2e_targets(t, am)
    # row 0 alone: mean pos 2, mean neg -1; row 1 alone: mean pos 2, mean neg -3
    assert alone.tolist() == [[2, 4, 1, 3], [2, 3, 1, -100]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_l2e_loss_covers_every_non_padding_token_under_the_reference(protocol):
    batch = {"teacher_scores": torch.tensor([[0.0, 2.0, -1.0, 0.0, 0.0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0]]),
             "explainable": torch.tensor([[0, 1, 1, 0, 0]]).bool()}
    logits = torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(0))
    got = _l2e_loss(batch, resolve_config([f"protocol={protocol}"]), logits, None)
    ce = F.cross_entropy(logits[0], torch.tensor([2, 3, 1, 2, 0]), reduction="none")  # classes: 2 at 0, 3 up to the mean
    want = ce[:4].mean() if protocol == "reference" else ce[1:3].mean()  # reference: sum over non-pad / their count
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_integrated_gradients_baseline(protocol, tiny_arch, bundled_tokenizer):
    from unirex.models.extractors.attribution import AttributionExtractor
    from unirex.models.extractors.captum_algos import BASELINES

    lm = TaskLM.from_arch(tiny_arch, num_classes=2).eval()
    tok = bundled_tokenizer
    cls_, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    ids = torch.tensor([[cls_, 2000, 2001, sep, 2002, sep, pad]])  # [CLS] d d [SEP] q [SEP] pad
    batch = {"input_ids": ids, "attention_mask": (ids != pad).long(),
             "explainable": torch.tensor([[0, 1, 1, 0, 0, 0, 0]]).bool()}
    emb = lm.embed(ids).detach()
    base = BASELINES[AttributionExtractor.from_config(resolve_config([f"protocol={protocol}"]), lm, None)[0].baseline](
        lm, batch, emb)
    # reference: pad everywhere but [CLS] and the [SEP]s (the query padded too); eraser: the document tokens only
    kept = [cls_, pad, pad, sep, pad, sep, pad] if protocol == "reference" else [cls_, pad, pad, sep, 2002, sep, pad]
    assert torch.allclose(base, lm.embed(torch.tensor([kept])).detach())
    assert BASELINES["reference"] is reference_baseline and BASELINES["explainable"] is pad_baseline


# ---------------------------------------------------------------------- 4. dropout after the first step
class _Modes(Callback):
    """The task LM's train/eval mode at each of its forward passes, per training step."""

    def __init__(self):
        self.steps: list[list[bool]] = [[]]

    def on_train_begin(self, engine, state):
        engine.model.task_lm.register_forward_pre_hook(lambda mod, args: self.steps[-1].append(mod.training))

    def on_step_end(self, engine, state):
        self.steps.append([])


# ---------------------------------------------------------------------------- every preset, each protocol
def _preset_overrides(method, protocol, teacher):
    extra = {"fresh": [f"data.fresh_exp_id={teacher}"],
             "l2e": [f"data.l2e_exp_id={teacher}", "data.l2e_attr_algo=input-x-gradient"]}
    return [f"method={method}", f"protocol={protocol}", "debug=True", *extra.get(method, [])]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, tiny_overrides, small_heads):
    """Per protocol: a workspace and a debug Task LM run that saved its attributions (FRESH's and L2E's teacher)."""
    out = {}
    for protocol in PROTOCOLS:
        ws = tmp_path_factory.mktemp(f"ws-{protocol}")
        res = run(resolve_config([*tiny_overrides, *small_heads, f"workspace={ws}", "method=task_lm", "debug=True",
                                  f"protocol={protocol}", "model.save_outputs=True"]))
        assert res.status == "completed"
        out[protocol] = (ws, res.run_id)
    return out


def _run_preset(method, protocol, ws, teacher, tiny_overrides, small_heads, callbacks=()):
    cfg = resolve_config([*tiny_overrides, *small_heads, f"workspace={ws}", *_preset_overrides(method, protocol, teacher)])
    assert cfg.protocol == protocol
    res = run(cfg, callbacks=callbacks)
    assert res.status == "completed", (method, protocol, res.error)
    assert res.metrics.get("test_acc") is not None
    return res


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_preset_trains_and_scores_under_each_protocol_with_its_dropout(protocol, tmp_path, tiny_overrides, small_heads):
    """The fast representative of the grid below: SLM (comp/suff/plaus), with the task LM's mode per step: the
    reference trains with dropout on an epoch's first step only (its step ends in eval mode, which Lightning 1.4
    resets after each validation), eraser on every step."""
    modes = _Modes()
    res = _run_preset("slm_comp_suff_plaus_linear", protocol, tmp_path, None, tiny_overrides, small_heads, [modes])
    steps = modes.steps[:-1]  # the last list: the dev and test evaluations' passes
    assert len(steps) == 4 and all(steps[0]) and all(steps)
    assert all(not any(s) for s in steps[1:]) if protocol == "reference" else all(all(s) for s in steps)
    from unirex.runs import RunDir

    assert RunDir(res.run_dir).config()["protocol"] == protocol


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", [m.id for m in list_methods()])
def test_every_preset_debug_run_under_each_protocol(method, protocol, teachers, tiny_overrides, small_heads):
    _run_preset(method, protocol, *teachers[protocol], tiny_overrides, small_heads)


# ------------------------------------------------------------------------------ the runs index: a column
def test_protocol_is_a_runs_column_compare_can_group_by(tmp_path):
    from store import db
    from store.queries import RunFilter, aggregate, runs_table
    from unirex.runs import RunDir

    for i, cfg in enumerate([{"protocol": "reference"}, {"protocol": "eraser"}, {"seed": 2}]):  # the last: pre-protocol
        rd = RunDir.create(tmp_path / "runs", {"seed": i, **cfg},
                           {"method": "task_lm", "dataset": "demo", "arch": "default", "seed": i, "mode": "train"})
        rd.log_metrics({"acc": 0.5 + 0.1 * i}, split="test")
        rd.set_status("completed")
    db.ingest_all(tmp_path)
    df = runs_table(tmp_path)
    assert sorted(zip(df["seed"].to_list(), df["protocol"].to_list())) == [(0, "reference"), (1, "eraser"), (2, "eraser")]
    agg = aggregate(tmp_path, RunFilter(), names=("acc",), by=("method", "protocol")).sort("protocol")
    assert agg["protocol"].to_list() == ["eraser", "reference"] and agg["n"].to_list() == [2, 1]
    assert agg["mean"].to_list() == pytest.approx([0.65, 0.5])
