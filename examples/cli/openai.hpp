// The OpenAI API's request and response shapes for `griffin serve`, without the HTTP: a JSON body becomes
// engine requests (or an ApiError naming what is wrong, with the status code OpenAI would give), and
// completions become the JSON objects and stream chunks the official clients read.
//
// Checked as OpenAI checks them: an unknown field is an error ("Unrecognized request argument supplied"),
// every field has its type and range, and a field we accept but do not implement (logprobs, penalties) is
// accepted only with its neutral value.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "griffin/generation/chat.hpp"
#include "griffin/generation/generate.hpp"
#include "griffin/generation/tokenizer.hpp"
#include "griffin/io/json.hpp"

namespace griffin::cli::openai {

using nlohmann::json;

// An error as OpenAI reports it: the HTTP status and {"error": {message, type, param, code}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, or empty
  std::string code;   // e.g. "context_length_exceeded", or empty

  json body() const {
    return {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code.empty() ? json(nullptr) : json(code)}}}};
  }
};

inline ApiError bad_request(std::string message, std::string param = {}, std::string code = {}) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

// What the server allows; set from griffin serve's options.
struct Limits {
  std::size_t max_prompt_tokens = 8192;     // a longer prompt is refused (context_length_exceeded)
  std::size_t max_tokens = 4096;            // the largest max_tokens a request may ask for
  std::size_t max_request_tokens = 65536;   // prompt + n × max_tokens: the tokens one request may cost
  std::size_t max_n = 16;                   // choices per request
  std::size_t completion_default_max_tokens = 16;  // OpenAI's default for /v1/completions
  std::size_t chat_default_max_tokens = 256;
  std::size_t prefill_chunk = 512;          // as griffin generate's --chunk, so both read prompts alike
};

enum class Endpoint { completions, chat };

// One request, checked: the prompt(s) as tokens, and per choice the generation options.
struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  std::vector<std::vector<int>> prompts;  // completions may send several; chat has one
  std::size_t n = 1;
  GenerateOptions options;                // choice i of a prompt samples with seed options.sampling.seed + i
  bool stream = false;
  bool include_usage = true;
};

namespace detail {

inline const std::set<std::string>& known_fields(Endpoint e) {
  static const std::set<std::string> completions{
      "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream",
      "stream_options", "user", "echo", "logprobs", "presence_penalty", "frequency_penalty", "best_of", "suffix",
      "logit_bias"};
  static const std::set<std::string> chat{
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop",
      "n", "stream", "stream_options", "user", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
      "logit_bias"};
  return e == Endpoint::chat ? chat : completions;
}

inline std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

inline double number(const json& body, const std::string& key, double fallback, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const json& v = body[key];
  if (!v.is_number()) throw bad_request(key + " must be a number, not " + type_name(v), key);
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi))
    throw bad_request(key + " must be between " + json(lo).dump() + " and " + json(hi).dump() + ", got " + v.dump(), key);
  return d;
}

inline std::optional<std::int64_t> integer(const json& body, const std::string& key) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      throw bad_request(key + " is too large", key);
    return std::int64_t(v.get<std::uint64_t>());
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e15)
    return std::int64_t(v.get<double>());
  throw bad_request(key + " must be an integer, not " + (v.is_number() ? v.dump() : type_name(v)), key);
}

inline bool boolean(const json& body, const std::string& key, bool fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_boolean()) throw bad_request(key + " must be a boolean, not " + type_name(body[key]), key);
  return body[key].get<bool>();
}

// A field accepted only with its neutral value (we do not implement it).
inline void neutral_only(const json& body, const std::string& key, const std::vector<json>& neutral) {
  if (!body.contains(key)) return;
  for (const json& n : neutral)
    if (body[key] == n) return;
  throw bad_request(key + " is not supported by this server (only " + json(neutral).dump() + ")", key);
}

inline std::vector<std::string> stop_strings(const json& body) {
  if (!body.contains("stop") || body["stop"].is_null()) return {};
  const json& v = body["stop"];
  std::vector<std::string> out;
  if (v.is_string()) out.push_back(v.get<std::string>());
  else if (v.is_array()) {
    if (v.size() > 4) throw bad_request("stop may hold at most 4 sequences, got " + std::to_string(v.size()), "stop");
    for (const json& s : v) {
      if (!s.is_string()) throw bad_request("stop must be a string or an array of strings", "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw bad_request("stop must be a string or an array of strings, not " + type_name(v), "stop");
  }
  for (const auto& s : out)
    if (s.empty()) throw bad_request("a stop sequence must not be empty", "stop");
  return out;
}

inline std::vector<int> prompt_tokens(const json& v, const Tokenizer& tokenizer, std::size_t vocab) {
  if (v.is_string()) return tokenizer.encode_prompt(v.get<std::string>());
  std::vector<int> ids;
  for (const json& t : v) {
    if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || std::uint64_t(t.get<std::int64_t>()) >= vocab)
      throw bad_request("a token id in prompt is not an integer in [0, " + std::to_string(vocab) + "): " + t.dump(), "prompt");
    ids.push_back(t.get<int>());
  }
  return ids;
}

}  // namespace detail

