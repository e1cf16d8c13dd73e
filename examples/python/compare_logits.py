#!/usr/bin/python3
"""Compares griffin's logits with a reference implementation's, and prints the worst error.

The reference file holds `tokens` (int [B, T]) and `logits` (float [B, T, V]) from one forward pass, and
optionally `prefill_len` (P) and `decode_logits` ([B, T-P, V]: tokens P… fed one at a time after a prompt
of P). It is a .safetensors file (as in tests/data/*/golden.safetensors) or a NumPy .npz.

    /usr/bin/python3 examples/python/compare_logits.py tests/data/tiny-griffin tests/data/tiny-griffin/golden.safetensors

Exits 1 when an error is above --tolerance (1e-4: a float32 implementation agrees to about 1e-5; logits
are of order 10).
"""

import argparse
import sys

import numpy as np

import griffin
from griffin._safetensors import load_file


def read_reference(path):
    if str(path).endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    return load_file(path, bf16="float32")


def worst(name, got, want):
    error = np.abs(got.astype(np.float64) - want.astype(np.float64))
    at = np.unravel_index(np.argmax(error), error.shape)
    print(f"{name:14s} worst |griffin - reference| = {error[at]:.3g} at {tuple(int(i) for i in at)} "
          f"(griffin {got[at]:.6f}, reference {want[at]:.6f}); mean {error.mean():.3g}")
    return float(error[at])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint directory (config.json, *.safetensors)")
    parser.add_argument("reference", help="the reference's .safetensors or .npz")
    parser.add_argument("--weights", choices=["f32", "bf16", "int8"], help="keep the matrices as (default: as stored)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    model = griffin.load(args.model, weights=args.weights)
    ref = read_reference(args.reference)
    tokens = ref["tokens"]
    print(f"{model!r}: tokens {tokens.shape}, vocabulary {model.vocab_size}")
    errors = [worst("logits", model.logits(tokens), ref["logits"])]
    if "decode_logits" in ref and "prefill_len" in ref:
        P = int(np.asarray(ref["prefill_len"]).reshape(-1)[0])
        state = model.new_state(tokens.shape[0])
        model.prefill(state, tokens[:, :P])
        steps = np.stack([model.decode(state, tokens[:, t]) for t in range(P, tokens.shape[1])], axis=1)
        errors.append(worst("decode_logits", steps, ref["decode_logits"]))
    ok = max(errors) <= args.tolerance
    print(f"{'within' if ok else 'ABOVE'} the tolerance {args.tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
