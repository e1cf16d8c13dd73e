// griffin._core: the Python bindings (pybind11). Thin by design: each method converts its arguments,
// releases the GIL, and calls the header-only library; the Python package (python/griffin/__init__.py)
// re-exports these classes and adds what is easier in Python (Model.stream). Token arrays come in as any
// integer NumPy array or sequence; logits go out as float32 arrays the model wrote into directly.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "griffin/griffin.hpp"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace griffin::python {

// Text for Python: the tokenizer's bytes as str, any invalid UTF-8 replaced by U+FFFD (as the CLI prints it).
inline py::str utf8(std::string_view text) {
  PyObject* s = PyUnicode_DecodeUTF8(text.data(), py::ssize_t(text.size()), "replace");
  if (!s) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

// What a loaded model shares with every state made from it: the states keep it alive and name it.
struct LoadedModel {
  fs::path dir;
  std::string model_id;
  Model<> model;
  std::shared_ptr<const Tokenizer> tokenizer;  // null when the checkpoint ships none
  std::string no_tokenizer_reason;
};

using ModelPtr = std::shared_ptr<LoadedModel>;  // pybind11 holders cannot be shared_ptr<const T>; never mutated

class PyTokenizer {
 public:
  explicit PyTokenizer(std::shared_ptr<const Tokenizer> t) : t_(std::move(t)) {}
  std::vector<int> encode(const std::string& text, bool bos) const { return bos ? t_->encode_prompt(text) : t_->encode(text); }
  py::str decode(const std::vector<int>& ids) const {
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || std::size_t(ids[i]) >= t_->vocab_size())
        throw py::value_error("griffin: token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                              " is outside the tokenizer's vocabulary [0, " + std::to_string(t_->vocab_size()) + ")");
    return utf8(t_->decode(ids));
  }
  const Tokenizer& get() const { return *t_; }

 private:
  std::shared_ptr<const Tokenizer> t_;
};

class PyState {
 public:
  PyState(ModelPtr owner, State state, std::vector<float> next_logits = {})
      : owner_(std::move(owner)), state_(std::move(state)), next_logits_(std::move(next_logits)) {}
  PyState(const PyState& o) : owner_(o.owner_), state_(o.state_), next_logits_(o.next_logits_) {}
  PyState(PyState&& o) noexcept
      : owner_(std::move(o.owner_)), state_(std::move(o.state_)), next_logits_(std::move(o.next_logits_)) {}

  // Held while a call reads tokens into the state with the GIL released: a second thread using the same
  // state at once is refused rather than racing on it.
  class Use {
   public:
    explicit Use(PyState& s) : s_(s) {
      if (s_.in_use_.exchange(true))
        throw py::value_error("griffin: this state is in use by another thread (give each thread its own state, or fork one)");
    }
    ~Use() { s_.in_use_ = false; }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    PyState& s_;
  };

  const LoadedModel& owner() const { return *owner_; }
  const ModelPtr& shared_owner() const { return owner_; }
  State& state() { return state_; }
  const State& state() const { return state_; }
  std::size_t batch() const { return state_.batch_size(); }
  std::vector<std::int64_t> positions() const {
    std::vector<std::int64_t> p(batch());
    for (std::size_t b = 0; b < p.size(); ++b) p[b] = state_.position(b);
    return p;
  }
  // The next-token logits [B, V] of the last prefill, decode or generate, kept for save() and generate().
  std::vector<float>& next_logits() { return next_logits_; }
  const std::vector<float>& next_logits() const { return next_logits_; }

 private:
  ModelPtr owner_;
  State state_;
  std::vector<float> next_logits_;
  std::atomic<bool> in_use_{false};
};

namespace {

std::size_t vocab(const LoadedModel& m) { return m.model.config().sizes.vocab_size; }

// Token ids from a NumPy array or a (nested) sequence of ints: any integer dtype, checked to fit an int (the
// model then checks the vocabulary). Returns the ids and the array's shape.
std::pair<std::vector<int>, std::vector<std::size_t>> token_array(const py::handle& obj, const char* what) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::value_error(std::string("griffin: ") + what + " must be an integer array or a sequence of ints");
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::value_error(std::string("griffin: ") + what + " must hold integer token ids, got an array of dtype " +
                          py::str(a.dtype()).cast<std::string>());
  std::vector<std::size_t> shape(a.shape(), a.shape() + a.ndim());
  const auto wide = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  std::vector<int> ids(std::size_t(wide.size()));
  const std::int64_t* data = wide.data();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (data[i] < 0 || data[i] > std::numeric_limits<int>::max())
      throw py::value_error("griffin: token id " + std::to_string(data[i]) + " at flat index " + std::to_string(i) + " of " +
                            what + " is outside the vocabulary");
    ids[i] = int(data[i]);
  }
  if (kind == 'u' && a.dtype().itemsize() == 8) {  // uint64 beyond int64 would have wrapped in the cast above
    const auto u = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    for (py::ssize_t i = 0; i < u.size(); ++i)
      if (u.data()[i] > std::uint64_t(std::numeric_limits<int>::max()))
        throw py::value_error("griffin: token id " + std::to_string(u.data()[i]) + " of " + what + " is outside the vocabulary");
  }
  return {std::move(ids), std::move(shape)};
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

py::array_t<float> new_logits(std::vector<py::ssize_t> shape) { return py::array_t<float>(std::move(shape)); }

void check_owner(const LoadedModel& m, const PyState& s) {
  if (&s.owner() == &m) return;
  if (s.owner().model_id != m.model_id || !(s.state().shape() == m.model.new_state().shape()))
    throw py::value_error("griffin: this state belongs to another model (" + s.owner().model_id + ", this model is " +
                          m.model_id + ")");
}

ModelPtr load(const fs::path& dir, const std::optional<std::string>& weights, std::size_t threads) {
  LoadOptions options;
  options.threads = threads;
  if (weights) {
    if (*weights == "f32") options.weight_type = WeightType::f32;
    else if (*weights == "bf16") options.weight_type = WeightType::bf16;
    else if (*weights == "int8") options.weight_type = WeightType::int8;
    else throw py::value_error("griffin.load: weights must be \"f32\", \"bf16\" or \"int8\" (or None: as stored), not \"" + *weights + "\"");
  }
  if (!fs::is_directory(dir))
    throw io::LoadError(dir.string() + ": not a directory (a checkpoint is a directory holding config.json and *.safetensors)");
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string reason;
  try {
    tokenizer = load_tokenizer(dir);
  } catch (const TokenizerError& e) {
    reason = e.what();
  }
  auto model = load_model(dir, options);
  if (tokenizer && tokenizer->vocab_size() > model.config().sizes.vocab_size)
    throw io::LoadError(dir.string() + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                        " tokens but the model only " + std::to_string(model.config().sizes.vocab_size));
  return std::make_shared<LoadedModel>(LoadedModel{dir, checkpoint_id(dir), std::move(model), std::move(tokenizer), reason});
}

// The model's description as Python sees it: every field of the field table under its griffin name, the
// block type of each layer, the pattern's period and the weight type.
py::dict config_dict(const LoadedModel& m) {
  const auto& c = m.model.config();
  py::dict d;
  visit_fields([&](const auto& field) {
    using F = std::remove_cvref_t<decltype(field)>;
    if constexpr (std::is_same_v<F, SizeField>) d[py::str(std::string(field.name))] = c.sizes.*field.member;
    else if constexpr (std::is_same_v<F, NumberField>)  // 1e-06, not the float's 9.99999997e-07 as a double
      d[py::str(std::string(field.json_key))] = std::stod(detail::shortest(c.hyper.*field.member));
    else d[py::str(std::string(field.json_key))] = c.hyper.*field.member;
  });
  py::list layers;
  for (std::size_t i = 0; i < c.sizes.depth; ++i) layers.append(std::string(block_type_name(c.block_type(i))));
  d["block_types"] = layers;
  d["weights"] = std::string(weight_type_name(c.weight_type));
  return d;
}

// Logits rows of a prefill as an array: `rows` floats per sequence × tokens, shaped like the input.
py::array_t<float> prefill(const ModelPtr& m, PyState& s, const py::handle& tokens, bool last_only) {
  check_owner(*m, s);
  auto [ids, shape] = token_array(tokens, "tokens");
  const std::size_t B = s.batch(), V = vocab(*m);
  if (!(shape.size() == 2 && shape[0] == B) && !(shape.size() == 1 && B == 1))
    throw py::value_error("griffin: prefill takes tokens of shape (batch, T) = (" + std::to_string(B) +
                          ", T) for this state" + (B == 1 ? " (or (T,))" : "") + ", got " + shape_text(shape));
  const std::size_t T = shape.back();
  if (T == 0) throw py::value_error("griffin: prefill needs at least one token per sequence");
  const PyState::Use use(s);
  std::vector<py::ssize_t> out_shape;
  if (shape.size() == 2) out_shape.push_back(py::ssize_t(B));
  if (!last_only) out_shape.push_back(py::ssize_t(T));
  out_shape.push_back(py::ssize_t(V));
  py::array_t<float> out = new_logits(out_shape);
  float* data = out.mutable_data();
  {
    py::gil_scoped_release unlocked;
    m->model.prefill(s.state(), ids, std::span<float>(data, std::size_t(out.size())), last_only ? LogitsRows::last : LogitsRows::all);
    std::vector<float>& next = s.next_logits();
    next.resize(B * V);
    for (std::size_t b = 0; b < B; ++b)
      std::copy_n(data + (last_only ? b : b * T + T - 1) * V, V, next.data() + b * V);
  }
  return out;
}

py::array_t<float> decode(const ModelPtr& m, PyState& s, const py::handle& tokens) {
  check_owner(*m, s);
  auto [ids, shape] = token_array(tokens, "tokens");
  const std::size_t B = s.batch(), V = vocab(*m);
  if (!(shape.size() == 1 && shape[0] == B) && !(shape.empty() && B == 1))
    throw py::value_error("griffin: decode takes one token per sequence, an array of shape (" + std::to_string(B) +
                          ",)" + (B == 1 ? " or a single int" : "") + ", got " + shape_text(shape));
  std::vector<py::ssize_t> out_shape;
  if (!shape.empty()) out_shape.push_back(py::ssize_t(B));
  out_shape.push_back(py::ssize_t(V));
  py::array_t<float> out = new_logits(out_shape);
  float* data = out.mutable_data();
  const PyState::Use use(s);
  {
    py::gil_scoped_release unlocked;
    m->model.decode(s.state(), ids, std::span<float>(data, B * V));
    s.next_logits().assign(data, data + B * V);
  }
  return out;
}

py::array_t<float> logits(const ModelPtr& m, const py::handle& tokens) {
  auto [ids, shape] = token_array(tokens, "tokens");
  if (shape.size() != 1 && shape.size() != 2)
    throw py::value_error("griffin: logits takes tokens of shape (batch, T) or (T,), got " + shape_text(shape));
  const std::size_t B = shape.size() == 2 ? shape[0] : 1, T = shape.back(), V = vocab(*m);
  if (B == 0 || T == 0) throw py::value_error("griffin: logits needs at least one token per sequence, got " + shape_text(shape));
  std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
  out_shape.push_back(py::ssize_t(V));
  py::array_t<float> out = new_logits(out_shape);
  float* data = out.mutable_data();
  {
    py::gil_scoped_release unlocked;
    State state = m->model.new_state(B);
    m->model.prefill(state, ids, std::span<float>(data, B * T * V), LogitsRows::all);
  }
  return out;
}

const Tokenizer& tokenizer_of(const LoadedModel& m) {
  if (!m.tokenizer) throw py::value_error("griffin: this model has no tokenizer: " + m.no_tokenizer_reason);
  return *m.tokenizer;
}

// One generation, as the CLI's `griffin generate` runs it: the prompt with BOS into a fresh state (or, given
// a state that has read text, without BOS after it), EOS as a stop token. `on_text` (may be None) receives each
// piece of text; returning False stops. The state, if given, is left after the last generated token.
py::dict generate_text(const ModelPtr& m, const std::string& prompt, std::size_t max_tokens, float temperature,
                  std::size_t top_k, float top_p, std::optional<std::uint64_t> seed, const std::vector<std::string>& stop,
                  PyState* state, const py::object& on_text) {
  const Tokenizer& tokenizer = tokenizer_of(*m);
  GenerateOptions options;
  options.max_tokens = max_tokens;
  options.sampling.temperature = temperature;
  options.sampling.top_k = top_k;
  options.sampling.top_p = top_p;
  options.sampling.seed = seed ? *seed : std::random_device{}();
  options.sampling.validate();
  for (const std::string& s : stop)
    if (s.empty()) throw py::value_error("griffin: a stop string must not be empty");
  options.stop_strings = stop;
  if (tokenizer.eos_id() >= 0) options.stop_tokens.push_back(tokenizer.eos_id());

  std::optional<PyState> own;
  if (!state) own.emplace(m, m->model.new_state(1));
  PyState& s = state ? *state : *own;
  check_owner(*m, s);
  const PyState::Use use(s);
  if (s.batch() != 1) throw py::value_error("griffin: generate continues a state of one sequence, this one holds " + std::to_string(s.batch()));
  const bool fresh = s.state().position(0) == 0;
  const std::vector<int> tokens = fresh ? tokenizer.encode_prompt(prompt) : tokenizer.encode(prompt);
  if (tokens.empty() && s.next_logits().empty())
    throw py::value_error(fresh ? "griffin: generate needs a prompt (the tokenizer adds no BOS, so an empty prompt is nothing to continue from)"
                                : "griffin: the state has no next-token logits to continue from; give a prompt");

  TokenCallback callback;
  if (!on_text.is_none())
    callback = [&](int, std::string_view text) {
      if (text.empty()) return true;
      py::gil_scoped_acquire locked;
      py::object go = on_text(utf8(text));
      return go.is_none() || go.cast<bool>();
    };
  Generation g;
  {
    py::gil_scoped_release unlocked;
    g = tokens.empty() ? continue_generation(m->model, s.state(), tokenizer, s.next_logits(), {}, options, callback)
                       : griffin::generate(m->model, s.state(), tokenizer, tokens, options, callback);
    s.next_logits() = g.logits;
  }
  py::dict out;
  out["text"] = utf8(g.text);
  out["tokens"] = g.tokens;
  out["stop"] = std::string(stop_reason_name(g.stop));
  out["seed"] = options.sampling.seed;
  out["prompt_tokens"] = g.stats.prompt_tokens;
  out["prefill_seconds"] = g.stats.prefill_seconds;
  out["decode_seconds"] = g.stats.decode_seconds;
  return out;
}

}  // namespace
}  // namespace griffin::python

