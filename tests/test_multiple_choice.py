"""CoS-E as UNIREX's reference models it: multiple choice, one input row and one logit per answer choice,
softmax over the choices; built, trained (Task LM, comp/suff/plaus, A2R, FRESH), evaluated, exported,
saved and explained on a small generated CoS-E-shaped dataset and the tiny BERT."""

from __future__ import annotations

import json
import random
import shutil

import polars as pl
import pytest
import torch

from unirex.data import load_split
from unirex.data.eraser import write_dataset
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.runs import RunDir

OBJECTS = {"milk": "fridge", "shirt": "closet", "book": "shelf", "car": "garage", "plate": "cupboard"}
PLACES = ["fridge", "closet", "shelf", "garage", "cupboard"]


def _examples(n: int, seed: int, prefix: str, letter_labels: bool = True):
    rng = random.Random(seed)
    anns, docs = [], {}
    for i in range(n):
        obj = rng.choice(list(OBJECTS))
        choices = PLACES[:]
        rng.shuffle(choices)
        ann_id = f"{prefix}{i}"
        words = ["where", "would", "you", "keep", "the", obj, "at", "home", "?"]
        docs[ann_id] = [words]
        answer = choices.index(OBJECTS[obj])
        anns.append({"annotation_id": ann_id, "docids": [ann_id],
                     "classification": "ABCDE"[answer] if letter_labels else OBJECTS[obj],
                     "query": " [sep] ".join(choices), "query_type": None,
                     "evidences": [[{"docid": ann_id, "start_token": 5, "end_token": 6, "text": obj,
                                     "start_sentence": -1, "end_sentence": -1}]]})
    return anns, docs


@pytest.fixture(scope="module")
def cose_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("mc-data")
    splits, docs = {}, {}
    for split, n, seed in (("train", 40, 0), ("val", 12, 1), ("test", 12, 2)):
        anns, d = _examples(n, seed, f"{split}_", letter_labels=split != "val")  # val: the answer as text
        splits[split] = anns
        docs.update(d)
    write_dataset(data_dir / "cose", splits, docs)
    return data_dir


@pytest.fixture
def base(tmp_path, tiny_arch, cose_dir):
    return [f"arch={tiny_arch}", f"data_dir={cose_dir}", "data=cose", "data.max_length=32", "setup.train_batch_size=4",
            "setup.eval_batch_size=4", f"workspace={tmp_path}"]


