"""Sharing through the Hugging Face Hub, offline: the dry-run folder, its model card, loading it back with
plain transformers and with unirex.load_checkpoint, the upload call (a substituted Hub client), the
snapshot_download resolution (a substituted download function) and every failure's message."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest
import torch

from unirex.checkpoint import CheckpointFiles, load_checkpoint, parse_hub_ref, resolve_checkpoint
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.hub import check_model_card, push_run, reproduce_overrides
from unirex.runs import RunDir

REPO = "someone/unirex-demo-slm"


#: the conftest's ``trained`` run: a debug SLM (plaus) run with a checkpoint and final dev + test metrics
TRAINED_OVERRIDES = ["debug=True", "save_checkpoint=True", "method=slm_plaus_linear", "training.eval_splits='dev,test'"]


@pytest.fixture(scope="module")
def dry(trained, tmp_path_factory):
    ws, res = trained
    out = tmp_path_factory.mktemp("dry") / "repo"
    result = push_run(res.run_id, REPO, license="apache-2.0", dry_run_dir=out, workspace=ws)
    return out, result


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _batch(small_demo_dir, tiny_arch, n=12):
    from unirex.data import load_split

    ds, _ = load_split(small_demo_dir, "demo", "test", arch=tiny_arch, max_length=64)
    return ds.collate([ds[i] for i in range(n)])


def test_dry_run_folder_is_a_complete_hub_repo(dry, trained, tiny_arch):
    out, result = dry
    assert result.dry_run and result.folder == out and result.repo_id == REPO
    names = set(result.files)
    assert names == {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "unirex/extractor.safetensors", "unirex/config.json", "unirex/checkpoint.json", "unirex/metrics.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert CheckpointFiles.find(out).layout == "hub"
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "NEG", "1": "POS"} and config["label2id"] == {"NEG": 0, "POS": 1}
    # no machine-local path leaks into the public run config
    ws, res = trained
    public = (out / "unirex" / "config.json").read_text()
    assert str(ws) not in public and str(Path(tiny_arch).parent) not in public
    assert json.loads(public)["arch"] == "./" + Path(tiny_arch).name
    assert json.loads(public)["workspace"] is None and json.loads(public)["data_dir"] is None


def test_card_parses_validates_offline_and_carries_the_runs_metrics(dry, trained):
    from huggingface_hub import ModelCard, metadata_load

    out, _ = dry
    ws, res = trained
    metrics = RunDir(res.run_dir).final_metrics()
    assert set(metrics) == {"dev", "test"}
    check = check_model_card(out / "README.md", metrics)
    assert check.splits == ["dev", "test"] and check.eval_results == 14  # 7 ERASER metrics x 2 splits
    meta = metadata_load(out / "README.md")
    assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
    assert {"unirex", "rationale-extraction"} <= set(meta["tags"]) and meta["datasets"] == ["unirex-demo"]
    assert "base_model" not in meta  # a local encoder folder is no Hub model
    results = {(r["dataset"]["split"], m["type"]): m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert results[("test", "accuracy")] == pytest.approx(metrics["test"]["acc"], abs=1e-6)
    assert results[("dev", "sufficiency")] == pytest.approx(metrics["dev"]["suff_aopc"], abs=1e-6)
    text = ModelCard.load(out / "README.md").text
    assert str(ws) not in text and "pytest-" not in text  # no local path in the public card
    assert "Task LM + SLM (plaus), linear head" in text and "python -m unirex data=demo model=expl_reg" in text
    assert f'unirex.load_checkpoint("{REPO}")' in text and "AutoModelForSequenceClassification" in text
    # a card whose model-index disagrees with the run, or without the project's tags, is refused
    with pytest.raises(UnirexError, match="model-index holds"):
        check_model_card(out / "README.md", {"test": {**metrics["test"], "acc": 0.123}})
    bad = (out / "README.md").read_text().replace("- rationale-extraction\n", "")
    with pytest.raises(UnirexError, match="tags lack"):
        check_model_card(bad)


def test_reproduce_line_recreates_the_config(trained):
    from unirex.checkpoint import read_checkpoint_config
    from unirex.config import expand_sweep, flatten, resolve_config
    from unirex.hub import reproduce_command

    ws, res = trained
    cfg = read_checkpoint_config(RunDir(res.run_dir).checkpoint_dir)
    line = reproduce_command(cfg)
    argv = shlex.split(line)[3:]  # python -m unirex ...
    assert argv == [a for a in argv if not a.startswith(("workspace=", "data_dir="))]
    runs = expand_sweep(argv)
    assert len(runs) == 1  # no accidental comma sweep
    again = flatten(resolve_config(runs[0]))
    want = {k: v for k, v in flatten(cfg).items() if k not in ("workspace", "data_dir", "work_dir")}
    assert {k: again[k] for k in want} == want
    assert reproduce_overrides(cfg)[:2] == ["data=demo", "model=expl_reg"]


def test_task_lm_loads_with_plain_transformers_and_predicts_the_same(dry, trained, small_demo_dir, tiny_arch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, _ = dry
    ws, res = trained
    model, _, _ = load_checkpoint(RunDir(res.run_dir).checkpoint_dir)
    model.eval()
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = _batch(small_demo_dir, tiny_arch)
    kw = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        ours = model(**kw)
        theirs = hf(**kw).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok("the acting was superb", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(hf(**enc).logits, model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), atol=1e-5)
    assert hf.config.id2label[int(theirs[0].argmax())] in ("NEG", "POS")


def test_extractor_explains_the_same_after_loading_from_the_dry_run_folder(dry, trained, small_demo_dir, tiny_arch):
    import unirex

    out, _ = dry
    ws, res = trained
    local = unirex.load_checkpoint(res.run_id, workspace=ws)
    shared = unirex.load_checkpoint(str(out))
    batch = _batch(small_demo_dir, tiny_arch)
    a, b = local.model.explain(batch), shared.model.explain(batch)
    assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-5)
    texts = ["the acting was superb but the plot was thin", "a dull film overall"]
    ea, eb = local.explain(texts), shared.explain(texts)
    for x, y in zip(ea, eb):
        assert x.words == y.words and x.label == y.label and x.label in ("NEG", "POS")
        assert x.scores == pytest.approx(y.scores, abs=1e-5) and len(x.scores) == len(x.words)
    assert shared.labels == ["NEG", "POS"] and shared.info["source_run"] == res.run_id


class FakeApi:
    """Records the calls a push makes; answers like HfApi would (or raises what it is told to)."""

    def __init__(self, fail: BaseException | None = None, fail_on: str = "create_repo"):
        self.calls: list[tuple[str, dict]] = []
        self.fail, self.fail_on = fail, fail_on
        self.uploaded: dict[str, str] | None = None

    def _maybe_fail(self, name):
        if self.fail is not None and name == self.fail_on:
            raise self.fail

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        self._maybe_fail("create_repo")
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kw}))
        self._maybe_fail("create_branch")

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        self._maybe_fail("upload_folder")
        self.uploaded = _digest(Path(kw["folder_path"]))
        self.card = (Path(kw["folder_path"]) / "README.md").read_text()

        class Info:
            commit_url = f"https://huggingface.co/{kw['repo_id']}/commit/abc"

        return Info()


def test_push_sends_the_dry_run_folder_with_the_right_arguments(dry, trained, monkeypatch):
    out, _ = dry
    ws, res = trained
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_123")
    before = _digest(res.run_dir)
    api = FakeApi()
    result = push_run(res.run_id, REPO, private=True, revision="v1", license="apache-2.0", api=api, workspace=ws)
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    create, branch, upload = (c[1] for c in api.calls)
    assert create == {"repo_id": REPO, "token": None, "private": True, "repo_type": "model", "exist_ok": True}
    assert branch["branch"] == "v1" and branch["exist_ok"] is True
    assert upload["repo_id"] == REPO and upload["revision"] == "v1" and upload["repo_type"] == "model"
    assert upload["token"] is None  # huggingface_hub resolves HF_TOKEN itself
    assert res.run_id in upload["commit_message"]
    assert api.uploaded == _digest(out)  # exactly the dry-run folder
    assert not Path(upload["folder_path"]).exists()  # the temporary folder is gone
    assert result.url.endswith("/commit/abc") and not result.dry_run and result.private
    # the token is nowhere on disk: not in the run folder, the uploaded card or the result
    assert _digest(res.run_dir) == before
    assert not any(b"hf_secret_token_123" in p.read_bytes() for p in Path(res.run_dir).rglob("*") if p.is_file())
    assert "hf_secret_token_123" not in api.card and "hf_secret_token_123" not in repr(result)


def _hub_error(kind: str):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    req = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    if kind == "offline":
        return OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled.")
    if kind == "network":
        return httpx2.ConnectError("[Errno -2] Name or service not known", request=req)
    if kind == "401":
        return HfHubHTTPError("401 Unauthorized", response=httpx2.Response(401, request=req))
    if kind == "403":
        return HfHubHTTPError("403 Forbidden", response=httpx2.Response(403, request=req))
    if kind == "missing":
        return RepositoryNotFoundError("404 Repository Not Found", response=httpx2.Response(404, request=req))
    raise ValueError(kind)


@pytest.mark.parametrize("kind,message", [
    ("offline", "offline mode"), ("network", "network failure"), ("401", "rejected the token"),
    ("403", "may not write there"),
])
def test_push_failures_give_one_line_messages_and_leave_the_run_alone(trained, monkeypatch, kind, message):
    ws, res = trained
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    before = _digest(res.run_dir)
    with pytest.raises(UnirexError, match=message) as e:
        push_run(res.run_id, REPO, api=FakeApi(_hub_error(kind)), workspace=ws)
    assert "\n" not in str(e.value) and REPO in str(e.value)
    assert _digest(res.run_dir) == before


def test_push_needs_a_token_a_good_repo_id_and_a_completed_run(trained, monkeypatch, tmp_path):
    ws, res = trained
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no cached login either
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    api = FakeApi()
    with pytest.raises(UnirexError, match="no Hugging Face token"):
        push_run(res.run_id, REPO, api=api, workspace=ws)
    assert api.calls == []
    for bad in ("no-namespace", "a/b/c", "user/bad..name", "/user", "user/"):
        with pytest.raises(UnirexError, match="repo id"):
            push_run(res.run_id, bad, api=api, workspace=ws)
    with pytest.raises(UnirexError, match="not a license identifier"):
        push_run(res.run_id, REPO, license="apache2", dry_run_dir=tmp_path / "x", workspace=ws)
    with pytest.raises(UnirexError, match="no run"):
        push_run("R-nope", REPO, dry_run_dir=tmp_path / "y", workspace=ws)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UnirexError, match="not empty"):
        push_run(res.run_id, REPO, dry_run_dir=tmp_path / "full", workspace=ws)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(UnirexError, match="inside the run folder"):
        push_run(res.run_id, REPO, dry_run_dir=Path(res.run_dir) / "outputs" / "repo", workspace=ws)
    # a run that did not complete is not pushed
    rd = RunDir(res.run_dir)
    status = (rd.path / "status.json").read_text()
    try:
        rd.set_status("failed", error="boom")
        with pytest.raises(UnirexError, match="is failed"):
            push_run(res.run_id, REPO, dry_run_dir=tmp_path / "z", workspace=ws)
    finally:
        (rd.path / "status.json").write_text(status)


def test_hub_repo_ids_resolve_through_snapshot_download(dry, trained, tmp_path, monkeypatch):
    out, _ = dry
    ws, res = trained
    calls = []

    def fake_download(**kw):
        calls.append(kw)
        return str(out)

    runs_root = Path(ws) / "runs"
    assert resolve_checkpoint(REPO, runs_root, download=fake_download) == out
    assert calls[-1] == {"repo_id": REPO, "revision": None, "allow_patterns": ["*.safetensors", "*.json", "*.txt"]}
    assert resolve_checkpoint(f"hf://{REPO}@v1", runs_root, download=fake_download) == out
    assert calls[-1]["revision"] == "v1"
    # a local folder of the same relative name wins over the Hub; ./ forces a local path
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "someone" / "unirex-demo-slm"
    local.parent.mkdir()
    import shutil

    shutil.copytree(RunDir(res.run_dir).checkpoint_dir, local)
    n = len(calls)
    assert resolve_checkpoint(REPO, runs_root, download=fake_download) == Path(REPO)
    assert len(calls) == n
    with pytest.raises(UnirexError, match="neither a checkpoint folder nor a run id"):
        resolve_checkpoint("./other/name", runs_root, download=fake_download)
    # a run id never goes to the Hub
    assert resolve_checkpoint(res.run_id, runs_root, download=fake_download) == runs_root / res.run_id / "checkpoint"
    assert len(calls) == n
    # training.ckpt_path=<repo> evaluates the downloaded checkpoint
    model, cfg, info = load_checkpoint(resolve_checkpoint(REPO + "@main", runs_root, download=lambda **kw: str(out)))
    assert info["source_run"] == res.run_id and cfg.model.explainer_type == "self_lm"


def test_hub_download_failures_and_foreign_repos_have_messages(tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kw):
        raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder ... outgoing traffic has been disabled.")

    with pytest.raises(UnirexError, match="offline mode"):  # conftest sets HF_HUB_OFFLINE=1
        resolve_checkpoint(REPO, tmp_path, download=offline)

    def unreachable(**kw):
        raise _hub_error("network")

    with pytest.raises(UnirexError, match="network failure"):
        resolve_checkpoint(REPO, tmp_path, download=unreachable)

    def missing(**kw):
        raise _hub_error("missing")

    with pytest.raises(UnirexError, match="no such Hub repo"):
        resolve_checkpoint(REPO, tmp_path, download=missing)
    plain = tmp_path / "plain-bert"
    plain.mkdir()
    (plain / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UnirexError, match="not a UNIREX checkpoint .* arch=someone/plain-bert"):
        resolve_checkpoint("someone/plain-bert", tmp_path, download=lambda **kw: str(plain))


def test_the_real_snapshot_download_is_offline_here_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UnirexError, match="offline mode|network failure") as e:
        resolve_checkpoint("someone/never-downloaded", tmp_path)
    assert "\n" not in str(e.value)


def test_hub_ref_parsing():
    assert parse_hub_ref("user/name").repo_id == "user/name"
    assert parse_hub_ref("user/name@dev").revision == "dev"
    assert parse_hub_ref("hf://org/model-1.0").repo_id == "org/model-1.0"
    for text in ("./user/name", "/abs/path", "~/x", "a/b/c", "name", "user/na..me", "user/name.git", "R-1/checkpoint/x"):
        assert parse_hub_ref(text) is None, text


def test_training_ckpt_path_evaluates_a_hub_checkpoint(dry, trained, small_demo_dir, monkeypatch, tmp_path):
    """training=evaluate training.ckpt_path=user/name: snapshot_download (substituted) gives the dry-run folder;
    the uploaded config's local arch is replaced by the repo's own task LM; the dev metrics are the run's."""
    import huggingface_hub

    out, _ = dry
    ws, res = trained
    seen = []

    def fake_snapshot_download(**kw):
        seen.append(kw)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    ev = run(resolve_run_config([f"workspace={tmp_path}", f"data_dir={small_demo_dir}", "training=evaluate",
                                 f"training.ckpt_path={REPO}", "training.eval_splits='dev'", "setup.eval_batch_size=16"]))
    assert ev.status == "completed" and seen and seen[0]["repo_id"] == REPO
    assert RunDir(ev.run_dir).config()["arch"] == str(out)  # the repo's task LM folder serves as the arch
    want = RunDir(res.run_dir).final_metrics()["dev"]
    for name in ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc"):
        assert ev.metrics[f"dev_{name}"] == pytest.approx(want[name], abs=1e-6), name