// Parses and checks a request body. `served_model` is the id /v1/models lists; a request naming another
// model is refused (404, as OpenAI does), one naming none is served. Throws ApiError.
inline ParsedRequest parse_request(Endpoint endpoint, const std::string& text, const Tokenizer& tokenizer,
                                   std::size_t vocab, const std::string& served_model, const Limits& limits,
                                   std::uint64_t random_seed) {
  json body;
  try {
    body = io::detail::parse_json_unique_keys(text, "the request body", "field");
  } catch (const std::exception& e) {
    throw bad_request(std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw bad_request("the body must be a JSON object, not " + detail::type_name(body));
  for (const auto& [key, value] : body.items())
    if (!detail::known_fields(endpoint).count(key)) throw bad_request("Unrecognized request argument supplied: " + key, key);

  ParsedRequest r;
  r.endpoint = endpoint;
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) throw bad_request("model must be a string", "model");
    const std::string m = body["model"].get<std::string>();
    if (m != served_model)
      throw ApiError{404, "The model `" + m + "` does not exist; this server serves `" + served_model + "`",
                     "invalid_request_error", "model", "model_not_found"};
  }
  detail::neutral_only(body, "presence_penalty", {0, nullptr});
  detail::neutral_only(body, "frequency_penalty", {0, nullptr});
  detail::neutral_only(body, "logit_bias", {nullptr, json::object()});
  if (endpoint == Endpoint::completions) {
    detail::neutral_only(body, "echo", {false, nullptr});
    detail::neutral_only(body, "logprobs", {nullptr, 0});
    detail::neutral_only(body, "best_of", {nullptr, 1});
    detail::neutral_only(body, "suffix", {nullptr});
  } else {
    detail::neutral_only(body, "logprobs", {false, nullptr});
    detail::neutral_only(body, "top_logprobs", {nullptr, 0});
  }

  // The prompt(s).
  std::vector<int> stop_tokens;
  std::vector<std::string> stops = detail::stop_strings(body);
  if (endpoint == Endpoint::completions) {
    if (!body.contains("prompt")) throw bad_request("prompt is required", "prompt");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.prompts.push_back(detail::prompt_tokens(p, tokenizer, vocab));
    } else if (p.is_array() && !p.empty() && p[0].is_string()) {
      for (const json& one : p) {
        if (!one.is_string()) throw bad_request("prompt must be a string, an array of strings or of token ids", "prompt");
        r.prompts.push_back(detail::prompt_tokens(one, tokenizer, vocab));
      }
    } else if (p.is_array() && !p.empty()) {
      r.prompts.push_back(detail::prompt_tokens(p, tokenizer, vocab));
    } else {
      throw bad_request("prompt must be a non-empty string, an array of strings or of token ids, not " +
                            (p.is_array() ? std::string("an empty array") : detail::type_name(p)), "prompt");
    }
    if (tokenizer.eos_id() >= 0) stop_tokens.push_back(tokenizer.eos_id());
  } else {
    if (!body.contains("messages")) throw bad_request("messages is required", "messages");
    const json& ms = body["messages"];
    if (!ms.is_array() || ms.empty()) throw bad_request("messages must be a non-empty array", "messages");
    std::vector<ChatMessage> messages;
    for (std::size_t i = 0; i < ms.size(); ++i) {
      const json& m = ms[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) throw bad_request(where + " must be an object", where);
      for (const auto& [key, value] : m.items())
        if (key != "role" && key != "content" && key != "name")
          throw bad_request("Unrecognized argument in " + where + ": " + key, where + "." + key);
      if (!m.contains("role") || !m["role"].is_string()) throw bad_request(where + ".role must be a string", where + ".role");
      if (!m.contains("content") || !m["content"].is_string())
        throw bad_request(where + ".content must be a string", where + ".content");
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant" && role != "developer")
        throw bad_request(where + ".role must be system, developer, user or assistant, not \"" + role + "\"", where + ".role");
      messages.push_back({role == "developer" ? "system" : role, m["content"].get<std::string>()});
    }
    ChatPrompt chat = render_chat(tokenizer, messages);
    r.prompts.push_back(std::move(chat.tokens));
    stop_tokens = std::move(chat.stop_tokens);
    stops.insert(stops.end(), chat.stop_strings.begin(), chat.stop_strings.end());
  }

  // Sampling and lengths.
  std::optional<std::int64_t> max_tokens = detail::integer(body, "max_tokens");
  if (endpoint == Endpoint::chat)
    if (auto m = detail::integer(body, "max_completion_tokens")) max_tokens = m;
  const std::size_t fallback =
      endpoint == Endpoint::chat ? limits.chat_default_max_tokens : limits.completion_default_max_tokens;
  if (max_tokens && *max_tokens < 1) throw bad_request("max_tokens must be at least 1, got " + std::to_string(*max_tokens), "max_tokens");
  if (max_tokens && std::uint64_t(*max_tokens) > limits.max_tokens)
    throw bad_request("max_tokens is " + std::to_string(*max_tokens) + " but this server allows at most " +
                          std::to_string(limits.max_tokens), "max_tokens");
  r.options.max_tokens = max_tokens ? std::size_t(*max_tokens) : std::min(fallback, limits.max_tokens);
  const std::optional<std::int64_t> n = detail::integer(body, "n");
  if (n && (*n < 1 || std::uint64_t(*n) > limits.max_n))
    throw bad_request("n must be between 1 and " + std::to_string(limits.max_n) + ", got " + std::to_string(*n), "n");
  r.n = n ? std::size_t(*n) : 1;
  r.options.sampling.temperature = float(detail::number(body, "temperature", 1.0, 0.0, 2.0));
  r.options.sampling.top_p = float(detail::number(body, "top_p", 1.0, 0.0, 1.0));
  if (r.options.sampling.top_p <= 0.0f) throw bad_request("top_p must be greater than 0", "top_p");
  const std::optional<std::int64_t> top_k = detail::integer(body, "top_k");
  if (top_k && *top_k < 0) throw bad_request("top_k must be at least 0 (0 = all tokens)", "top_k");
  r.options.sampling.top_k = top_k ? std::size_t(*top_k) : 0;
  const std::optional<std::int64_t> seed = detail::integer(body, "seed");
  r.options.sampling.seed = seed ? std::uint64_t(*seed) : random_seed;
  r.options.stop_strings = std::move(stops);
  r.options.stop_tokens = std::move(stop_tokens);
  r.options.prefill_chunk = limits.prefill_chunk;
  r.stream = detail::boolean(body, "stream", false);
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) throw bad_request("stream_options must be an object", "stream_options");
    for (const auto& [key, value] : so.items())
      if (key != "include_usage") throw bad_request("Unrecognized argument in stream_options: " + key, "stream_options." + key);
    r.include_usage = detail::boolean(so, "include_usage", true);
  }
  if (body.contains("user") && !body["user"].is_string() && !body["user"].is_null())
    throw bad_request("user must be a string", "user");

  // What the request would cost.
  std::size_t prompt_total = 0;
  for (const auto& p : r.prompts) {
    if (p.empty()) throw bad_request("the prompt is empty (it has no tokens)", endpoint == Endpoint::chat ? "messages" : "prompt");
    if (p.size() > limits.max_prompt_tokens)
      throw bad_request("the prompt has " + std::to_string(p.size()) + " tokens; this server reads at most " +
                            std::to_string(limits.max_prompt_tokens),
                        endpoint == Endpoint::chat ? "messages" : "prompt", "context_length_exceeded");
    prompt_total += p.size();
  }
  const std::size_t cost = prompt_total + r.prompts.size() * r.n * r.options.max_tokens;
  if (cost > limits.max_request_tokens)
    throw bad_request("this request may use " + std::to_string(cost) + " tokens (prompt + n × max_tokens); the budget " +
                          "per request is " + std::to_string(limits.max_request_tokens),
                      "max_tokens", "token_budget_exceeded");
  return r;
}

