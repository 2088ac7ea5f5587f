import numpy as np
import pytest
import torch

from xtrimo.model.layers import round_rows
from xtrimo.model.layout import clm_sample, glm_sample, mlm_sample
from xtrimo.objectives import (GLM, IGNORE_INDEX, MLM, ObjectiveConfig, build_glm_sample, build_mlm_sample,
                               draw_kind, lm_loss)
from xtrimo.tokenizer import EOS_ID, GMASK_ID, MASK_ID, SOP_ID


def test_mlm_sample_rates():
    rng = np.random.default_rng(0)
    residues = rng.integers(1, 21, size=20_000)
    s = build_mlm_sample(residues, rng)
    picked = s.labels != IGNORE_INDEX
    assert picked.sum() == int(0.15 * len(residues))
    assert s.input_ids[-1] == EOS_ID and s.labels[-1] == IGNORE_INDEX
    assert np.array_equal(s.labels[picked], residues[picked[:-1]])
    changed = s.input_ids[:-1][picked[:-1]]
    frac_mask = (changed == MASK_ID).mean()
    frac_same = (changed == residues[picked[:-1]]).mean()
    assert frac_mask == pytest.approx(0.8, abs=0.02)
    assert frac_same == pytest.approx(0.1 + 0.1 / 27, abs=0.02)  # kept + random that hit the same residue
    assert s.division == len(s.input_ids) and s.kind == MLM
    assert np.array_equal(s.position_ids[0], np.arange(len(s))) and not s.position_ids[1].any()


def test_layouts_golden():
    s = glm_sample(np.array([5, 6, 7]), np.array([8, 9, EOS_ID]))
    assert s.input_ids.tolist() == [5, 6, 7, GMASK_ID, SOP_ID, 8, 9]
    assert s.labels.tolist() == [-100, -100, -100, -100, 8, 9, EOS_ID]
    assert s.position_ids[0].tolist() == [0, 1, 2, 3, 3, 3, 3]
    assert s.position_ids[1].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert s.division == 4
    s = clm_sample(np.array([5, 6, 7]))  # upstream's causal layout: <gmask> <sop> <eos> + residues
    assert s.input_ids.tolist() == [GMASK_ID, SOP_ID, EOS_ID, 5, 6, 7]
    assert s.labels.tolist() == [-100, -100, 5, 6, 7, EOS_ID]
    assert s.position_ids.tolist() == [[0] * 6, [0, 1, 2, 3, 4, 5]] and s.division == 0
    s = mlm_sample(np.array([5, 6, 7]))
    assert s.input_ids.tolist() == [5, 6, 7, EOS_ID] and s.division == 4
    assert s.position_ids.tolist() == [[0, 1, 2, 3], [0] * 4]


def test_glm_span_lengths():
    rng = np.random.default_rng(1)
    residues = np.arange(1, 28).repeat(2)[:41]  # length 41
    lengths = []
    for _ in range(300):
        s = build_glm_sample(residues, rng, min_gmask_ratio=0.5)
        g = int((s.labels != IGNORE_INDEX).sum()) - 1  # generated residues (without <eos>)
        lengths.append(g)
        assert s.kind == GLM and len(s) == 41 + 2
        prefix = 41 - g
        assert np.array_equal(s.input_ids[:prefix], residues[:prefix])
    assert min(lengths) == 21 and max(lengths) == 41


def test_curriculum_and_mixture():
    cfg = ObjectiveConfig(glm_prob=0.8, stage1_steps=10)
    rng = np.random.default_rng(0)
    assert all(draw_kind(rng, cfg, 5) == MLM for _ in range(200))
    kinds = [draw_kind(rng, cfg, 10) for _ in range(4000)]
    assert np.mean(kinds) == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ValueError, match="objective.glm_prob"):
        ObjectiveConfig(glm_prob=1.5)


def test_curriculum_transition_ramp():
    cfg = ObjectiveConfig(glm_prob=0.6, stage1_steps=7, transition_steps=3)
    shares = [cfg.glm_share(s) for s in range(5, 13)]
    assert shares == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.6, 0.6, 0.6])
    with pytest.raises(ValueError, match="objective.transition_steps"):
        ObjectiveConfig(transition_steps=-1)


def test_loss_breakdown():
    logits = torch.randn(2, 5, 128)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[1, 2], labels[1, 3] = 4, 5, 6
    loss, parts = lm_loss(logits, labels, torch.tensor([MLM, GLM]))
    ref = torch.nn.functional.cross_entropy(logits.view(-1, 128), labels.view(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, ref)
    assert parts["mlm_tokens"] == 1 and parts["glm_tokens"] == 2
    torch.testing.assert_close(parts["mlm_nll"] + parts["glm_nll"], ref * 3)
    selected, parts_sel = lm_loss(logits[labels != IGNORE_INDEX], labels, torch.tensor([MLM, GLM]))
    torch.testing.assert_close(selected, loss)  # [K, V] at the labelled positions: the same loss
    assert parts_sel == parts


def test_logits_only_at_labelled_positions_equal_full_logits():
    from xtrimo.config import ModelConfig
    from xtrimo.model.glm import XTrimoPGLM
    from xtrimo.model.layout import collate
    from xtrimo.objectives import build_mlm_sample

    torch.manual_seed(0)
    model = XTrimoPGLM(ModelConfig(num_layers=2, hidden_size=40, num_attention_heads=4, ffn_hidden_size=67))
    rng = np.random.default_rng(0)
    batch = collate([build_mlm_sample(np.arange(4, 4 + n) % 20 + 4, rng) for n in (131, 290, 97)])
    keep = batch.labels != IGNORE_INDEX
    full = model(batch)["logits"][keep]
    torch.testing.assert_close(model(batch, logits_at=keep)["logits"], full)
    # the trainer rounds the head's rows up like the token count (token_multiple): the filler rows are cut off
    model.token_multiple = 9
    assert round_rows(int(keep.sum()), 9) != int(keep.sum())  # the rounding is exercised
    torch.testing.assert_close(model(batch, logits_at=keep)["logits"], full)


def test_round_rows_bounds_filler_and_distinct_counts():
    counts = range(1, 20000)
    rounded = [round_rows(n, 1024) for n in counts]
    assert all(n <= r < n * 1.125 + 1 for n, r in zip(counts, rounded))
    assert round_rows(3350, 1024) == 3584 and round_rows(9000, 1024) == 9216 and round_rows(70000, 1024) == 70656
    assert len({r for r in rounded if 4096 <= r < 8192}) == 8  # 8 sizes per doubling
    assert [round_rows(n, 1) for n in (1, 7, 3351)] == [1, 7, 3351]


def test_glm_full_span_share():
    rng = np.random.default_rng(2)
    residues = np.arange(1, 28)[:25]
    empty = [build_glm_sample(residues, rng, 0.2, full_span_prob=0.3).division == 1 for _ in range(2000)]
    # division 1: only <gmask> precedes the span; the uniform draw of g in [5, 25] adds 0.7 / 21
    assert np.mean(empty) == pytest.approx(0.3 + 0.7 / 21, abs=0.03)
