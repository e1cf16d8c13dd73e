#!/usr/bin/python3
"""The perplexity of a text under a model, computed in Python from griffin's logits.

The text is read as one sequence from position 0 in chunks (Model.prefill with last_only=False); the
logits at each token predict the next. With a BOS token every text token is predicted and every byte
counts; a byte model has none, so its first byte is context only. This is how `griffin perplexity`
counts, so the two print the same bits/byte.

    /usr/bin/python3 examples/python/perplexity.py                       # the demo model on its held-out text
    /usr/bin/python3 examples/python/perplexity.py MODEL_DIR text.txt --chunk 256
"""

import argparse
import math
import pathlib
import sys
import time

import numpy as np

import griffin

ROOT = pathlib.Path(__file__).resolve().parents[2]


def log_softmax(rows):
    rows = rows.astype(np.float64)
    top = rows.max(axis=-1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=-1, keepdims=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=ROOT / "models" / "kjv-griffin")
    parser.add_argument("text", nargs="?", default=ROOT / "models" / "kjv-griffin" / "heldout.txt")
    parser.add_argument("--chunk", type=int, default=512, help="tokens per prefill call")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    model = griffin.load(args.model, threads=args.threads)
    if model.tokenizer is None:
        sys.exit(f"perplexity.py: {args.model} ships no tokenizer")
    text = pathlib.Path(args.text).read_text(encoding="utf-8")
    tokens = model.tokenizer.encode(text, bos=True)
    counted_bytes = len(text.encode("utf-8"))
    if model.tokenizer.bos_id < 0:
        counted_bytes -= len(model.tokenizer.decode(tokens[:1]).encode("utf-8"))
    if len(tokens) < 2:
        sys.exit("perplexity.py: the text needs at least two tokens")

    start = time.perf_counter()
    state = model.new_state()
    nats, inputs = 0.0, len(tokens) - 1
    for at in range(0, inputs, args.chunk):
        chunk = np.asarray(tokens[at:min(at + args.chunk, inputs)], dtype=np.int32)
        logp = log_softmax(model.prefill(state, chunk, last_only=False))  # [n, V]
        targets = np.asarray(tokens[at + 1:at + 1 + len(chunk)])
        nats -= logp[np.arange(len(chunk)), targets].sum()
    seconds = time.perf_counter() - start
    print(f"{args.text}: {len(text.encode('utf-8'))} bytes ({counted_bytes} counted), {len(tokens)} tokens, {inputs} predicted "
          f"({inputs / seconds:.0f} tokens/s)")
    print(f"nats/token {nats / inputs:.4f} · bits/byte {nats / math.log(2) / counted_bytes:.4f} · "
          f"perplexity {math.exp(nats / inputs):.3f} per token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