inline std::string finish_reason(StopReason r) {
  switch (r) {
    case StopReason::max_tokens: return "length";
    case StopReason::stop_token:
    case StopReason::stop_string: return "stop";
    case StopReason::callback: return "cancelled";
  }
  return "stop";
}

struct Usage {
  std::size_t prompt_tokens = 0, completion_tokens = 0;
  json to_json() const {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }
};

// The envelope every response and stream chunk shares.
inline json envelope(Endpoint e, const std::string& id, bool chunk, std::int64_t created, const std::string& model) {
  const char* object = e == Endpoint::chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"system_fingerprint", model}};
}

// Choice `index` of a finished (non-streamed) response.
inline json choice(Endpoint e, std::size_t index, const std::string& text, const std::string& finish) {
  if (e == Endpoint::chat)
    return {{"index", index}, {"message", {{"role", "assistant"}, {"content", text}}}, {"logprobs", nullptr},
            {"finish_reason", finish}};
  return {{"index", index}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}};
}

// A streamed piece of choice `index`: text, or (with `finish`) its end. Chat's first chunk carries the role.
inline json chunk_choice(Endpoint e, std::size_t index, const std::string& text, const std::optional<std::string>& finish,
                         bool first) {
  json c{{"index", index}, {"logprobs", nullptr}, {"finish_reason", finish ? json(*finish) : json(nullptr)}};
  if (e == Endpoint::chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finish) delta["content"] = text;
    c["delta"] = delta;
  } else {
    c["text"] = text;
  }
  return c;
}

}  // namespace griffin::cli::openai
