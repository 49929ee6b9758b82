import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission.arc.text import TextFormat, TokenizerError, check_tokenizer, parse_grid

FMT = TextFormat()


def test_golden_prompt_and_target():
    demos = [(np.array([[1, 2]], np.int8), np.array([[3], [4]], np.int8))]
    q = np.array([[5, 6], [7, 8]], np.int8)
    assert FMT.prompt(demos, q) == "I\n12\nO\n3\n4\n</s>I\n56\n78\nO\n"
    assert FMT.target(q) == "56\n78\n</s>"
    custom = TextFormat("in:", "out:", "<e>")
    assert custom.prompt(demos, q) == "in:\n12\nout:\n3\n4\n<e>in:\n56\n78\nout:\n"


@given(st.tuples(st.integers(1, 30), st.integers(1, 30))
       .flatmap(lambda s: arrays(np.int8, s, elements=st.integers(0, 9))))
def test_parse_roundtrip(g):
    assert np.array_equal(parse_grid(FMT.target(g), FMT.end_marker), g)
    assert np.array_equal(parse_grid(FMT.grid(g) + "</s>I\n99\n", "</s>"), g)  # text after the end is ignored


@pytest.mark.parametrize("text", ["", "\n", "</s>", "12\n3\n", "1a\n", "1 2\n", ("1" * 31 + "\n"),
                                  "1\n" * 31, "\n12\n", "١٢\n", "12\n\n34\n"])
def test_parse_rejects_non_grids(text):
    assert parse_grid(text, "</s>") is None


def test_parse_accepts_missing_final_newline():
    assert parse_grid("12\n34", None).tolist() == [[1, 2], [3, 4]]


class CharTokenizer:
    def __init__(self, merge=False, end="</s>"):
        self.merge, self.end = merge, end

    def encode(self, text, add_special_tokens=False):
        if text == self.end:
            return [99]
        if self.merge and "00" in text:
            return [50] * (len(text) - 1)
        return [ord(c) for c in text]


def test_tokenizer_check():
    ids = check_tokenizer(CharTokenizer(), FMT)
    assert ids["7"] == ord("7") and ids["\n"] == 10
    with pytest.raises(TokenizerError, match="merges digits"):
        check_tokenizer(CharTokenizer(merge=True))

    class Multi(CharTokenizer):
        def encode(self, text, add_special_tokens=False):
            return [1, 2] if text == "5" else super().encode(text)
    with pytest.raises(TokenizerError, match="'5'"):
        check_tokenizer(Multi())
    with pytest.raises(TokenizerError, match="end marker"):
        check_tokenizer(CharTokenizer(end="<eos>"), FMT)
