import gzip
import itertools

import pytest
import torch

from xtrimo.data.batching import length_batches
from xtrimo.model.layout import collate
from xtrimo.data.fasta import FastaError, read_fasta
from xtrimo.data.pretrain import PretrainStream, StreamSpec, ValidationSet, unigram_log_probs
from xtrimo.data.registry import DataNotFoundError, dataset_path, resolve_data_file, verify
from xtrimo.objectives import ObjectiveConfig, build_mlm_sample

from tests.helpers import write_corpus
import numpy as np


def _write(path, text, gz=False):
    with (gzip.open if gz else open)(path, "wt") as fh:
        fh.write(text)
    return path


def test_fasta_plain_and_gzip(tmp_path):
    text = ">a desc\nMKT\nAY*\n>b\nmlse\n"
    for gz in (False, True):
        recs = list(read_fasta(_write(tmp_path / f"x{gz}.fa", text, gz)))
        assert [(r.name, r.sequence) for r in recs] == [("a", "MKTAY"), ("b", "mlse")]


@pytest.mark.parametrize("text,match", [
    ("", "empty file"),
    ("MKT\n>a\nMK\n", r":1: sequence data before"),
    (">a\n>b\nMK\n", r":1: record 'a' has no sequence"),
])
def test_fasta_errors_name_file_and_line(tmp_path, text, match):
    with pytest.raises(FastaError, match=match):
        list(read_fasta(_write(tmp_path / "bad.fa", text)))


def test_fasta_missing_file(tmp_path):
    with pytest.raises(FastaError, match="not found"):
        list(read_fasta(tmp_path / "nope.fa"))


def test_bucketing_respects_budget():
    rng = np.random.default_rng(0)
    samples = [build_mlm_sample(rng.integers(1, 21, size=int(n)), rng) for n in rng.integers(20, 300, size=200)]
    batches = [[samples[i] for i in g] for g in length_batches([len(s) for s in samples], 1024, rng=rng)]
    assert sum(len(b) for b in batches) == 200
    for b in batches:
        assert len(b) * max(len(s) for s in b) <= 1024 or len(b) == 1
    real = sum(len(s) for s in samples)
    padded = sum(len(b) * max(len(s) for s in b) for b in batches)
    assert 1 - real / padded < 0.1  # sorted buckets waste little on padding
    batch = collate(batches[0])
    assert batch.input_ids.shape == batch.labels.shape == batch.valid.shape
    assert batch.position_ids.shape[1] == 2


def _spec(files, **kw):
    return StreamSpec(tuple(files), max_length=kw.get("max_length", 64), max_tokens=512, shuffle_buffer=50,
                      bucket_pool=40, seed=3)


def _corpus(tmp_path, n=120):
    return write_corpus(tmp_path / "c.fa.gz", n, seed=0, min_len=21, max_len=150)


def test_stream_resume_replays_same_batches(tmp_path):
    spec, obj = _spec([str(_corpus(tmp_path))]), ObjectiveConfig(glm_prob=0.5)
    first = list(itertools.islice(iter(PretrainStream(spec, obj)), 30))
    resumed = list(itertools.islice(iter(PretrainStream(spec, obj, start_batch=17)), 13))
    for a, b in zip(first[17:], resumed):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    # the stream crosses epochs and crops to max_length
    assert int(first[-1].epoch) >= 1
    assert max(b.input_ids.shape[1] for b in first) <= 64


def test_curriculum_stage_boundary_holds_to_the_step(tmp_path):
    # one pool holds many batches: the switch must still happen at stage1_steps, not at the next pool
    spec = _spec([str(_corpus(tmp_path))])
    obj = ObjectiveConfig(glm_prob=1.0, stage1_steps=7)
    kinds = [set(b.kinds.tolist()) for b in itertools.islice(iter(PretrainStream(spec, obj)), 11)]
    assert kinds[:7] == [{0}] * 7 and kinds[7:] == [{1}] * 4
    accumulated = [set(b.kinds.tolist()) for b in itertools.islice(iter(PretrainStream(spec, obj, accumulate=2)), 16)]
    assert accumulated[:14] == [{0}] * 14 and accumulated[14:] == [{1}] * 2


def test_validation_is_deterministic_and_windowed(tmp_path):
    spec, obj = _spec([str(_corpus(tmp_path, 20))], max_length=40), ObjectiveConfig()
    a, b = list(ValidationSet(spec, obj)), list(ValidationSet(spec, obj))
    assert all(torch.equal(x.input_ids, y.input_ids) for x, y in zip(a, b))
    kinds = torch.cat([x.kinds for x in a])
    assert (kinds == 0).sum() == (kinds == 1).sum()  # both objectives on every window
    assert max(x.input_ids.shape[1] for x in a) <= 40


def test_unigram(tmp_path):
    f = _write(tmp_path / "u.fa", ">a\nAAL\n>b\nL\n")
    lp = unigram_log_probs((str(f),), 128)
    assert torch.exp(lp[2]) == pytest.approx(2 / 6, abs=1e-3)  # A: 2 of 4 residues + 2 <eos>


def test_registry_offline_copy(shared_data):
    folder = dataset_path("pretrain_corpus", download=False)
    assert (folder / "train.fasta.gz").is_file()
    assert verify("pretrain_corpus") == {"train.fasta.gz": True, "valid.fasta.gz": True}
    assert resolve_data_file("registry:pretrain_corpus/valid.fasta.gz") == folder / "valid.fasta.gz"


def test_registry_errors(tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="known: .*pretrain_corpus"):
        dataset_path("nope")
    monkeypatch.setenv("XTRIMO_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="no download of its own"):
        dataset_path("pretrain_corpus")
