"""griffin.convert: the reference's torch.save checkpoint to the Hugging Face layout.

The golden cases ship both forms of the same weights (reference.pt and the HF safetensors), so a
conversion must reproduce the HF files bit for bit. The rest checks that every bad input is refused with
a message naming what is wrong, and that a pickle naming anything but tensors never runs.
"""

import importlib.util
import json
import math
import pathlib
import pickle
import struct
import sys
import zipfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if importlib.util.find_spec("griffin") is None:
    sys.path.insert(0, str(ROOT / "python"))

from griffin import convert  # noqa: E402
from griffin._safetensors import load_file, read_header, save_file  # noqa: E402
from griffin._torch_zip import ConvertError, TorchCheckpoint  # noqa: E402

DATA = ROOT / "tests" / "data"
CASES = ["tiny-griffin", "tiny-hawk-bf16"]

# Logits are of order 10; the reference's own forward-vs-decode spread is 5e-6 (tests/data README).
LOGITS_TOLERANCE = 1e-4


# -- helpers ------------------------------------------------------------------------------------------------

def hf_checkpoint(directory):
    """{name: (dtype, array)} from one model.safetensors or the shards its index names."""
    directory = pathlib.Path(directory)
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    out = {}
    for f in files:
        infos, _, _ = read_header(directory / f)
        arrays = load_file(directory / f)
        for name, info in infos.items():
            assert name not in out, name
            out[name] = (info.dtype, arrays[name])
    return out


def run(capsys, *argv):
    """convert.main's exit code and its stderr."""
    code = convert.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_refused(capsys, argv, *fragments):
    code, err = run(capsys, *argv)
    assert code == 1, err
    assert err.startswith("griffin.convert: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def rewrite_zip(src, dst, drop=(), replace=None):
    """A copy of the zip `src` without the entries in `drop` and with `replace[name]` as new contents."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in replace.items():
            if name not in zin.NameToInfo:
                zout.writestr(name, data)


_STORAGE_OF = {"F32": "FloatStorage", "BF16": "BFloat16Storage", "F16": "HalfStorage", "I64": "LongStorage"}


def _unicode(s):
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n):
    return b"J" + struct.pack("<i", n)


def _tuple(items):
    return b"(" + b"".join(_int(n) for n in items) + b"t"


def write_state_dict_zip(path, tensors, byteorder=None, prefix="archive"):
    """A zip laid out as torch.save writes it, from {name: (dtype, array, stride or None)}.

    The pickle is assembled from opcodes (protocol 2, the ones torch emits) so that no torch is needed.
    A given stride stores the array's elements in that order, to exercise strided views.
    """
    pkl = b"\x80\x02}(" if tensors else b"\x80\x02}"
    storages = {}
    for key, (name, (dtype, array, stride)) in enumerate(tensors.items()):
        array = np.asarray(array)
        if stride is None:
            stride = tuple(int(math.prod(array.shape[i + 1:])) for i in range(array.ndim))
        numel = 1 + sum((n - 1) * s for n, s in zip(array.shape, stride)) if array.size else 0
        flat = np.zeros(numel, dtype=array.dtype)
        if array.size:
            np.lib.stride_tricks.as_strided(flat, array.shape, [s * array.itemsize for s in stride])[...] = array
        storages[str(key)] = flat.byteswap() if byteorder == "big" else flat
        pkl += _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        pkl += _unicode("storage") + f"ctorch\n{_STORAGE_OF[dtype]}\n".encode() + _unicode(str(key))
        pkl += _unicode("cpu") + _int(numel) + b"tQ" + _int(0) + _tuple(array.shape) + _tuple(stride)
        pkl += b"\x89ccollections\nOrderedDict\n)RtR"
    pkl += (b"u" if tensors else b"") + b"."
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        if byteorder:
            z.writestr(f"{prefix}/byteorder", byteorder)
        for key, flat in storages.items():
            z.writestr(f"{prefix}/data/{key}", flat.tobytes())
        z.writestr(f"{prefix}/version", "3\n")


def reference_tensors(case):
    """The reference checkpoint's tensors, {name: (dtype, array, None)}, for building variants of it."""
    with TorchCheckpoint(DATA / case / "reference.pt") as c:
        return {name: (t.dtype, c.load(name).copy(), None) for name, t in c.tensors.items()}


# -- the golden conversions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_conversion_reproduces_the_hugging_face_checkpoint(case, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(capsys, DATA / case / "reference.pt", out, "--config", DATA / case / "config.json")
    assert code == 0, err

    want, got = hf_checkpoint(DATA / case), hf_checkpoint(out)
    assert set(got) == set(want)
    for name, (dtype, array) in want.items():
        got_dtype, got_array = got[name]
        assert got_dtype == dtype, name
        assert got_array.shape == array.shape, name
        assert got_array.tobytes() == array.tobytes(), name  # bit for bit, BF16 bits included
    assert read_header(out / "model.safetensors")[1] == {"format": "pt"}

    golden = json.loads((DATA / case / "config.json").read_text())
    written = json.loads((out / "config.json").read_text())
    for key, value in golden.items():
        assert key in written, key
        if isinstance(value, float):
            assert written[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert written[key] == value, key


def test_the_config_may_leave_sizes_out(tmp_path, capsys):
    # Only the non-shape settings: the sizes, pattern and dtype come from the checkpoint.
    golden = json.loads((DATA / "tiny-griffin" / "config.json").read_text())
    sizes = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "head_dim", "lru_width", "conv1d_width", "block_types", "torch_dtype")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in golden.items() if k not in sizes}))
    code, err = run(capsys, DATA / "tiny-griffin" / "reference.pt", tmp_path / "out", "--config", partial)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == golden


