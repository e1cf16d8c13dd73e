"""Converts the reference's PyTorch checkpoint (``.pt``) into the Hugging Face layout griffin loads.

Kaggle's RecurrentGemma downloads hold a ``torch.save`` of the reference model's ``state_dict`` and no
config.json; griffin reads ``config.json`` + ``model.safetensors``. This module renames and reshapes the
tensors as the spec describes ("The other download: the reference's PyTorch checkpoint"), infers every
size from the shapes, takes what shapes cannot tell (window, soft cap, ...) from the released
configuration of that size or from ``--config``, and writes the result one tensor at a time. It needs
neither torch nor griffin's compiled extension, and it never unpickles anything but tensors (see
``_torch_zip``).

    python3 -m griffin.convert IN.pt OUT_DIR [--config FILE] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from griffin._safetensors import SafetensorsError, TensorSpec, write_file
from griffin._torch_zip import ConvertError, TensorRef, TorchCheckpoint

__all__ = ["ConvertError", "ConvertResult", "RELEASES", "convert", "main"]

RECURRENT, ATTENTION = "recurrent", "attention"

_TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def _release(hidden_size, lru_width, heads, mlp_width, layers):
    """A released RecurrentGemma's Hugging Face config.json (the values of google/recurrentgemma-*)."""
    return {
        "architectures": ["RecurrentGemmaForCausalLM"],
        "model_type": "recurrent_gemma",
        "vocab_size": 256000,
        "hidden_size": hidden_size,
        "intermediate_size": 2 * mlp_width,  # HF's MLP width is intermediate_size / 2
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 1,
        "head_dim": hidden_size // heads,
        "lru_width": lru_width,
        "attention_window_size": 2048,
        "conv1d_width": 4,
        "logits_soft_cap": 30.0,
        "rms_norm_eps": 1e-06,
        "partial_rotary_factor": 0.5,
        "rope_theta": 10000.0,
        "block_types": [RECURRENT, RECURRENT, ATTENTION],
        "hidden_activation": "gelu_pytorch_tanh",
        "attention_bias": False,
        "embeddings_scale_by_sqrt_dim": True,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }


# The spec's "Released and paper configurations": only these two were published with weights.
RELEASES = {
    "RecurrentGemma-2B": _release(2560, 2560, 10, 7680, 26),
    "RecurrentGemma-9B": _release(4096, 4096, 16, 12288, 38),
}


# -- names ------------------------------------------------------------------------------------------------

# Reference suffixes within blocks.{i}, by the part of the block they belong to.
_COMMON = ("temporal_pre_norm.scale", "channel_pre_norm.scale",
           "mlp_block.ffw_up.w", "mlp_block.ffw_up.b", "mlp_block.ffw_down.weight", "mlp_block.ffw_down.bias")
_RECURRENT = tuple(f"recurrent_block.{s}" for s in (
    "linear_x.weight", "linear_x.bias", "linear_y.weight", "linear_y.bias", "linear_out.weight",
    "linear_out.bias", "conv_1d.w", "conv_1d.b", "rg_lru.a_param", "rg_lru.input_gate.w", "rg_lru.input_gate.b",
    "rg_lru.a_gate.w", "rg_lru.a_gate.b"))
_ATTENTION = tuple(f"attention_block.{s}" for s in (
    "proj_q.weight", "proj_k.weight", "proj_v.weight", "proj_final.weight", "proj_final.bias"))
_EMBEDDING, _FINAL_NORM = "embedder.input_embedding", "final_norm.scale"
_BLOCK_NAME = re.compile(r"blocks\.(0|[1-9][0-9]*)\.(.+)")


def _as_is(a):
    return a


def _conv_weight(w):
    # The reference's Conv1D weight is [K, E] (tap, channel); HF's depthwise nn.Conv1d wants [E, 1, K].
    return np.ascontiguousarray(w.T[:, None, :])


def _half(index, transpose):
    # ffw_up packs gate and up: w [2, D, F] (in, out; HF wants [out, in]) and b [2, 1, 1, F].
    def take(a):
        part = a[index]
        return np.ascontiguousarray(part.T if transpose else part.reshape(-1))
    return take


@dataclass(frozen=True)
class _Output:
    """One Hugging Face tensor: which reference tensor it comes from, and how."""

    name: str
    source: str
    shape: tuple[int, ...]
    transform: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Sizes:
    """What the shapes say, in the paper's letters (None where no tensor tells)."""

    V: int
    D: int
    F: int
    E: int | None
    H: int
    Dh: int | None
    K: int | None
    block_types: tuple[str, ...]


