"""Grid formats: golden texts from the anchors' code, render/parse/tokenizer round trips on every
family's stand-in tokenizer under D8 x colour transforms, the per-format tokenizer check."""

import subprocess
import sys

import numpy as np
import pytest

from submission.arc.augment import Transform
from submission.arc.data import parse_task
from submission.arc.formats import FORMATS, check_format_tokenizer, estimate_tokens, make_format, numpy_str
from submission.arc.prompts import build_prompts, fit_demos
from submission.arc.text import TokenizerError
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset

DEMOS = [(np.array([[1, 2]], np.int8), np.array([[3], [4]], np.int8))]
QUERY = np.array([[5, 6], [7, 8]], np.int8)
ANSWER = np.array([[8, 7], [6, 5]], np.int8)

GOLDEN = {  # (prompt, target) each anchor's code writes for DEMOS + QUERY -> ANSWER
    # this repository's TextFormat before formats existed (tests/test_text.py)
    "compact": ("I\n12\nO\n3\n4\n</s>I\n56\n78\nO\n", "87\n65\n</s>"),
    # 1ytic/NVARC ARC-AGI1/002_ivan_arc1.ipynb, arc_loader.py: QwenFormatter.fmt_train + fmt_query, fmt_reply
    "nvarc": (("<|im_start|>user\n12<|im_end|><|im_start|>assistant\n3\n4<|im_end|>"
               "<|im_start|>user\n56\n78<|im_end|><|im_start|>assistant\n"), "87\n65<|im_end|>"),
    # da-fr/Product-of-Experts-ARC-Paper finetune_NemoReArc1200.py fmt_opts through arc_loader.py fmt_task
    # ('train' + 'query', and 'reply'), with Mistral-NeMo's eos '</s>'
    "architects": ("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyzI12\n+/-=O3\n4\n</s>I56\n78\n+/-=O",
                   "87\n65\n</s>"),
    # ekinakyurek/marc test_time_train.py --new_format formatter (arclib/messagers.py
    # GPTTextMessageRepresenterV2) through the Llama-3 chat template (inference/preprocess.py
    # apply_chat_template, add_generation_prompt=True); the BOS is the tokenizer's
    "marc": (("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nFigure out the underlying "
              "transformation in the following examples and apply it to the test case. Here are some examples "
              "from this transformation, your answer must follow the format.\nThe input-output grids are "
              "provided as python arrays:\n[[1 2]] -> [[3]\n [4]]#<|eot_id|><|start_header_id|>user<|end_header_id|>"
              "\n\n[[5 6]\n [7 8]] -><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
             "[[8 7]\n [6 5]]#<|eot_id|>"),
}
BOS = {"marc": "<|begin_of_text|>"}


@pytest.mark.parametrize("name", FORMATS)
def test_golden_prompt_and_target(name):
    fmt = make_format(name)
    prompt, target = GOLDEN[name]
    assert BOS.get(name, "") + fmt.prompt(DEMOS, QUERY) == prompt
    assert fmt.target(ANSWER) == target
    assert np.array_equal(fmt.parse(target), ANSWER)


@pytest.mark.parametrize("name", FORMATS)
def test_render_spans_are_the_outputs(name):
    fmt = make_format(name)
    text, spans = fmt.render([*DEMOS, (QUERY, ANSWER)])
    prompt = fmt.prompt(DEMOS, QUERY)
    assert text.startswith(prompt + fmt.target(ANSWER))
    assert len(spans) == 2 and spans[-1] == (len(prompt), len(prompt) + len(fmt.target(ANSWER)))
    assert np.array_equal(fmt.parse(text[slice(*spans[0])].strip()), DEMOS[0][1])


def test_marc_training_text_ends_as_torchtune_writes_it():
    # the torchtune fork's Llama3Tokenizer.tokenize_messages appends <|end_of_text|> (no loss)
    # and unmask_outputs puts loss from after ' ->' through the demo's closing brackets
    text, spans = make_format("marc").render([*DEMOS, (QUERY, ANSWER)])
    assert text.endswith("[[8 7]\n [6 5]]#<|eot_id|><|end_of_text|>")
    assert text[slice(*spans[0])] == " [[3]\n [4]]#"


def test_numpy_str_is_numpy():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (1, 30), (30, 1), (30, 30), (7, 13)]:
        g = rng.integers(0, 10, (h, w)).astype(np.int8)
        assert numpy_str(g) == str(g) == str(g.astype(np.int64))


MALFORMED = {
    "compact": ["", "</s>", "12\n3\n", "1a\n", "1 2\n", "12\n\n34\n"],
    "nvarc": ["", "<|im_end|>", "12\n3", "1\n\n2", "[[1 2]]", "1" * 31],
    "architects": ["", "</s>", "12\n3\n</s>", "+/-=O", "1 2\n"],
    "marc": ["", "#", "[[1 2]\n [3]]#", "[[1 2] [3 4]]#", "[[1  2]]#", "[[12]]#", "12\n34\n", "[[1 a]]#",
             "[" + "\n ".join(["[1]"] * 31) + "]#", "[[" + " ".join("1" * 31) + "]]#", "[1 2]#"],
}