def test_strided_and_big_endian_storages_are_read_as_torch_views_them(tmp_path, capsys):
    tensors = reference_tensors("tiny-griffin")
    # The embedding stored column-major (stride (1, V)), as a transposed tensor's storage would be.
    dtype, embedding, _ = tensors["embedder.input_embedding"]
    tensors["embedder.input_embedding"] = (dtype, embedding, (1, embedding.shape[0]))
    pt = tmp_path / "big.pt"
    write_state_dict_zip(pt, tensors, byteorder="big")
    code, err = run(capsys, pt, tmp_path / "out", "--config", DATA / "tiny-griffin" / "config.json")
    assert code == 0, err
    want, got = hf_checkpoint(DATA / "tiny-griffin"), hf_checkpoint(tmp_path / "out")
    assert all(got[n][1].tobytes() == want[n][1].tobytes() for n in want)


# -- the configuration --------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [("hidden_size", 256), ("lru_width", 128), ("num_attention_heads", 8),
                                        ("intermediate_size", 512), ("num_hidden_layers", 9), ("head_dim", 16),
                                        ("block_types", ["recurrent", "attention"])])
def test_a_config_that_disagrees_with_the_shapes_is_refused(key, value, tmp_path, capsys):
    config = json.loads((DATA / "tiny-griffin" / "config.json").read_text())
    config[key] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(config))
    err = assert_refused(capsys, [DATA / "tiny-griffin" / "reference.pt", tmp_path / "out", "--config", bad],
                         str(bad), key, json.dumps(value) if isinstance(value, list) else str(value))
    assert not (tmp_path / "out").exists(), err


@pytest.mark.parametrize("case", CASES)
def test_without_config_a_model_of_no_released_size_is_refused(case, tmp_path, capsys):
    assert_refused(capsys, [DATA / case / "reference.pt", tmp_path / "out"], "--config", "no released")


def test_the_released_sizes_give_the_released_config():
    # The 2B's shapes, without reading any weights: the inference and the table must agree.
    s = convert._Sizes(V=256000, D=2560, F=7680, E=2560, H=10, Dh=256, K=4,
                       block_types=tuple((["recurrent", "recurrent", "attention"] * 9)[:26]))
    config, origin = convert._choose_config("x.pt", s, "BF16", None)
    assert origin == "RecurrentGemma-2B"
    assert config["attention_window_size"] == 2048 and config["logits_soft_cap"] == 30.0
    assert config["intermediate_size"] == 15360 and config["torch_dtype"] == "bfloat16"
    assert config["block_types"] == ["recurrent", "recurrent", "attention"]


def test_the_block_pattern_is_its_shortest_period():
    assert convert._shortest_period(("recurrent",) * 4) == ["recurrent"]
    assert convert._shortest_period(("recurrent", "recurrent", "attention") * 2 + ("recurrent",) * 2) == \
        ["recurrent", "recurrent", "attention"]
    assert convert._shortest_period(("attention", "recurrent", "recurrent")) == \
        ["attention", "recurrent", "recurrent"]


# -- bad checkpoints ------------------------------------------------------------------------------------------

def convert_variant(tmp_path, capsys, tensors, *fragments):
    pt = tmp_path / "variant.pt"
    write_state_dict_zip(pt, tensors)
    return assert_refused(capsys, [pt, tmp_path / "out", "--config", DATA / "tiny-griffin" / "config.json"],
                          str(pt), *fragments)


