import numpy as np
import pytest

from xtrimo.tokenizer import InvalidResidueError, ResidueTokenizer


def test_golden_ids():
    tok = ResidueTokenizer()
    assert tok.encode("LAGVSERTIDPKQNFYMHWCXBUZO.-").tolist() == list(range(1, 28))
    assert tok.encode_text("<gmask><sop><eos>M K V").tolist() == [29, 32, 34, 17, 12, 4]
    specials = ("<pad>", "<mask>", "<gmask>", "<smask>", "<eod>", "<sop>", "<eop>", "<eos>", "<unk>")
    assert [tok.token_to_id[t] for t in specials] == [0, 28, 29, 30, 31, 32, 33, 34, 35]
    assert tok.vocab_size == 128


def test_lower_case_and_decode():
    tok = ResidueTokenizer()
    assert np.array_equal(tok.encode("mkta"), tok.encode("MKTA"))
    assert tok.decode([17, 12, 34, 0, 29]) == "MK"
    assert tok.decode([17, 29], skip_special=False) == "M<gmask>"


def test_invalid_character_names_record_and_position():
    with pytest.raises(InvalidResidueError, match=r"invalid residue '1' at position 3 of record 'sp\|X'"):
        ResidueTokenizer().encode("MK1A", name="sp|X")


def test_read_batch_pads_in_each_mode():
    from xtrimo.model.layout import read_batch

    batch, first = read_batch(["MKTAY", "MK"], "mlm")
    assert first == 0 and batch.input_ids.shape == (2, 6)
    assert batch.input_ids[1].tolist() == [17, 12, 34, 0, 0, 0]
    batch, first = read_batch(["MKTAY", "MK"], "clm")
    assert first == 3 and batch.input_ids[1].tolist() == [29, 32, 34, 17, 12, 0, 0, 0]
    assert batch.position_ids[1].tolist() == [[0] * 8, [0, 1, 2, 3, 4, 0, 0, 0]] and int(batch.division[1]) == 0
    with pytest.raises(InvalidResidueError, match="unknown special token '<bos>'"):
        ResidueTokenizer().encode_text("<bos>M")