# -- reading the state dict ---------------------------------------------------------------------------------

def _block_types(path: str, names) -> tuple[str, ...]:
    """Checks the name set and returns each block's temporal-mixing type."""
    blocks: dict[int, set[str]] = {}
    for name in names:
        if name in (_EMBEDDING, _FINAL_NORM):
            continue
        m = _BLOCK_NAME.fullmatch(name)
        if not m or m.group(2) not in _COMMON + _RECURRENT + _ATTENTION:
            raise ConvertError(f"{path}: unexpected tensor {name} (not a name of the reference's Griffin model)")
        blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
    for name in (_EMBEDDING, _FINAL_NORM):
        if name not in names:
            raise ConvertError(f"{path}: tensor {name} is missing")
    if not blocks:
        raise ConvertError(f"{path}: no blocks.{{i}} tensors: not a Griffin checkpoint")
    types = []
    for i in range(max(blocks) + 1):
        held = blocks.get(i)
        if held is None:
            raise ConvertError(f"{path}: no tensors for blocks.{i}, though blocks.{max(blocks)} exists")
        has_r = any(s.startswith("recurrent_block.") for s in held)
        has_a = any(s.startswith("attention_block.") for s in held)
        if has_r and has_a:
            raise ConvertError(f"{path}: blocks.{i} holds both recurrent_block and attention_block tensors")
        if not has_r and not has_a:
            raise ConvertError(f"{path}: blocks.{i} holds neither recurrent_block nor attention_block tensors")
        expected = _COMMON + (_RECURRENT if has_r else _ATTENTION)
        for s in expected:
            if s not in held:
                raise ConvertError(f"{path}: tensor blocks.{i}.{s} is missing")
        types.append(RECURRENT if has_r else ATTENTION)
    return tuple(types)


def _infer_sizes(path: str, tensors: dict[str, TensorRef], types: tuple[str, ...]) -> _Sizes:
    def shape(name, ndim, letters):
        s = tensors[name].shape
        if len(s) != ndim:
            raise ConvertError(f"{path}: tensor {name} has shape {list(s)}, expected {ndim} dimensions [{letters}]")
        return s

    V, D = shape(_EMBEDDING, 2, "V, D")
    F = shape("blocks.0.mlp_block.ffw_up.w", 3, "2, D, F")[2]
    E = H = Dh = K = None
    if RECURRENT in types:
        r = f"blocks.{types.index(RECURRENT)}.recurrent_block"
        E = shape(f"{r}.linear_x.weight", 2, "E, D")[0]
        H = shape(f"{r}.rg_lru.input_gate.w", 3, "H, E/H, E/H")[0]
        K = shape(f"{r}.conv_1d.w", 2, "K, E")[0]
        if H == 0 or E % H:
            raise ConvertError(f"{path}: tensor {r}.rg_lru.input_gate.w has {H} blocks, which do not divide E = {E}")
    if ATTENTION in types:
        a = f"blocks.{types.index(ATTENTION)}.attention_block"
        Dh = shape(f"{a}.proj_k.weight", 2, "Dh, D")[0]  # one key/value head, as in every released model
        q_rows = shape(f"{a}.proj_q.weight", 2, "H*Dh, D")[0]
        if H is None:  # no recurrent block: the heads follow from q's rows
            if Dh == 0 or q_rows % Dh:
                raise ConvertError(f"{path}: tensor {a}.proj_q.weight has {q_rows} rows, not a multiple of "
                                   f"head_dim {Dh} (from proj_k)")
            H = q_rows // Dh
    return _Sizes(V, D, F, E, H, Dh, K, types)