def test_an_unexpected_tensor_is_refused(tmp_path, capsys):
    tensors = reference_tensors("tiny-griffin")
    tensors["blocks.1.recurrent_block.extra.weight"] = ("F32", np.zeros(3, np.float32), None)
    convert_variant(tmp_path, capsys, tensors, "blocks.1.recurrent_block.extra.weight")


def test_a_missing_tensor_is_refused(tmp_path, capsys):
    tensors = reference_tensors("tiny-griffin")
    del tensors["blocks.4.recurrent_block.rg_lru.a_gate.b"]
    convert_variant(tmp_path, capsys, tensors, "blocks.4.recurrent_block.rg_lru.a_gate.b", "missing")


def test_a_tensor_of_the_wrong_shape_is_refused(tmp_path, capsys):
    tensors = reference_tensors("tiny-griffin")
    tensors["blocks.3.recurrent_block.conv_1d.w"] = ("F32", np.zeros((4, 191), np.float32), None)
    convert_variant(tmp_path, capsys, tensors, "blocks.3.recurrent_block.conv_1d.w", "[4, 191]", "[4, 192]")


def test_an_integer_checkpoint_is_refused(tmp_path, capsys):
    tensors = {n: ("I64", a.astype(np.int64), None) for n, (_, a, _) in reference_tensors("tiny-griffin").items()}
    convert_variant(tmp_path, capsys, tensors, "I64")


def test_not_a_zip_is_refused(tmp_path, capsys):
    pt = tmp_path / "plain.pt"
    pt.write_bytes(pickle.dumps({"a": 1}))
    assert_refused(capsys, [pt, tmp_path / "out"], str(pt), "not a zip")


def test_a_zip_without_data_pkl_is_refused(tmp_path, capsys):
    pt = tmp_path / "no-pickle.pt"
    rewrite_zip(DATA / "tiny-griffin" / "reference.pt", pt, drop={"reference/data.pkl"})
    assert_refused(capsys, [pt, tmp_path / "out"], str(pt), "data.pkl")


def test_a_missing_storage_entry_is_refused(tmp_path, capsys):
    pt = tmp_path / "missing.pt"
    rewrite_zip(DATA / "tiny-griffin" / "reference.pt", pt, drop={"reference/data/7"})
    assert_refused(capsys, [pt, tmp_path / "out"], str(pt), "reference/data/7", "missing")