def test_build_one_row_per_choice(cose_dir, tiny_arch, bundled_tokenizer):
    for split in ("train", "dev"):
        ds, built = load_split(cose_dir, "cose", split, arch=tiny_arch, max_length=32)
        t = ds.table
        n = built.summary["count"]
        assert built.summary["num_choices"] == 5 and built.summary["rows"] == 5 * n == t.height
        assert built.labels == ["A", "B", "C", "D", "E"] and len(ds) == n and ds.num_choices == 5
        assert t["choice"].to_list() == [j for _ in range(n) for j in range(5)]
        # every row of an example carries its answer's position, and its own choice as the second segment
        first = t.filter(pl.col("annotation_id") == t["annotation_id"][0])
        assert first.height == 5 and first["label"].n_unique() == 1
        choices = first["query"].to_list()
        assert choices == [c for c in choices if c in PLACES] and sorted(choices) == sorted(PLACES)
        assert OBJECTS["milk"] in PLACES  # the answer is the place of the question's object
        obj = [w for w in bundled_tokenizer.decode(first["input_ids"][0]).split() if w in OBJECTS][0]
        assert choices[first["label"][0]] == OBJECTS[obj]
        for r in range(5):
            text = bundled_tokenizer.decode(first["input_ids"][r])
            assert text.rstrip(" [SEP]").endswith(choices[r])
        # the gold rationale (the object) is on the question's tokens of every row, never on the choice
        assert all(sum(r) == 1 for r in first["rationale"].to_list())
    batch = ds.collate([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 10 and batch["label"].tolist()[:5] == [ds.table["label"][0]] * 5


def test_build_refuses_a_ragged_or_unknown_answer(tmp_path, tiny_arch):
    anns, docs = _examples(3, 0, "t")
    anns[1]["query"] = "fridge [sep] closet"
    write_dataset(tmp_path / "cose", {"train": anns, "val": anns, "test": anns}, docs)
    with pytest.raises(UnirexError, match=r"train.jsonl:2: 2 choices, the split's first example has 5"):
        load_split(tmp_path, "cose", "train", arch=tiny_arch, max_length=32)
    anns, docs = _examples(3, 0, "t")
    anns[2]["classification"] = "moon"
    write_dataset(tmp_path / "cose", {"train": anns, "val": anns, "test": anns}, docs)
    with pytest.raises(UnirexError, match=r"train.jsonl:3: the answer 'moon' is neither a choice letter"):
        load_split(tmp_path, "cose", "train", arch=tiny_arch, max_length=32)


def test_losses_are_a_softmax_over_the_choices(cose_dir, tiny_arch):
    """Task loss, comprehensiveness and sufficiency of one batch against a hand computation: the rows'
    single logits grouped per example, cross-entropy over the five choices."""
    from unirex.losses import task_loss
    from unirex.models import build_model
    from unirex.objective import compute_losses
    from unirex.rationale import keep_mask, topk_mask

    ds, _ = load_split(cose_dir, "cose", "train", arch=tiny_arch, max_length=32)
    # protocol=eraser: the hand computation below picks among the document tokens (batch["explainable"]);
    # under the default reference protocol the choice (the query) is a candidate too (test_protocol_eval.py)
    cfg = resolve_run_config([f"arch={tiny_arch}", "method=aa_sum_comp_suff", "model.topk=[50]",
                              "model.rationale_removal=mask", "protocol=eraser"])
    model = build_model(cfg, 5, num_choices=5).eval()
    lm = model.task_lm
    assert lm.classifier.out_features == 1
    batch = ds.collate([ds[i] for i in range(3)])
    losses = compute_losses(batch, model, cfg)

    def example_logits(attention_mask):
        rows = lm(batch["input_ids"], attention_mask, batch["token_type_ids"])  # [15, 1]
        return rows.view(3, 5)

    labels = batch["label"].view(3, 5)[:, 0]
    full = example_logits(batch["attention_mask"])
    ce = torch.nn.functional.cross_entropy(full, labels, reduction="none")
    assert torch.allclose(losses["task_loss"], ce.mean(), atol=1e-6)
    assert torch.allclose(task_loss(lm.group_choices(lm(batch["input_ids"], batch["attention_mask"],
                                                           batch["token_type_ids"])), labels), ce.mean())
    # the attribution of each row is its own choice's logit (target 0 of the single-logit head)
    scores = model.extractor.scores(batch, lm, batch["label"])
    r = topk_mask(scores, batch["explainable"], batch["attention_mask"], 50)
    ce_comp = torch.nn.functional.cross_entropy(
        example_logits(keep_mask(batch["attention_mask"], batch["explainable"], r, "remove")), labels, reduction="none")
    ce_suff = torch.nn.functional.cross_entropy(
        example_logits(keep_mask(batch["attention_mask"], batch["explainable"], r, "only")), labels, reduction="none")
    # UNIREX's margin criteria: comp = max(ce_full - ce_comp, -margin) + margin, suff the same with ce_suff - ce_full
    m = cfg.model
    assert torch.allclose(losses["comp_loss"], (torch.clamp(ce - ce_comp, min=-m.comp_margin) + m.comp_margin).mean(),
                          atol=1e-5)
    assert torch.allclose(losses["suff_loss"], (torch.clamp(ce_suff - ce, min=-m.suff_margin) + m.suff_margin).mean(),
                          atol=1e-5)


def test_train_evaluate_export_save_and_explain(base, tmp_path, tiny_arch, bundled_tokenizer, cose_dir):
    from unirex.checkpoint import load_checkpoint, resolve_checkpoint
    from unirex.export import export_eraser
    from unirex.inference import explain_text

    res = run(resolve_run_config(base + ["method=slm_comp_suff_plaus_linear", "training.epochs=1", "save_checkpoint=True",
                                         "model.topk=[10,50]"]))
    assert res.status == "completed"
    m = res.metrics
    assert 0.0 <= m["test_acc"] <= 1.0 and m["test_plaus_auprc"] is not None and m["test_comp_aopc"] is not None
    rd = RunDir(res.run_dir)
    # one output per example (the predicted choice's row), five probabilities each summing to 1
    out = pl.read_parquet(rd.path / "outputs" / "eval_test.parquet")
    assert out.height == 12 and out["annotation_id"].n_unique() == 12
    assert all(len(p) == 5 and abs(sum(p) - 1) < 1e-9 for p in out["probs"].to_list())
    path, n = export_eraser(rd.path, "test", tmp_path / "results.jsonl")
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert n == len(recs) == 12 and len({r["annotation_id"] for r in recs}) == 12
    assert set(recs[0]["classification_scores"]) == set("ABCDE")

    model, _, info = load_checkpoint(resolve_checkpoint(res.run_id, tmp_path / "runs"))
    assert model.num_choices == 5 and model.task_lm.classifier.out_features == 1
    ev = run(resolve_run_config(base + ["training=evaluate", f"training.ckpt_path={res.run_id}",
                                        "method=slm_comp_suff_plaus_linear", "model.topk=[10,50]"]))
    assert ev.metrics["test_acc"] == pytest.approx(m["test_acc"])

    model.eval()
    # the saved task LM is the arch's own multiple-choice model: [B, 5, L] inputs, the same [B, 5] logits;
    # pushed to the Hub, its card says so
    from transformers import AutoModelForMultipleChoice

    from unirex.hub import push_run
    from unirex.models.hf_layout import choice_inputs

    files = resolve_checkpoint(res.run_id, tmp_path / "runs")
    hf = AutoModelForMultipleChoice.from_pretrained(files / "task_lm").eval()
    assert hf.config.architectures == ["BertForMultipleChoice"] and hf.config.id2label[0] == "A"
    ds, _ = load_split(cose_dir, "cose", "test", arch=tiny_arch, max_length=32)
    batch = ds.collate([ds[i] for i in range(3)])
    kw = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        ours = model.task_lm.group_choices(model.task_lm(**kw))
        theirs = hf(**choice_inputs(kw, 5)).logits
    assert ours.shape == theirs.shape == (3, 5) and torch.allclose(ours, theirs, atol=1e-5)
    card = push_run(res.run_id, "someone/cose-slm", dry_run_dir=tmp_path / "hub", workspace=tmp_path)
    text = (tmp_path / "hub" / "README.md").read_text()
    assert "AutoModelForMultipleChoice.from_pretrained(\"someone/cose-slm\")" in text and "queries=[" in text
    assert "AutoModelForSequenceClassification" not in text and card is not None
    assert "pipeline_tag" not in text.split("---")[1]  # not text-classification: the Hub reads the architecture

    exp = explain_text(model, bundled_tokenizer, "where would you keep the milk at home ?", info["labels"], 32,
                       query=" [sep] ".join(PLACES))
    assert len(exp.probs) == 5 and abs(sum(exp.probs) - 1) < 1e-6 and exp.predicted in "ABCDE"
    assert len(exp.words) == 9 and len(exp.word_scores) == 9
    with pytest.raises(UnirexError, match="multiple choice with 5 choices"):
        explain_text(model, bundled_tokenizer, "where is the milk ?", info["labels"], 32, query="fridge [sep] shelf")

    # the app's doors: the dataset browser shows one example with its five choices, which Explain takes as is
    from workbench import Workbench

    shutil.copytree(cose_dir / "cose", tmp_path / "data" / "cose")
    wb = Workbench(tmp_path)
    ex = wb.example("cose", tiny_arch, 32, "test", 1)
    assert ex.query.count(" [sep] ") == 4 and sorted(ex.query.split(" [sep] ")) == sorted(PLACES)
    assert ex.annotation_id == "test_1" and ex.label in "ABCDE"
    shown = wb.explain(res.run_id, " ".join(ex.words), query=ex.query)
    assert len(shown.probs) == 5 and shown.predicted in "ABCDE"


def test_a2r_and_fresh_chain_on_multiple_choice(base):
    # with partial rationale supervision: the supervised subset is drawn over examples, all their rows with them
    a2r = run(resolve_run_config(base + ["debug=True", "method=a2r", "model.expl_head_mlp_hidden_dim=16",
                                         "data.plaus_frac=0.5"]))
    assert a2r.status == "completed" and a2r.metrics["test_suff_aopc"] == 0.0
    assert any(m["name"] == "plaus_loss" for m in RunDir(a2r.run_dir).metrics())
    teacher = run(resolve_run_config(base + ["debug=True", "model.save_outputs=True"]))
    saved = pl.read_parquet(RunDir(teacher.run_dir).path / "outputs" / "attrs_train.parquet")
    assert saved["choice"].to_list()[:5] == [0, 1, 2, 3, 4]
    fresh = run(resolve_run_config(base + ["debug=True", "model=fresh", f"data.fresh_exp_id={teacher.run_id}",
                                           "data.fresh_topk=50", "data.fresh_attr_algo=input-x-gradient"]))
    assert fresh.status == "completed" and fresh.metrics["test_suff_k100"] == 0.0


def test_a_classification_checkpoint_is_refused_on_multiple_choice(base, tiny_arch, small_demo_dir, tmp_path):
    demo = run(resolve_run_config([f"arch={tiny_arch}", f"data_dir={small_demo_dir}", "data.max_length=32",
                                   f"workspace={tmp_path}", "debug=True", "save_checkpoint=True"]))
    with pytest.raises(UnirexError, match="checkpoint is a classification model but dataset 'cose' is multiple choice"):
        run(resolve_run_config(base + ["training=evaluate", f"training.ckpt_path={demo.run_id}"]))