def test_push_subcommand_parser_as_the_cli_will_wire_it(trained, tmp_path, capsys):
    from cli import main, make_parser

    ws, res = trained
    argv = ["--workspace", str(ws), "push", "--run", res.run_id, "--repo-id", REPO, "--private",
            "--revision", "dev", "--license", "mit", "--dry-run", str(tmp_path / "out")]
    args = make_parser().parse_args(argv)
    assert (args.private, args.revision, args.license) == (True, "dev", "mit")
    assert main(argv) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    assert "license: mit" in (tmp_path / "out" / "README.md").read_text()
    parser = make_parser()
    assert parser.parse_args(["push", "--run", "r", "--repo-id", "a/b"]).license == "unknown"


# ------------------------------------------------------------------ no path of this machine in the upload
@pytest.fixture(scope="module")
def finetuned_push(tmp_path_factory, tiny_arch):
    """A finetuned run whose config names its parent by paths of this machine, pushed as a dry run, with HOME
    a recognisable folder that holds the workspace, the data folder and the arch. The child run spells the
    workspace through a symbolic link with a trailing slash (``training.ckpt_path``) and resolved
    (``model.exp_id``, a path-like exp id), so unresolved and resolved spellings are both in its config."""
    import shutil

    from unirex.data.demo import ensure_demo

    home = tmp_path_factory.mktemp("HOME-unirex-scrub-probe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        arch = home / "archs" / "tiny-bert-scrub"
        shutil.copytree(tiny_arch, arch)
        data = home / "datafolder-scrub"
        ensure_demo(data / "demo", sizes={"train": 32, "val": 16, "test": 16})
        ws = home / "ws-scrub"
        link = home / "ws-scrub-link"
        link.symlink_to(ws, target_is_directory=True)
        common = [f"arch={arch}", f"data_dir={data}", "data.max_length=64", "setup.train_batch_size=8",
                  "setup.eval_batch_size=16", "debug=True", "save_checkpoint=True", "training.eval_splits='dev,test'"]
        parent = run(resolve_run_config([*common, f"workspace={ws}", "method=slm_plaus_linear"]))
        assert parent.status == "completed"
        child = run(resolve_run_config([*common, f"workspace={link}/", "training=finetune",
                                        f"training.ckpt_path={link}/runs/{parent.run_id}/checkpoint/",
                                        f"model.exp_id={ws.resolve()}/runs/{parent.run_id}/"]))
        assert child.status == "completed"
        saved = json.loads((Path(child.run_dir) / "checkpoint" / "config.json").read_text())
        assert str(link) in saved["training"]["ckpt_path"] and str(ws) in saved["model"]["exp_id"]
        out = tmp_path_factory.mktemp("dry-scrub") / "repo"
        push_run(child.run_id, REPO, license="mit", dry_run_dir=out, workspace=ws)
        places = {"workspace": ws, "workspace link": link, "home": home, "data folder": data, "arch": arch,
                  "arch folder": arch.parent, "run folder": Path(child.run_dir),
                  "temporary root": tmp_path_factory.getbasetemp()}
    return out, parent, child, places


def _leaks(folder: Path, places: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``{file: {place: count}}`` of the spellings (as given, resolved) of ``places`` in the folder's text files."""
    found: dict[str, dict[str, int]] = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix != ".safetensors":
            text = f.read_text(encoding="utf-8")
            hits = {name: sum(text.count(s) for s in {str(p), str(Path(p).resolve())})
                    for name, p in places.items()}
            hits = {k: v for k, v in hits.items() if v}
            if hits:
                found[str(f.relative_to(folder))] = hits
    return found


def test_no_path_of_this_machine_in_any_uploaded_file(finetuned_push):
    out, parent, child, places = finetuned_push
    assert _leaks(out, places) == {}
    text = "\n".join(f.read_text(encoding="utf-8") for f in out.rglob("*") if f.is_file() and f.suffix != ".safetensors")
    assert "HOME-unirex-scrub-probe" not in text and "pytest-" not in text
    # the parent is named by its run id (what training.ckpt_path and model.exp_id accept in any workspace)
    card = (out / "README.md").read_text()
    assert f"training.ckpt_path={parent.run_id}/checkpoint" in card and f"model.exp_id={parent.run_id}" in card
    assert "arch=./tiny-bert-scrub" in card and "training.mode=finetune" in card


def test_scrubbed_card_and_config_still_describe_and_load_the_run(finetuned_push, small_demo_dir):
    import unirex
    from unirex.config import from_dict

    out, parent, child, places = finetuned_push
    metrics = RunDir(child.run_dir).final_metrics()
    check = check_model_card(out / "README.md", metrics)  # method, dataset and the run's metrics, all there
    assert check.splits == ["dev", "test"]
    card = (out / "README.md").read_text()
    assert "Task LM + SLM (plaus), linear head" in card and "data=demo" in card and child.run_id in card
    assert "No file names a folder of the machine that trained it" in card  # the card says what was left out
    public = json.loads((out / "unirex" / "config.json").read_text())
    assert public["workspace"] is None and public["data_dir"] is None and public["work_dir"] is None
    assert public["training"]["ckpt_path"] == f"{parent.run_id}/checkpoint" and public["model"]["exp_id"] == parent.run_id
    # what the config names the parent by still finds it in that workspace (the reproduce line works there)
    runs_root = places["workspace"] / "runs"
    assert resolve_checkpoint(public["training"]["ckpt_path"], runs_root) == runs_root / parent.run_id / "checkpoint"
    cfg = from_dict(public, validate=False)
    assert cfg.training.mode == "finetune" and cfg.arch == "./tiny-bert-scrub"
    shared = unirex.load_checkpoint(str(out))
    assert shared.info["source_run"] == child.run_id
    assert shared.explain("the acting was superb")[0].label in ("NEG", "POS")


def test_the_final_pass_covers_every_text_file_and_leaves_binaries_alone(tmp_path, monkeypatch):
    """One pass over the upload folder: a text file added later is scrubbed as the card is; a binary file is
    not touched; spellings with a trailing slash, through a link, under ``~`` and the resolved one all go."""
    from unirex.hub import scrub_upload_folder
    from unirex.localpaths import LocalPaths

    home = tmp_path / "HOME-scrub-unit"
    ws = home / "work space"  # a space in the name
    (ws / "runs" / "R-1" / "checkpoint").mkdir(parents=True)
    (home / "data").mkdir()
    (home / "enc").mkdir()
    link = tmp_path / "ws-link"
    link.symlink_to(ws, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    local = LocalPaths.of(workspace=link, data_dir=home / "data", run_dir=ws / "runs" / "R-1", arch="~/enc")
    folder = tmp_path / "repo"
    (folder / "extra").mkdir(parents=True)
    lines = {"a": f"{ws}/runs/R-1/checkpoint/", "b": f"{link.resolve()}/runs/R-1", "c": f"{link}/notes.txt",
             "d": "~/work space/x", "e": f"{home}/data/demo/train.jsonl", "f": str(home), "g": str(ws),
             "h": f"{tmp_path}/elsewhere/model", "i": f"{link}2/other", "j": f"{home}/enc/config.json",
             "k": f"{ws}/exports/t.csv", "l": "https://huggingface.co/user/name unirex/config.json"}
    (folder / "extra" / "notes.txt").write_text("\n".join(f"{k}={v}" for k, v in lines.items()))
    blob = b"\x00\x01" + str(ws).encode() + b"\xff"
    (folder / "model.safetensors").write_bytes(blob)
    (folder / "clean.json").write_text('{"a": 1}')
    assert scrub_upload_folder(folder, local) == ["extra/notes.txt"]
    text = (folder / "extra" / "notes.txt").read_text()
    assert str(home) not in text and str(tmp_path) not in text and "work space" not in text, text
    assert dict(line.split("=", 1) for line in text.splitlines()) == {
        "a": "R-1/checkpoint/", "b": "R-1", "c": "notes.txt", "d": "x", "e": "<data_dir>/demo/train.jsonl",
        "f": "~", "g": "<workspace>", "h": "./model", "i": "./other", "j": "./enc/config.json", "k": "exports/t.csv",
        "l": "https://huggingface.co/user/name unirex/config.json"}
    assert (folder / "model.safetensors").read_bytes() == blob and (folder / "clean.json").read_text() == '{"a": 1}'
    # a config value: a relative path that exists here is the folder it names; a Hub id or a run id stays
    monkeypatch.chdir(home)
    assert local.scrub_value("work space/runs/R-1/checkpoint/") == "R-1/checkpoint"
    assert local.scrub_value("../HOME-scrub-unit/enc") == "./enc"
    assert [local.scrub_value(v) for v in ("someone/model", "R-1", "R-1/checkpoint", "~")] == [
        "someone/model", "R-1", "R-1/checkpoint", "~"]
