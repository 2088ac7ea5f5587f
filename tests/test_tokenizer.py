import numpy as np
import pytest

from xtrimo.tokenizer import InvalidResidueError, ResidueTokenizer


def test_golden_ids():
    tok = ResidueTokenizer()
    assert tok.encode("LAGVSERTIDPKQNFYMHWCXBUZO.-").tolist() == list(range(1, 28))
    assert tok.encode_mlm("MKV").tolist() == [17, 12, 4, 34]
    assert [tok.token_to_id[t] for t in ("<pad>", "<mask>", "<gmask>", "<smask>", "<eod>", "<sop>", "<eop>", "<eos>", "<unk>")] == [
        0, 28, 29, 30, 31, 32, 33, 34, 35]
    assert tok.vocab_size == 128


def test_lower_case_and_decode():
    tok = ResidueTokenizer()
    assert np.array_equal(tok.encode("mkta"), tok.encode("MKTA"))
    assert tok.decode([17, 12, 34, 0, 29]) == "MK"
    assert tok.decode([17, 29], skip_special=False) == "M<gmask>"


def test_invalid_character_names_record_and_position():
    with pytest.raises(InvalidResidueError, match=r"invalid residue '1' at position 3 of record 'sp\|X'"):
        ResidueTokenizer().encode("MK1A", name="sp|X")


def test_batch_encode_pads():
    batch = ResidueTokenizer().batch_encode(["MKTAY", "MK"])
    assert batch.shape == (2, 6)
    assert batch[1].tolist() == [17, 12, 34, 0, 0, 0]