PYBIND11_MODULE(_core, m) {
  using namespace griffin;
  using namespace griffin::python;
  m.doc() = "griffin's compiled core; use the griffin package, which re-exports it.";

  // Errors keep the library's messages. A checkpoint that cannot be read is a LoadError (a ValueError);
  // bad input to a model (InputError, std::invalid_argument) is a plain ValueError.
  static py::exception<io::LoadError> load_error(m, "LoadError", PyExc_ValueError);
  static py::exception<SnapshotError> state_file_error(m, "StateFileError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const io::LoadError& e) {
      PyErr_SetString(load_error.ptr(), e.what());
    } catch (const ConfigError& e) {  // a config.json the model cannot be built from
      PyErr_SetString(load_error.ptr(), e.what());
    } catch (const SnapshotError& e) {
      PyErr_SetString(state_file_error.ptr(), e.what());
    } catch (const TokenizerError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<PyTokenizer>(m, "Tokenizer", "The checkpoint's tokenizer (SentencePiece, or bytes for byte-level models).")
      .def("encode", &PyTokenizer::encode, py::arg("text"), py::arg("bos") = false,
           "Text to token ids; with bos=True the BOS token comes first when the tokenizer has one (as a prompt at position 0).")
      .def("decode", &PyTokenizer::decode, py::arg("tokens"), "Token ids to text (invalid UTF-8 becomes U+FFFD).")
      .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.get().vocab_size(); })
      .def_property_readonly("name", [](const PyTokenizer& t) { return std::string(t.get().name()); })
      .def_property_readonly("bos_id", [](const PyTokenizer& t) { return t.get().bos_id(); }, "BOS's id, or -1.")
      .def_property_readonly("eos_id", [](const PyTokenizer& t) { return t.get().eos_id(); }, "EOS's id, or -1.");

  py::class_<PyState>(m, "State",
                      "What a model has read, for each of `batch` sequences: the recurrences' states, the attention "
                      "caches, the positions and the last next-token logits. Made by Model.new_state or griffin.load_state.")
      .def_property_readonly("batch", &PyState::batch, "The number of sequences.")
      .def_property_readonly("positions", &PyState::positions, "Tokens each sequence has read.")
      .def_property_readonly(
          "logits",
          [](PyState& s) -> py::object {
            const PyState::Use use(s);
            if (s.next_logits().empty()) return py::none();
            const std::size_t V = vocab(s.owner());
            py::array_t<float> a({py::ssize_t(s.batch()), py::ssize_t(V)});
            std::copy(s.next_logits().begin(), s.next_logits().end(), a.mutable_data());
            return a;
          },
          "The next-token logits [batch, V] after the last call that read tokens, or None.")
      .def(
          "save",
          [](PyState& s, const fs::path& path) {
            const PyState::Use use(s);
            py::gil_scoped_release unlocked;
            write_snapshot(path, s.state(), s.next_logits(), s.owner().model_id);
          },
          py::arg("path"),
          "Writes the state (with its next-token logits) to a file that griffin.load_state and `griffin generate "
          "--load-state` read.")
      .def(
          "fork",
          [](PyState& s, std::size_t n) {
            const PyState::Use use(s);
            if (s.batch() != 1) throw py::value_error("griffin: fork copies a state of one sequence, this one holds " + std::to_string(s.batch()));
            if (n == 0) throw py::value_error("griffin: fork needs n >= 1");
            std::vector<float> logits;
            for (std::size_t i = 0; i < n; ++i) logits.insert(logits.end(), s.next_logits().begin(), s.next_logits().end());
            return PyState(s.shared_owner(), broadcast(s.state(), n), std::move(logits));
          },
          py::arg("n"), "A state of n sequences, each a copy of this one-sequence state (read a prompt once, continue it n ways).")
      .def(
          "sequence",
          [](PyState& s, std::size_t i) {
            const PyState::Use use(s);
            if (i >= s.batch()) throw py::index_error("griffin: sequence " + std::to_string(i) + " of a state of " + std::to_string(s.batch()));
            const std::size_t V = vocab(s.owner());
            std::vector<float> logits;
            if (!s.next_logits().empty()) logits.assign(s.next_logits().begin() + i * V, s.next_logits().begin() + (i + 1) * V);
            return PyState(s.shared_owner(), extract_sequence(s.state(), i), std::move(logits));
          },
          py::arg("i"), "A one-sequence copy of sequence i.")
      .def("copy", [](PyState& s) { const PyState::Use use(s); return PyState(s); }, "An independent copy.")
      .def("__copy__", [](PyState& s) { const PyState::Use use(s); return PyState(s); })
      .def("__deepcopy__", [](PyState& s, py::dict) { const PyState::Use use(s); return PyState(s); })
      .def("__repr__", [](const PyState& s) {
        std::string p;
        for (std::int64_t x : s.positions()) p += (p.empty() ? "" : ", ") + std::to_string(x);
        return "<griffin.State of " + s.owner().model_id + ", batch " + std::to_string(s.batch()) + ", positions [" + p + "]>";
      });

  py::class_<LoadedModel, ModelPtr>(m, "Model", "A loaded checkpoint. Made by griffin.load; one model serves any number of states and threads.")
      .def_property_readonly("config", &config_dict, "The sizes, hyperparameters, per-layer block types and weight type, as a dict.")
      .def_property_readonly("path", [](const LoadedModel& l) { return l.dir; })
      .def_property_readonly("model_id", [](const LoadedModel& l) { return l.model_id; }, "Identifies the checkpoint (recorded in saved states).")
      .def_property_readonly("threads", [](const LoadedModel& l) { return l.model.threads(); })
      .def_property_readonly("vocab_size", [](const LoadedModel& l) { return vocab(l); })
      .def_property_readonly(
          "tokenizer",
          [](const LoadedModel& l) -> py::object {
            if (!l.tokenizer) return py::none();
            return py::cast(PyTokenizer(l.tokenizer));
          },
          "The checkpoint's Tokenizer, or None when it ships none.")
      .def(
          "with_threads",
          [](const LoadedModel& l, std::size_t threads) {
            return std::make_shared<LoadedModel>(LoadedModel{l.dir, l.model_id, l.model.with_threads(threads), l.tokenizer, l.no_tokenizer_reason});
          },
          py::arg("threads"),
          "The same weights (not copied) with a thread pool of its own: Python threads that each hold one run fully in parallel.")
      .def("logits", &logits, py::arg("tokens"),
           "Logits float32 [B, T, V] for int tokens [B, T] (or [T, V] for [T]), from one prefill of fresh states.")
      .def(
          "new_state", [](const ModelPtr& l, std::size_t batch) { return PyState(l, l->model.new_state(batch)); },
          py::arg("batch") = 1, "An empty State of `batch` sequences.")
      .def("prefill", &prefill, py::arg("state"), py::arg("tokens"), py::arg("last_only") = true,
           "Reads tokens [batch, T] (or [T] for batch 1) into the state. Returns the logits of each sequence's last "
           "token [batch, V] (last_only) or of every token [batch, T, V].")
      .def("decode", &decode, py::arg("state"), py::arg("tokens"),
           "Reads one token per sequence, tokens [batch] (or an int for batch 1); returns logits [batch, V] (or [V]).")
      .def("_generate", &generate_text, py::arg("prompt"), py::arg("max_tokens"), py::arg("temperature"), py::arg("top_k"),
           py::arg("top_p"), py::arg("seed"), py::arg("stop"), py::arg("state"), py::arg("on_text"))
      .def("__repr__", [](const LoadedModel& l) {
        return "<griffin.Model " + l.model_id + ", " + std::to_string(l.model.config().sizes.depth) + " layers, " +
               std::string(weight_type_name(l.model.config().weight_type)) + ">";
      });

  m.def("load", &load, py::arg("path"), py::arg("weights") = py::none(), py::arg("threads") = 0);
  m.def(
      "load_state",
      [](const ModelPtr& l, const fs::path& path) {
        const StateShape shape = l->model.new_state().shape();
        Snapshot snap = [&] {
          py::gil_scoped_release unlocked;
          return read_snapshot(path, &shape, l->model_id);
        }();
        return PyState(l, std::move(snap.state), std::move(snap.logits));
      },
      py::arg("model"), py::arg("path"));
}
