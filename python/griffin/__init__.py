"""griffin: Griffin, Hawk and RecurrentGemma on the CPU, from Python.

The engine is the header-only C++ library; this package is a thin layer over it (``griffin._core``).
NumPy arrays go in and out: token ids as any integer array, logits as float32 arrays the model writes
into directly. The GIL is released while the model runs, so Python threads with their own states run
in parallel (give each thread ``model.with_threads(n)`` for pools of their own).

    import griffin
    model = griffin.load("models/kjv-griffin")
    print(model.generate("And God said", max_tokens=60, temperature=0))
    logits = model.logits(np.array([[65, 110, 100]], dtype=np.int32))   # [1, 3, V]

Errors are exceptions with the library's messages: a checkpoint that cannot be read raises LoadError
(a ValueError) naming the file and tensor; bad input (a token out of range, an array of the wrong dtype
or shape, a state of another model) raises ValueError.
"""

import queue as _queue
import threading as _threading

try:
    from griffin._core import LoadError, Model, State, StateFileError, Tokenizer
    from griffin._core import load as _load
    from griffin._core import load_state as _load_state
except ImportError as _missing:
    # The pure-Python parts (griffin.convert) work without the compiled core; the model API says why it
    # is missing when first used.
    _core_error = _missing

    def __getattr__(name):
        if name in __all__:
            raise ImportError(f"griffin.{name} needs the compiled module griffin._core: {_core_error}") from _core_error
        raise AttributeError(f"module 'griffin' has no attribute {name!r}")

__all__ = ["load", "load_state", "Model", "State", "Tokenizer", "LoadError", "StateFileError"]


def load(path, weights=None, threads=0):
    """Loads a checkpoint directory in the Hugging Face layout (config.json and *.safetensors).

    weights: how to keep the matrices, "f32", "bf16" or "int8" (int8: one f32 scale per row, quantised
    at load); None keeps the type config.json's torch_dtype names. threads: the model's thread pool,
    0 = one per hardware thread. Raises LoadError naming what is wrong with the checkpoint.
    """
    return _load(path, weights, threads)


def load_state(model, path):
    """Reads a State saved by State.save (or `griffin generate --save-state`) for this model.

    Raises StateFileError (a ValueError) for a file that is not a state, is corrupted, or was saved from
    another model or checkpoint.
    """
    return _load_state(model, path)


def _stop_list(stop):
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    return list(stop)


def _generate(self, prompt, max_tokens=200, temperature=0.8, top_k=0, top_p=1.0, seed=None, stop=None,
              state=None):
    """Generates text after `prompt` and returns it (without the prompt).

    The prompt is read with BOS (when the tokenizer has one) into a fresh state, as `griffin generate`
    does; with `state` (a one-sequence State that has read earlier text) it continues that state, which is
    left after the last generated token. Sampling: temperature (0 = greedy), top_k (0 = all), top_p
    (1 = all), seed (None = a random one; the same seed gives the same text as `griffin generate --seed`).
    Generation stops after max_tokens tokens, at EOS, or where the text contains a `stop` string (a str
    or a list of them), which is cut off.
    """
    return self._generate(prompt, max_tokens, temperature, top_k, top_p, seed, _stop_list(stop), state,
                          None)["text"]


def _stream(self, prompt, max_tokens=200, temperature=0.8, top_k=0, top_p=1.0, seed=None, stop=None,
            state=None):
    """Like generate, but yields the text in pieces as the tokens are made.

    The model runs on a helper thread; closing the generator early (break, or .close()) stops it after
    the current token. The pieces join to exactly what generate returns for the same arguments.
    """
    pieces = _queue.Queue()
    stopped = _threading.Event()
    done = object()

    def on_text(text):
        pieces.put(text)
        return not stopped.is_set()

    def run():
        try:
            self._generate(prompt, max_tokens, temperature, top_k, top_p, seed, _stop_list(stop), state,
                           on_text)
            pieces.put(done)
        except BaseException as e:  # handed to the consumer, raised there
            pieces.put(e)

    worker = _threading.Thread(target=run, name="griffin.stream", daemon=True)
    worker.start()
    try:
        while True:
            item = pieces.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        worker.join()


if "_core_error" not in globals():
    Model.generate = _generate
    Model.stream = _stream
else:
    del load, load_state  # module __getattr__ explains that the core is missing