def _outputs(s: _Sizes) -> list[_Output]:
    """Every Hugging Face tensor in file order, with the reference shape it is read from checked below."""
    out = [_Output("model.embed_tokens.weight", _EMBEDDING, (s.V, s.D), _as_is)]
    for i, kind in enumerate(s.block_types):
        b, h = f"blocks.{i}", f"model.layers.{i}"
        out.append(_Output(f"{h}.temporal_pre_norm.weight", f"{b}.temporal_pre_norm.scale", (s.D,), _as_is))
        if kind == RECURRENT:
            r, t, E, bw = f"{b}.recurrent_block", f"{h}.temporal_block", s.E, s.E // s.H
            for lin in ("linear_y", "linear_x"):
                out.append(_Output(f"{t}.{lin}.weight", f"{r}.{lin}.weight", (E, s.D), _as_is))
                out.append(_Output(f"{t}.{lin}.bias", f"{r}.{lin}.bias", (E,), _as_is))
            out += [
                _Output(f"{t}.linear_out.weight", f"{r}.linear_out.weight", (s.D, E), _as_is),
                _Output(f"{t}.linear_out.bias", f"{r}.linear_out.bias", (s.D,), _as_is),
                _Output(f"{t}.conv_1d.weight", f"{r}.conv_1d.w", (E, 1, s.K), _conv_weight),
                _Output(f"{t}.conv_1d.bias", f"{r}.conv_1d.b", (E,), _as_is),
                _Output(f"{t}.rg_lru.recurrent_param", f"{r}.rg_lru.a_param", (E,), _as_is),
                # The gates are [block, in, out] in both layouts: no transpose (spec "RG-LRU").
                _Output(f"{t}.rg_lru.input_gate_weight", f"{r}.rg_lru.input_gate.w", (s.H, bw, bw), _as_is),
                _Output(f"{t}.rg_lru.input_gate_bias", f"{r}.rg_lru.input_gate.b", (s.H, bw), _as_is),
                _Output(f"{t}.rg_lru.recurrent_gate_weight", f"{r}.rg_lru.a_gate.w", (s.H, bw, bw), _as_is),
                _Output(f"{t}.rg_lru.recurrent_gate_bias", f"{r}.rg_lru.a_gate.b", (s.H, bw), _as_is),
            ]
        else:
            a, t, HDh = f"{b}.attention_block", f"{h}.temporal_block", s.H * s.Dh
            out += [
                _Output(f"{t}.q_proj.weight", f"{a}.proj_q.weight", (HDh, s.D), _as_is),
                _Output(f"{t}.k_proj.weight", f"{a}.proj_k.weight", (s.Dh, s.D), _as_is),
                _Output(f"{t}.v_proj.weight", f"{a}.proj_v.weight", (s.Dh, s.D), _as_is),
                _Output(f"{t}.o_proj.weight", f"{a}.proj_final.weight", (s.D, HDh), _as_is),
                _Output(f"{t}.o_proj.bias", f"{a}.proj_final.bias", (s.D,), _as_is),
            ]
        m, mh = f"{b}.mlp_block", f"{h}.mlp_block"
        out += [
            _Output(f"{h}.channel_pre_norm.weight", f"{b}.channel_pre_norm.scale", (s.D,), _as_is),
            _Output(f"{mh}.gate_proj.weight", f"{m}.ffw_up.w", (s.F, s.D), _half(0, True)),
            _Output(f"{mh}.up_proj.weight", f"{m}.ffw_up.w", (s.F, s.D), _half(1, True)),
            _Output(f"{mh}.gate_proj.bias", f"{m}.ffw_up.b", (s.F,), _half(0, False)),
            _Output(f"{mh}.up_proj.bias", f"{m}.ffw_up.b", (s.F,), _half(1, False)),
            _Output(f"{mh}.down_proj.weight", f"{m}.ffw_down.weight", (s.D, s.F), _as_is),
            _Output(f"{mh}.down_proj.bias", f"{m}.ffw_down.bias", (s.D,), _as_is),
        ]
    out.append(_Output("model.final_norm.weight", _FINAL_NORM, (s.D,), _as_is))
    return out


def _source_shape(o: _Output, s: _Sizes) -> tuple[int, ...]:
    """The reference shape an output is read from: its own shape, except for the reshaped tensors."""
    if o.transform is _conv_weight:
        return (s.K, s.E)
    if o.source.endswith("ffw_up.w"):
        return (2, s.D, s.F)
    if o.source.endswith("ffw_up.b"):
        return (2, 1, 1, s.F)
    return o.shape


