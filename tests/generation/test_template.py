"""Template design by iterative MLM refinement."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtrimo.generation import Generator
from xtrimo.generation.template import _remask_count, parse_template
from xtrimo.tokenizer import STANDARD_RESIDUES, InvalidResidueError


@pytest.mark.parametrize("template", [
    "MKT????????GSSG??????LE", "?", "????A", "C?C?C?C", "ACDEFGHIKLMNPQRSTVWY?Y", "??????????????????????????????GG",
])
def test_fixed_positions_are_kept(checkpoint: Path, template: str) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    out = gen.design(template, num_sequences=5, seed=0, batch_size=2, temperature=1.5, ban="W")
    for s in out:
        assert len(s.sequence) == len(template)
        for t, c in zip(template, s.sequence):
            assert c == t if t != "?" else (c in STANDARD_RESIDUES and c != "W")
        assert s.mean_log_likelihood < 0


def test_design_is_deterministic_and_batch_invariant(checkpoint: Path) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    a = gen.design("MKT??????GS??E", 4, seed=2, batch_size=4)
    b = gen.design("MKT??????GS??E", 4, seed=2, batch_size=1)
    c = gen.design("MKT??????GS??E", 4, seed=3, batch_size=4)
    assert [s.sequence for s in a] == [s.sequence for s in b] != [s.sequence for s in c]


def test_remask_schedule_ends_at_zero() -> None:
    counts = [_remask_count(12, t, 5) for t in range(5)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 0 and counts[0] < 12


@pytest.mark.parametrize("template, error, message", [
    ("MKTAYIAK", ValueError, "has no '\\?' position to design"),
    ("", ValueError, "template is empty"),
    ("MK??J*?", InvalidResidueError, "'J' at position 5 of record 'template'"),
])
def test_bad_templates(template: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parse_template(template)