def test_a_truncated_storage_is_refused(tmp_path, capsys):
    src = DATA / "tiny-griffin" / "reference.pt"
    with zipfile.ZipFile(src) as z:
        whole = z.read("reference/data/0")
    pt = tmp_path / "truncated.pt"
    rewrite_zip(src, pt, replace={"reference/data/0": whole[: len(whole) // 2]})
    assert_refused(capsys, [pt, tmp_path / "out"], str(pt), "reference/data/0", "embedder.input_embedding",
                   "too short")


def test_a_view_past_the_end_of_its_storage_is_refused(tmp_path, capsys):
    tensors = reference_tensors("tiny-griffin")
    pt = tmp_path / "view.pt"
    write_state_dict_zip(pt, tensors)
    with zipfile.ZipFile(pt) as z:
        pkl = z.read("archive/data.pkl")
    # Start the first tensor (the embedding, all 65536 elements of its storage) one element in.
    shifted = pkl.replace(b"tQ" + _int(0), b"tQ" + _int(1), 1)
    bad = tmp_path / "view-bad.pt"
    rewrite_zip(pt, bad, replace={"archive/data.pkl": shifted})
    assert_refused(capsys, [bad, tmp_path / "out"], "embedder.input_embedding", "reaches element 65537")
    # A claim of fewer storage elements than the tensor has.
    shorter = pkl.replace(_unicode("cpu") + _int(65536), _unicode("cpu") + _int(65535), 1)
    rewrite_zip(pt, bad, replace={"archive/data.pkl": shorter})
    assert_refused(capsys, [bad, tmp_path / "out"], "embedder.input_embedding", "65535")


# -- the unpickler runs nothing ---------------------------------------------------------------------------------

def _malicious_pickles(marker):
    shell = f"touch {marker}"
    python = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        # Hand-assembled: GLOBAL os.system, the command, TUPLE1, REDUCE.
        "os.system": b"\x80\x02cos\nsystem\n" + _unicode(shell) + b"\x85R.",
        "builtins.eval": b"\x80\x02cbuiltins\neval\n" + _unicode(python) + b"\x85R.",
        # The same attack hidden as a state-dict value, after a legitimate key.
        "builtins.exec": b"\x80\x02}(" + _unicode("final_norm.scale") + b"cbuiltins\nexec\n" + _unicode(python) +
                         b"\x85Ru.",
    }


@pytest.mark.parametrize("callable_name", ["os.system", "builtins.eval", "builtins.exec"])
def test_a_pickle_that_calls_anything_else_is_refused_without_running_it(callable_name, tmp_path, capsys):
    marker = tmp_path / "ran"
    pkl = _malicious_pickles(marker)[callable_name]
    pt = tmp_path / "evil.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("evil/data.pkl", pkl)
        z.writestr("evil/version", "3\n")
    with pytest.raises(ConvertError, match=callable_name.replace(".", r"\.")):
        convert.convert(pt, tmp_path / "out")
    assert_refused(capsys, [pt, tmp_path / "out"], callable_name, "refused")
    assert not marker.exists()


def test_a_reduce_based_payload_is_refused(tmp_path):
    # What pickle.dumps of a __reduce__ payload produces: os.system pickles as posix.system on Linux.
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    pt = tmp_path / "evil.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"embedder.input_embedding": Payload()}, protocol=2))
    with pytest.raises(ConvertError, match="refused to load .*system"):
        convert.convert(pt, tmp_path / "out")
    assert not marker.exists()


# -- the output directory and the command line ------------------------------------------------------------------

def test_existing_model_files_are_kept_unless_forced(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors.index.json").write_text("{}")
    (out / "tokenizer.model").write_text("kept")
    args = [DATA / "tiny-griffin" / "reference.pt", out, "--config", DATA / "tiny-griffin" / "config.json"]
    assert_refused(capsys, args, "model.safetensors.index.json", "--force")
    code, err = run(capsys, *args, "--force")
    assert code == 0, err
    # A stale index would make loaders read shards instead of the new model.safetensors.
    assert not (out / "model.safetensors.index.json").exists()
    assert (out / "tokenizer.model").read_text() == "kept"
    assert not (out / "model.safetensors.partial").exists()


def test_help_describes_the_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "python3 -m griffin.convert IN.pt OUT_DIR" in text and "--config" in text and "--force" in text


def test_the_converter_imports_only_the_standard_library_and_numpy():
    # It must run where griffin._core is not built (and never needs torch).
    import ast
    allowed = set(sys.stdlib_module_names) | {"numpy", "griffin._safetensors", "griffin._torch_zip", "__future__"}
    for module in ("convert", "_torch_zip", "_safetensors"):
        tree = ast.parse((ROOT / "python" / "griffin" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                continue
            for name in names:
                assert name in allowed or name.split(".")[0] in sys.stdlib_module_names, (module, name)


# -- the safetensors module -----------------------------------------------------------------------------------

def test_safetensors_round_trip(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([0x3F80, 0x4000], np.uint16),
              "c": np.zeros((0, 4), np.float16), "d": np.array([[1, -2]], np.int32)}
    path = tmp_path / "t.safetensors"
    save_file(arrays, path, dtypes={"b": "BF16"})
    infos, metadata, start = read_header(path)
    assert metadata == {"format": "pt"} and start % 8 == 0
    assert {n: i.dtype for n, i in infos.items()} == {"a": "F32", "b": "BF16", "c": "F16", "d": "I32"}
    back = load_file(path)
    assert all(back[n].tobytes() == a.tobytes() and back[n].shape == a.shape for n, a in arrays.items())
    assert load_file(path, bf16="float32")["b"].tolist() == [1.0, 2.0]


def test_safetensors_reader_rejects_bad_offsets(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(12))
    with pytest.raises(ValueError, match="needs 16"):
        read_header(path)


# -- the converted directory runs (needs the compiled extension) ------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_the_converted_model_reproduces_the_golden_logits(case, tmp_path, capsys):
    import griffin  # needs the compiled core (ctest runs this file with it built)

    out = tmp_path / "out"
    code, err = run(capsys, DATA / case / "reference.pt", out, "--config", DATA / case / "config.json")
    assert code == 0, err
    golden = load_file(DATA / case / "golden.safetensors")
    tokens = np.ascontiguousarray(golden["tokens"], dtype=np.int32)
    model = griffin.load(str(out))
    logits = np.asarray(model.logits(tokens))
    assert logits.dtype == np.float32 and logits.shape == golden["logits"].shape
    assert np.max(np.abs(logits - golden["logits"])) <= LOGITS_TOLERANCE