def _check_tensors(path: str, tensors: dict[str, TensorRef], outputs: list[_Output], s: _Sizes) -> str:
    """Every tensor's shape against the sizes, and one float dtype for all. Returns that dtype."""
    first = tensors[_EMBEDDING]
    if first.dtype not in _TORCH_DTYPE:
        raise ConvertError(f"{path}: tensor {_EMBEDDING} has dtype {first.dtype}; "
                           f"expected one of {', '.join(_TORCH_DTYPE)}")
    sizes = f"V {s.V}, D {s.D}, F {s.F}" + (f", E {s.E}, H {s.H}, K {s.K}" if s.E is not None else f", H {s.H}") + \
        (f", Dh {s.Dh}" if s.Dh is not None else "")
    for o in outputs:
        t = tensors[o.source]
        want = _source_shape(o, s)
        if t.shape != want:
            raise ConvertError(f"{path}: tensor {o.source} has shape {list(t.shape)}, expected {list(want)} "
                               f"(sizes from the shapes: {sizes})")
        if t.dtype != first.dtype:
            raise ConvertError(f"{path}: tensor {o.source} is {t.dtype} but {_EMBEDDING} is {first.dtype}; "
                               "mixed dtypes are not supported")
    return first.dtype


# -- the configuration --------------------------------------------------------------------------------------

def _shortest_period(types: tuple[str, ...]) -> list[str]:
    # HF semantics: layer i has block_types[i % len(block_types)].
    for p in range(1, len(types) + 1):
        if all(types[i] == types[i % p] for i in range(len(types))):
            return list(types[:p])
    raise AssertionError("unreachable: the whole sequence is a period")


def _inferred(s: _Sizes) -> dict[str, tuple[object, str]]:
    """Config keys the shapes determine, each with the tensor that says so (for messages)."""
    r = f"blocks.{s.block_types.index(RECURRENT)}.recurrent_block" if RECURRENT in s.block_types else None
    a = f"blocks.{s.block_types.index(ATTENTION)}.attention_block" if ATTENTION in s.block_types else None
    keys = {
        "vocab_size": (s.V, _EMBEDDING),
        "hidden_size": (s.D, _EMBEDDING),
        "intermediate_size": (2 * s.F, "blocks.0.mlp_block.ffw_up.w (twice F)"),
        "num_hidden_layers": (len(s.block_types), "the blocks.{i} present"),
        "num_attention_heads": (s.H, f"{r}.rg_lru.input_gate.w" if r else f"{a}.proj_q.weight"),
    }
    if r:
        keys["lru_width"] = (s.E, f"{r}.linear_x.weight")
        keys["conv1d_width"] = (s.K, f"{r}.conv_1d.w")
    if a:
        keys["head_dim"] = (s.Dh, f"{a}.proj_k.weight")
        keys["num_key_value_heads"] = (1, f"{a}.proj_k.weight (one key/value head)")
    return keys


def _layer_types(pattern, layers: int):
    return [pattern[i % len(pattern)] for i in range(layers)] if pattern else None


def _disagreement(config: dict, s: _Sizes, inferred, where: str) -> str | None:
    """The first key where ``config`` (called ``where``) contradicts the checkpoint, as a phrase; None if
    none does."""
    for key, (value, source) in inferred.items():
        got = config.get(key)
        if got is not None and (not isinstance(got, int) or isinstance(got, bool) or got != value):
            return f"{key} is {got!r} in {where} but {value!r} in the checkpoint (from {source})"
    for key in ("block_types", "_block_types"):
        pattern = config.get(key)
        if pattern is not None and (not isinstance(pattern, list) or
                                    _layer_types(pattern, len(s.block_types)) != list(s.block_types)):
            return (f"{key} is {json.dumps(pattern)} in {where} but the checkpoint's blocks repeat "
                    f"{json.dumps(_shortest_period(s.block_types))}")
    return None


