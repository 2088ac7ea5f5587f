"""Ridge path vs sklearn, token-budget batching, pooling, the embedding cache and streaming."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from xtrimo.benchmarks import embed, probe
from xtrimo.benchmarks.backbones import BackboneConfig, OneHotBackbone, build_backbone
from xtrimo.data.batching import length_batches
from xtrimo.model.layout import ModelInput
from xtrimo.benchmarks.tasks import ProbeSpec


@pytest.mark.parametrize("n, d", [(41, 13), (13, 41)])  # primal and dual Gram matrix
def test_ridge_path_matches_sklearn(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    x[:, 3] = 1.0  # a constant column: weight exactly 0
    y = x @ rng.normal(size=d) + rng.normal(size=n)
    alphas = [0.01, 1.0, 17.0]
    for alpha, (w, b) in zip(alphas, probe.ridge_path(x, y, alphas)):
        ref = Ridge(alpha=alpha).fit(x, y)
        np.testing.assert_allclose(w, ref.coef_, atol=1e-8)
        assert b == pytest.approx(ref.intercept_, abs=1e-8)
        assert w[3] == 0.0


def test_regression_probe_selects_on_validation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 17))
    y = x[:, 0] * 2 + 0.1 * rng.normal(size=300)
    spec = ProbeSpec(alphas=[1e-3, 1e6])
    res = probe.fit_regression(spec, "spearman", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:])
    assert res.chosen == {"alpha": 1e-3} and res.value > 0.95


def test_classifier_probe_handles_missing_class() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 5))
    y = (x[:, 0] > 0).astype(int)
    spec = ProbeSpec(cs=[0.1, 1.0])
    res = probe.fit_classifier(spec, "accuracy", x[:60], y[:60], x[60:75], y[60:75], x[75:], y[75:])
    assert res.value > 0.8 and res.test_scores.shape == (15, 2)


def test_token_batches_respect_budget_and_cover_all() -> None:
    lengths = [13, 17, 5, 200, 17, 3, 40, 41]
    batches = length_batches(lengths, max_tokens=64, extra_tokens=1, descending=True)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        cost = len(b) * (max(lengths[i] for i in b) + 1)
        assert cost <= 64 or len(b) == 1  # a sequence over the budget goes alone


def test_pooling() -> None:
    per = OneHotBackbone().embed(["ACA", "WWY"])
    np.testing.assert_allclose(embed.pool(per, "mean")[0, :2], [2 / 3, 1 / 3])
    assert embed.pool(per, "flatten").shape == (2, 63)
    # TAPE's bag of tokens over <cls> A C A <sep>: every column (21 residue + 2 special) is a share of 5 tokens
    tape = embed.pool(OneHotBackbone().embed(["ACA", "WWYYYY"]), "tape")
    assert tape.shape == (2, 23)
    np.testing.assert_allclose(tape[0, :2], [2 / 5, 1 / 5])
    np.testing.assert_allclose(tape[:, -2:], [[1 / 5, 1 / 5], [1 / 8, 1 / 8]])
    np.testing.assert_allclose(tape.sum(axis=1), 1.0, rtol=1e-6)
    padded = embed.pool(OneHotBackbone().embed(["AC", "ACD"]), "flatten")
    assert padded.shape == (2, 63) and padded[0, 42:].sum() == 0 and padded[1, 42:].sum() == 1
    with pytest.raises(ValueError, match="unknown pooling"):
        embed.pool(padded, "max")


def test_xtrimo_embeddings_ignore_padding_and_eos(tiny_checkpoint: Path) -> None:
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    seqs = ["MKTAYIAKQRQIS", "MLSEGEWQLVLHVWAKVEA"]
    together = backbone.embed(seqs)
    alone = backbone.embed(seqs[:1])[0]
    assert together[0].shape == (13, 64) and together[1].shape == (19, 64)
    np.testing.assert_allclose(together[0], alone, atol=1e-5)


def test_layers_put_hidden_states_side_by_side(tiny_checkpoint: Path) -> None:
    seqs = ["MKTAYIAKQRQIS", "MLSEGEWQLVLHVWAKVEA"]
    cfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    several = build_backbone(replace(cfg, layers=[0, 1, -1]))
    assert several.dim == 3 * 64 and several.fingerprint.endswith("-L0,1,-1")
    feats = several.embed(seqs)
    for k, layer in enumerate([0, 1, -1]):
        alone = build_backbone(replace(cfg, layer=layer)).embed(seqs)
        for both, one in zip(feats, alone):
            np.testing.assert_allclose(both[:, k * 64 : (k + 1) * 64], one, atol=1e-6)
    # the embedding output differs from the last state; state 2 of a 2-block model is the final one
    assert not np.allclose(feats[0][:, :64], feats[0][:, 128:])
    np.testing.assert_allclose(build_backbone(replace(cfg, layer=2)).embed(seqs)[0], feats[0][:, 128:], atol=1e-6)
    with pytest.raises(ValueError, match=r"backbone.layer\(s\): 3 is out of range; .*hidden states 0..2"):
        build_backbone(replace(cfg, layers=[0, 3]))


def test_random_control_differs_and_is_reproducible(tiny_checkpoint: Path) -> None:
    cfg = BackboneConfig(name="random", checkpoint=str(tiny_checkpoint), seed=3)
    a, b = build_backbone(cfg), build_backbone(cfg)
    trained = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    seq = ["MKTAYIAKQRQIS"]
    np.testing.assert_allclose(a.embed(seq)[0], b.embed(seq)[0])
    assert not np.allclose(a.embed(seq)[0], trained.embed(seq)[0])
    assert a.fingerprint != trained.fingerprint and a.dim == trained.dim


def test_feature_cache_is_reused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    seqs = ["MKTAYIAKQRQIS", "MLSEGEWQLVLHVWAKVEA", "ACDEFGHIKLMNP"]
    first = embed.features(backbone, seqs, "mean", tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    backbone.embed = None  # a cache hit must not call the model
    np.testing.assert_array_equal(embed.features(backbone, seqs, "mean", tmp_path), first)
    per = embed.features(build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))), seqs,
                         "none", tmp_path)
    again = embed._read_cached(next(tmp_path.glob("*.npz")), "none")
    assert [p.shape for p in per] == [a.shape for a in again] == [(13, 64), (19, 64), (13, 64)]


def test_pooled_batch_by_batch_equals_pooling_all(tiny_checkpoint: Path) -> None:
    """Mean / tape features pooled as each batch is computed equal pooling the kept per-residue arrays."""
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint), layers=[0, -1]))
    seqs = ["MKTAYIAKQRQIS", "MLSEGEWQLVLHVWAKVEA", "ACDEFGHIKLMNP", "MK", "GSSGSSGWQLV"]
    per = embed.embed_residues(backbone, seqs, batch_tokens=40)
    for mode in ("mean", "tape"):
        np.testing.assert_allclose(embed.features(backbone, seqs, mode, batch_tokens=40), embed.pool(per, mode),
                                   atol=1e-6)


def test_stream_embeddings_shards_match_direct(tiny_checkpoint: Path, tmp_path: Path) -> None:
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    rng = np.random.default_rng(0)
    records = [(f"r{i}", "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=13 + 2 * (i % 3))))
               for i in range(11)]
    stats = embed.stream_embeddings(backbone, iter(records), tmp_path / "out", "mean", batch_tokens=48,
                                    shard_residues=50, progress=False)
    assert stats["records"] == 11 and stats["shards"] > 2
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    names, vecs = [], []
    for shard in index["shard_files"]:
        with np.load(tmp_path / "out" / shard["file"]) as z:
            names += z["names"].tolist()
            vecs.append(z["embeddings"])
    assert names == [n for n, _ in records]
    direct = embed.pool(backbone.embed([s for _, s in records]), "mean")
    np.testing.assert_allclose(np.concatenate(vecs), direct, atol=1e-5)


def test_token_budget_bounds_forward_batch(tiny_checkpoint: Path) -> None:
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    seen: list[int] = []
    original = backbone.model.forward

    def spy(inputs: ModelInput, **kw: object) -> dict:
        seen.append(inputs.input_ids.numel())
        return original(inputs, **kw)

    backbone.model.forward = spy
    embed.embed_residues(backbone, ["A" * 13] * 9 + ["C" * 17] * 4, batch_tokens=60)
    assert max(seen) <= 60 and len(seen) >= 4


def test_esm2_backbone_from_local_file(tmp_path: Path) -> None:
    """A tiny randomly initialised ESM-2 saved in fair-esm's checkpoint layout loads through the local loader."""
    import argparse

    esm = pytest.importorskip("esm")
    from esm.model.esm2 import ESM2

    model = ESM2(num_layers=2, embed_dim=64, attention_heads=4,
                 alphabet=esm.data.Alphabet.from_architecture("ESM-1b"), token_dropout=True)
    state = model.state_dict()
    cfg = argparse.Namespace(encoder_layers=2, encoder_embed_dim=64, encoder_attention_heads=4, token_dropout=True)
    path = tmp_path / "esm2_t2_tiny.pt"
    torch.save({"model": {f"encoder.{k}": v for k, v in state.items() if not k.startswith("contact_head")},
                "cfg": {"model": cfg}}, path)
    torch.save({"model": {k: v for k, v in state.items() if k.startswith("contact_head")}},
               tmp_path / "esm2_t2_tiny-contact-regression.pt")
    backbone = build_backbone(BackboneConfig(name="esm2", esm_file=str(path)))
    out = backbone.embed(["MKTAYIAKQRQIS", "MLSEGEWQLVLHVWAKVEA"])
    assert [o.shape for o in out] == [(13, 64), (19, 64)] and backbone.fingerprint.startswith("esm2-")
    np.testing.assert_allclose(out[0], backbone.embed(["MKTAYIAKQRQIS"])[0], atol=1e-5)
    with pytest.raises(ValueError, match="backbone.esm_file"):
        build_backbone(BackboneConfig(name="esm2", esm_file=str(tmp_path / "missing.pt")))


def test_memo_shares_embeddings_across_tasks(synthetic_dataset: str, tiny_checkpoint: Path) -> None:
    from xtrimo.benchmarks.runner import ProtocolConfig, run_task
    from xtrimo.benchmarks.tasks import DataSpec, TaskSpec

    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint)))
    calls: list[int] = []
    original = backbone.embed
    backbone.embed = lambda seqs: calls.append(len(seqs)) or original(seqs)
    memo: dict = {}
    bcfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    for problem, suffix in (("regression", ""), ("binary", "_cls")):  # same sequences, different labels
        data = DataSpec(dataset=synthetic_dataset, train=f"train{suffix}.csv.gz", valid=f"valid{suffix}.csv.gz",
                        test=f"test{suffix}.csv.gz")
        task = TaskSpec(name=problem, problem=problem, num_classes=2, metric="spearman" if suffix == "" else "accuracy",
                        data=data)
        assert run_task(task, bcfg, ProtocolConfig(seeds=[0]), None, backbone, memo)["status"] == "ok"
        if problem == "regression":
            first = sum(calls)
    assert first == len(memo) > 0 and sum(calls) == first  # the second task embedded nothing new
