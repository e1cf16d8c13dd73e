"""griffin's Python API against the reference: every golden case through Model.logits and through
prefill + decode, generation against the CLI, states saved, loaded and forked, bad input refused with
the library's message, and Python threads sharing one model.

Run by ctest (tests/CMakeLists.txt) with PYTHONPATH=build/python and GRIFFIN_CLI naming the built CLI.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import griffin
from griffin import _core  # noqa: F401  (the compiled module must be there: no silent skip)
from griffin._safetensors import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DEMO = ROOT / "models" / "kjv-griffin"
CLI = pathlib.Path(os.environ.get("GRIFFIN_CLI", ROOT / "build" / "examples" / "griffin"))

# Logits are of order 10; the reference's own forward-vs-decode spread is 5e-6 (tests/data README), and a
# float32 implementation agrees to about 1e-5.
TOLERANCE = 1e-4
GOLDEN_CASES = ["tiny-griffin", "tiny-hawk-bf16", "tiny-mqa"]


def golden(case):
    return load_file(DATA / case / "golden.safetensors")


@pytest.fixture(scope="module")
def demo():
    return griffin.load(DEMO, threads=1)


@pytest.fixture(scope="module")
def tiny():
    return griffin.load(DATA / "tiny-griffin", threads=1)


# -- the reference's numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_logits_match_the_reference(case):
    g = golden(case)
    model = griffin.load(DATA / case)
    logits = model.logits(g["tokens"])
    assert logits.dtype == np.float32 and logits.shape == g["logits"].shape
    assert np.max(np.abs(logits - g["logits"])) <= TOLERANCE


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_prefill_then_decode_match_the_reference(case):
    g = golden(case)
    tokens, P = g["tokens"], int(g["prefill_len"][0])
    B, T = tokens.shape
    model = griffin.load(DATA / case)
    state = model.new_state(B)
    prompt = model.prefill(state, tokens[:, :P], last_only=False)
    assert prompt.shape == (B, P, model.vocab_size)
    assert np.max(np.abs(prompt - g["logits"][:, :P])) <= TOLERANCE
    steps = np.stack([model.decode(state, tokens[:, t]) for t in range(P, T)], axis=1)
    assert steps.shape == g["decode_logits"].shape
    assert np.max(np.abs(steps - g["decode_logits"])) <= TOLERANCE
    assert state.positions == [T] * B
    np.testing.assert_array_equal(state.logits, steps[:, -1])


def test_prefill_last_only_is_the_last_row_of_all(tiny):
    tokens = golden("tiny-griffin")["tokens"]
    last = tiny.prefill(tiny.new_state(tokens.shape[0]), tokens)
    np.testing.assert_array_equal(last, tiny.logits(tokens)[:, -1])


def test_any_integer_dtype_and_lists_give_the_same_logits(tiny):
    tokens = golden("tiny-griffin")["tokens"]
    want = tiny.logits(tokens)
    for dtype in (np.int64, np.uint16, np.int16):
        np.testing.assert_array_equal(tiny.logits(tokens.astype(dtype)), want)
    np.testing.assert_array_equal(tiny.logits(tokens.tolist()), want)
    np.testing.assert_array_equal(tiny.logits(tokens[0]), want[0])  # [T] → [T, V]
    np.testing.assert_array_equal(tiny.logits(np.asfortranarray(tokens)), want)


def test_weight_types_load_and_stay_close(tiny):
    tokens = golden("tiny-griffin")["tokens"][:, :16]
    want = tiny.logits(tokens)
    for weights, tolerance in (("bf16", 0.15), ("int8", 0.15)):
        model = griffin.load(DATA / "tiny-griffin", weights=weights)
        assert model.config["weights"] == weights
        assert np.max(np.abs(model.logits(tokens) - want)) <= tolerance


def test_config_lists_the_sizes_and_the_pattern(tiny):
    c = tiny.config
    assert (c["vocab_size"], c["width"], c["lru_width"], c["num_heads"], c["head_dim"]) == (512, 128, 192, 4, 32)
    assert c["mlp_width"] == 384 and c["depth"] == 6 and c["attention_window"] == 24
    assert c["block_types"] == ["recurrent", "recurrent", "attention"] * 2  # config.json's names
    assert c["rms_norm_eps"] == 1e-6 and c["logits_soft_cap"] == 30.0 and c["weights"] == "f32"


# -- generation ------------------------------------------------------------------------------------------------

def cli_generate(*args):
    out = subprocess.run([str(CLI), "generate", "--no-stats", "--no-echo", "--threads", "1", *args],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


@pytest.mark.parametrize("seed", [7, 2024])
def test_generate_matches_the_cli_for_the_same_seed(demo, seed):
    text = demo.generate("And God said", max_tokens=80, temperature=0.8, top_k=40, top_p=0.95, seed=seed)
    cli = cli_generate("-n", "80", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--seed", str(seed),
                       "And God said")
    assert len(text) > 40
    assert cli == (text if text.endswith("\n") else text + "\n")  # the CLI ends its output with a newline


def test_greedy_generation_and_stop_strings(demo):
    greedy = demo.generate("And God said", max_tokens=60, temperature=0)
    assert greedy == demo.generate("And God said", max_tokens=60, temperature=0, seed=99)
    assert greedy == cli_generate("--greedy", "-n", "60", "And God said").rstrip("\n")
    stop = greedy[10:14]
    cut = demo.generate("And God said", max_tokens=60, temperature=0, stop=[stop])
    assert cut == greedy[:greedy.index(stop)]


def test_stream_yields_the_pieces_of_generate(demo):
    pieces = list(demo.stream("And Moses", max_tokens=50, seed=3))
    assert len(pieces) > 5
    assert "".join(pieces) == demo.generate("And Moses", max_tokens=50, seed=3)
    stream = demo.stream("And Moses", max_tokens=500, seed=3)
    first = next(stream)
    stream.close()  # stops the generation thread after the current token
    assert first == pieces[0]


def test_stream_raises_the_libraries_error(demo):
    with pytest.raises(ValueError, match="top_p"):
        list(demo.stream("And", top_p=0))


def test_generate_continues_a_state_and_a_loaded_state(demo, tmp_path):
    state = demo.new_state()
    first = demo.generate("And God said", max_tokens=30, temperature=0, state=state)
    assert state.positions == [len("And God said") + 30]
    path = tmp_path / "s.bin"
    state.save(path)
    again = griffin.load_state(demo, path)
    assert again.positions == state.positions
    np.testing.assert_array_equal(again.logits, state.logits)
    more = demo.generate("", max_tokens=30, temperature=0, state=state)
    assert demo.generate("", max_tokens=30, temperature=0, state=again) == more
    whole = demo.generate("And God said", max_tokens=60, temperature=0)
    assert first + more == whole
    # the CLI continues the same file the same way
    assert cli_generate("--load-state", str(path), "--greedy", "-n", "30") == more + ("" if more.endswith("\n") else "\n")


def test_fork_continues_every_copy_like_the_original(tiny):
    tokens = golden("tiny-griffin")["tokens"]
    one = tiny.new_state()
    tiny.prefill(one, tokens[0, :20])
    many = one.fork(3)
    assert many.batch == 3 and many.positions == [20] * 3
    single = tiny.decode(one.copy(), int(tokens[0, 20]))
    batch = tiny.decode(many, np.full(3, tokens[0, 20]))
    for b in range(3):
        np.testing.assert_array_equal(batch[b], single)
    assert many.sequence(1).positions == [21]


def test_tokenizer_round_trip(demo):
    t = demo.tokenizer
    assert t.name == "bytes" and t.vocab_size == 256
    ids = t.encode("In the beginning")
    assert ids == list(b"In the beginning")
    assert t.decode(ids) == "In the beginning"
    assert griffin.load(DATA / "tiny-griffin").tokenizer is None


# -- bad input -------------------------------------------------------------------------------------------------

def test_a_token_out_of_range_is_refused(tiny):
    with pytest.raises(ValueError, match=r"token id 512 .*outside the vocabulary \[0, 512\)"):
        tiny.logits(np.array([[1, 2, 512]], dtype=np.int32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.logits([[1, -1]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.logits(np.array([[2**40]], dtype=np.int64))


def test_a_wrong_dtype_or_shape_is_refused(tiny):
    with pytest.raises(ValueError, match="integer token ids.*float"):
        tiny.logits(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="integer token ids"):
        tiny.logits(np.array([[True, False]]))
    with pytest.raises(ValueError, match=r"shape \(batch, T\) or \(T,\), got \(1, 2, 3\)"):
        tiny.logits(np.zeros((1, 2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="at least one token"):
        tiny.logits(np.zeros((1, 0), dtype=np.int32))
    state = tiny.new_state(2)
    with pytest.raises(ValueError, match=r"\(batch, T\) = \(2, T\).*got \(3, 4\)"):
        tiny.prefill(state, np.zeros((3, 4), dtype=np.int32))
    with pytest.raises(ValueError, match=r"one token per sequence.*\(2,\)"):
        tiny.decode(state, [1, 2, 3])
    assert state.positions == [0, 0]  # nothing was read


def test_a_state_of_another_model_is_refused(tiny, demo, tmp_path):
    with pytest.raises(ValueError, match="another model"):
        tiny.decode(demo.new_state(), 1)
    path = tmp_path / "demo.bin"
    state = demo.new_state()
    demo.prefill(state, [65, 66])
    state.save(path)
    with pytest.raises(griffin.StateFileError, match="another model"):
        griffin.load_state(tiny, path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated|corrupted"):
        griffin.load_state(demo, path)


def copy_checkpoint(tmp_path, case="tiny-hawk-bf16"):
    out = tmp_path / case
    shutil.copytree(DATA / case, out)
    return out


def test_a_bad_checkpoint_raises_load_error_naming_the_file_and_tensor(tmp_path):
    assert issubclass(griffin.LoadError, ValueError)
    with pytest.raises(griffin.LoadError, match="not a directory"):
        griffin.load(tmp_path / "nowhere")
    d = copy_checkpoint(tmp_path)
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(griffin.LoadError, match=r"model\.safetensors: tensor \"model\.final_norm\.weight\".*past the data section"):
        griffin.load(d)
    d2 = copy_checkpoint(tmp_path / "b")
    config = (d2 / "config.json").read_text().replace('"hidden_size": 64', '"hidden_size": 96')
    (d2 / "config.json").write_text(config)
    with pytest.raises(griffin.LoadError, match=r"model\.embed_tokens\.weight"):
        griffin.load(d2)
    d3 = copy_checkpoint(tmp_path / "c")
    (d3 / "config.json").write_text(config.replace('"hidden_size": 96', '"hidden_size": 64, "hiden_size": 64'))
    with pytest.raises(griffin.LoadError, match="hiden_size"):
        griffin.load(d3)
    with pytest.raises(ValueError, match="f32.*bf16.*int8"):
        griffin.load(DATA / "tiny-griffin", weights="q7")


def test_generate_without_a_tokenizer_says_why(tiny):
    with pytest.raises(ValueError, match="no tokenizer"):
        tiny.generate("x")


# -- threads ---------------------------------------------------------------------------------------------------

def test_threads_sharing_a_model_match_sequential_runs(tiny):
    tokens = golden("tiny-griffin")["tokens"]
    prompts = [tokens[j % 2, : 10 + 7 * j] for j in range(4)]

    def run(model, prompt):
        state = model.new_state()
        out = [model.prefill(state, prompt)]
        for _ in range(8):
            out.append(model.decode(state, int(np.argmax(out[-1]))))
        return np.stack(out)

    want = [run(tiny, p) for p in prompts]
    for shared in (True, False):
        got = [None] * len(prompts)

        def worker(j):
            got[j] = run(tiny if shared else tiny.with_threads(1), prompts[j])

        threads = [threading.Thread(target=worker, args=(j,)) for j in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for j in range(len(prompts)):
            np.testing.assert_array_equal(got[j], want[j])


def test_the_gil_is_released_while_the_model_runs(tiny):
    # A spinner thread counts while the main thread is inside one model call. The switch interval is raised
    # to 1 s so the interpreter never takes the GIL from a thread by force within the test: the spinner can
    # run during the call only if the call released the GIL (it gives it back at every sleep(0)). Held,
    # the count would not move at all until the call returned.
    tokens = np.tile(golden("tiny-griffin")["tokens"][0], 8)[None, :]  # 1 × 384 tokens
    tiny.logits(tokens)  # warm: the first call sizes the workspace
    done = threading.Event()
    count = [0]

    def spin():
        while not done.is_set():
            count[0] += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        before = count[0]
        tiny.logits(tokens)
        during = count[0] - before
    finally:
        done.set()
        spinner.join()
        sys.setswitchinterval(interval)
    assert during > 10


def test_a_state_in_use_by_a_running_call_is_refused_not_raced(demo):
    # The generation callback runs inside the call that holds the state, as another thread's call would be.
    state = demo.new_state()
    refused = []

    def on_text(text):
        for use in (lambda: demo.decode(state, 65), lambda: demo.prefill(state, [65]), state.copy, lambda: state.fork(2)):
            with pytest.raises(ValueError, match="in use by another thread"):
                use()
            refused.append(text)
        return False

    demo._generate("And God said", 5, 0.0, 0, 1.0, 1, [], state, on_text)
    assert len(refused) == 4
    assert state.positions == [len("And God said") + 1]  # the refused calls read nothing
    demo.decode(state, 65)  # free again once the call returned