def _read_config(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConvertError(f"{path}: cannot read the config: {e.strerror or e}") from None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: not JSON ({e})") from None
    if not isinstance(config, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return config


def _choose_config(pt_path: str, s: _Sizes, dtype: str, config_path: str | None) -> tuple[dict, str]:
    """The config.json to write, and where its non-shape values came from."""
    inferred = _inferred(s)
    if config_path is not None:
        config = _read_config(config_path)
        why = _disagreement(config, s, inferred, "the config")
        if why:
            raise ConvertError(f"{config_path}: {why}")
        origin = config_path
    else:
        closest = []
        for name, release in RELEASES.items():
            why = _disagreement(release, s, inferred, name)
            if why is None:
                config, origin = dict(release), name
                break
            closest.append(why)
        else:
            found = ", ".join(f"{k} {v}" for k, (v, _) in inferred.items())
            raise ConvertError(f"{pt_path}: the shapes ({found}) match no released RecurrentGemma "
                               f"({'; '.join(closest)}); pass --config FILE with this model's config.json")
    config = dict(config)
    # Sizes from the shapes fill what the config leaves out; the pattern is written in its shortest form.
    for key, (value, _) in inferred.items():
        if config.get(key) is None:
            config[key] = value
    config.pop("_block_types", None)
    config["block_types"] = _shortest_period(s.block_types)
    config["torch_dtype"] = _TORCH_DTYPE[dtype]
    if "dtype" in config:  # newer transformers' spelling of torch_dtype
        config["dtype"] = _TORCH_DTYPE[dtype]
    return config, origin


# -- writing ------------------------------------------------------------------------------------------------

# Files in OUT_DIR a conversion replaces. A stale index would make loaders read old shards instead.
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class ConvertResult:
    out_dir: Path
    tensors: int
    bytes: int
    dtype: str
    config_origin: str


def convert(pt_path, out_dir, config=None, force: bool = False) -> ConvertResult:
    """Converts ``pt_path`` into ``out_dir`` (config.json + model.safetensors). Raises ConvertError.

    Everything is checked before anything is written; the weights go to a temporary file that replaces
    ``model.safetensors`` only once complete.
    """
    pt_path, out = str(pt_path), Path(out_dir)
    config_path = None if config is None else str(config)
    if out.exists() and not out.is_dir():
        raise ConvertError(f"{out}: exists and is not a directory")
    existing = [f for f in _MODEL_FILES if (out / f).exists()]
    if existing and not force:
        raise ConvertError(f"{out}: already holds {', '.join(existing)}; pass --force to overwrite")

    with TorchCheckpoint(pt_path) as ckpt:
        types = _block_types(pt_path, ckpt.tensors)
        sizes = _infer_sizes(pt_path, ckpt.tensors, types)
        outputs = _outputs(sizes)
        dtype = _check_tensors(pt_path, ckpt.tensors, outputs, sizes)
        config_json, origin = _choose_config(pt_path, sizes, dtype, config_path)

        # Consecutive outputs often share a source (ffw_up gives two): keep the last one loaded.
        last: dict[str, np.ndarray] = {}

        def produce(o: _Output):
            def run():
                if o.source not in last:
                    last.clear()
                    last[o.source] = ckpt.load(o.source)
                return o.transform(last[o.source])
            return run

        specs = [TensorSpec(o.name, dtype, o.shape, produce(o)) for o in outputs]
        out.mkdir(parents=True, exist_ok=True)
        partial = out / "model.safetensors.partial"
        try:
            size = write_file(partial, specs, {"format": "pt"})
            os.replace(partial, out / "model.safetensors")
        except SafetensorsError as e:
            raise ConvertError(f"{pt_path}: {e}") from None
        finally:
            last.clear()
            if partial.exists():
                partial.unlink()

    if (out / "model.safetensors.index.json").exists():  # only reachable with force
        (out / "model.safetensors.index.json").unlink()
    (out / "config.json").write_text(json.dumps(config_json, indent=2) + "\n", encoding="utf-8")
    return ConvertResult(out, len(specs), size, dtype, origin)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="griffin.convert",
        usage="python3 -m griffin.convert IN.pt OUT_DIR [--config FILE] [--force]",
        description="Convert the reference RecurrentGemma/Griffin PyTorch checkpoint (a torch.save state dict, "
                    "as Kaggle ships it) into the Hugging Face layout griffin loads: OUT_DIR/config.json and "
                    "OUT_DIR/model.safetensors, in the checkpoint's dtype. Sizes and the block pattern are read "
                    "from the tensor shapes; the other settings (attention window, logits soft cap, ...) come from "
                    "the released RecurrentGemma-2B/9B configuration of the same size, or from --config. "
                    "Needs neither PyTorch nor griffin's compiled extension, and never runs code from the file.")
    parser.add_argument("checkpoint", metavar="IN.pt", help="the torch.save checkpoint (a zip holding data.pkl)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to write config.json and model.safetensors to")
    parser.add_argument("--config", metavar="FILE",
                        help="a config.json for this model; its sizes must agree with the checkpoint's shapes. "
                             "Required when the sizes match no released model.")
    parser.add_argument("--force", action="store_true",
                        help="overwrite config.json / model.safetensors (and remove a stale "
                             "model.safetensors.index.json) already in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        r = convert(args.checkpoint, args.out_dir, config=args.config, force=args.force)
    except ConvertError as e:
        print(f"griffin.convert: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"griffin.convert: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {r.out_dir / 'model.safetensors'} ({r.tensors} tensors, {r.dtype}, {r.bytes} bytes) and "
          f"config.json (settings from {r.config_origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