@pytest.mark.parametrize("name", FORMATS)
def test_parse_rejects_malformed_answers(name):
    fmt = make_format(name)
    for text in MALFORMED[name]:
        assert fmt.parse(text) is None, text


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """Each family's stand-in model folder and its tokenizer loaded back through AutoTokenizer."""
    from transformers import AutoTokenizer

    from submission.engines.tiny_model import write_tiny_model

    root = tmp_path_factory.mktemp("standins")
    out = {}
    for name in FORMATS:
        folder = write_tiny_model(root / name, preset=name, layers=1)
        out[name] = (folder, AutoTokenizer.from_pretrained(folder, local_files_only=True))
    return out


def test_round_trip_through_each_tokenizer_under_d8_and_colours(standins, task_json):
    task = parse_task("t", task_json)
    answer = np.array([[2, 0, 2]], np.int8)
    rng = np.random.default_rng(1)
    for name, (_, tok) in standins.items():
        fmt = make_format(name, eos=tok.eos_token)
        for d8 in range(8):
            t = Transform(d8, tuple(int(c) for c in rng.permutation(10)))
            demos = [(t(p.input), t(p.output)) for p in task.train]
            prompt, target = fmt.prompt(demos, t(task.test[0].input)), fmt.target(t(answer))
            ids = tok(prompt + target, add_special_tokens=True)["input_ids"]
            back = tok.decode(ids, skip_special_tokens=False)
            assert back == (tok.bos_token or "") + prompt + target, name
            assert np.array_equal(t.invert(fmt.parse(back[len(back) - len(target):])), answer), (name, d8)
            text, spans = fmt.render([*demos, (t(task.test[0].input), t(answer))])
            assert [fmt.parse(text[a:b].strip()) is not None for a, b in spans] == [True] * 4


def test_tokenizer_check_per_family(standins):
    for name, (_, tok) in standins.items():
        found = check_format_tokenizer(tok, make_format(name, eos=tok.eos_token))
        assert found.stop_ids == (tok.eos_token_id,) and len(set(found.cell_ids)) == 10
        assert set(found.cell_ids) < set(found.allowed_ids)
    nvarc = standins["nvarc"][1]  # exactly NVARC's answer vocabulary: 10 digits, newline, <|im_end|>
    assert check_format_tokenizer(nvarc, make_format("nvarc")).allowed_ids == tuple(range(11)) + (15,)


def test_marc_tokenizer_merges_digits_so_compact_refuses_it(standins):
    tok = standins["marc"][1]
    assert len(tok("0000000000", add_special_tokens=False)["input_ids"]) < 10  # Llama-3 style digit groups
    check_format_tokenizer(tok, make_format("marc"))
    with pytest.raises(TokenizerError, match="merges grid cells.*--preset marc"):
        check_format_tokenizer(tok, make_format("compact", eos=tok.eos_token))


def test_chat_templates_of_the_standins_render_like_the_formats(standins):
    nvarc, marc = standins["nvarc"][1], standins["marc"][1]
    turns = [{"role": "user", "content": "12"}, {"role": "assistant", "content": "3\n4"},
             {"role": "user", "content": "56\n78"}]
    assert nvarc.apply_chat_template(turns, tokenize=False, add_generation_prompt=True) == GOLDEN["nvarc"][0]
    fmt = make_format("marc")
    messages = [{"role": "system", "content": fmt.instruction + "[[1 2]] -> [[3]\n [4]]#\n"},
                {"role": "user", "content": "[[5 6]\n [7 8]] -> "}]  # GPTTextMessageRepresenterV2.encode
    assert marc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == GOLDEN["marc"][0]


@pytest.mark.parametrize("name", FORMATS)
def test_ttt_data_and_prompts_in_every_format(name, task_json):
    fmt = make_format(name)
    task = parse_task("t", task_json)
    for ex in build_ttt_dataset(task, TTTDataConfig(augmentations=3), fmt):
        assert len(ex.output_spans) == 3 and all(fmt.parse(ex.text[a:b].strip()) is not None
                                                 for a, b in ex.output_spans)
    prompts = build_prompts(task, 2, 2, fmt)
    assert prompts[0].text == fmt.prompt([(p.input, p.output) for p in task.train], task.test[0].input)
    full = fmt.cost([(p.input, p.output) for p in task.train], task.test[0].input)
    assert full >= estimate_tokens(prompts[0].text)  # room for the largest answer is on top
    assert fit_demos(task, (0, 1, 2), 0, full, fmt) == (0, 1, 2)
    assert len(fit_demos(task, (0, 1, 2), 0, full - 1, fmt)) == 2


PURE = r"""
import sys
for m in ("torch", "vllm", "unsloth", "transformers", "peft", "tokenizers"):
    sys.modules[m] = None
import numpy as np
from submission.arc import formats, prompts
from submission.arc.ttt import data as ttt_data
from submission.pipeline import presets
from submission.arc.data import load_challenges
task = load_challenges("arc1-eval").tasks["00576224"]
for name in formats.FORMATS:
    fmt = formats.make_format(name)
    ps = prompts.build_prompts(task, 2, 1, fmt)
    ex = ttt_data.build_ttt_dataset(task, ttt_data.TTTDataConfig(augmentations=1), fmt)
    assert fmt.parse(fmt.target(task.train[0].output)) is not None and ps and ex
print(",".join(str(presets.detect(p)) for p in sys.argv[1:]))
"""


def test_formats_and_presets_stay_pure(standins):
    folders = [str(standins[n][0]) for n in FORMATS]
    out = subprocess.run([sys.executable, "-c", PURE, *folders], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(FORMATS)
