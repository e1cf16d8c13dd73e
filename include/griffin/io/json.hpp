// The JSON parsing shared by every file griffin reads (a safetensors header, a shard index, config.json).
// nlohmann/json keeps the last of a repeated key and follows any depth; a hostile file must get neither
// past us, so both are LoadErrors naming the file. json_excerpt is how a value appears in a message.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/io/error.hpp"

namespace griffin::io::detail {

// The deepest nesting accepted in a header, an index or a config.json.
inline constexpr int max_json_depth = 64;

// Parses JSON, rejecting duplicate keys in any object (nlohmann keeps the last one silently, which would let
// a header name a tensor twice) and nesting deeper than max_json_depth. `top_level_noun` names the keys of
// the outermost object in messages ("tensor" for a safetensors header, "key" for config.json).
inline nlohmann::json parse_json_unique_keys(std::string_view text, const std::string& display_name,
                                             std::string_view top_level_noun) {
  using nlohmann::json;
  struct Frame {
    std::set<std::string, std::less<>> keys;
    std::string owner;  // the key this object is the value of ("" at top level)
  };
  std::vector<Frame> frames;
  std::string last_key;
  json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    // Real headers and configs nest three levels; a deeper document is refused while it is parsed, since
    // printing one (json_excerpt) or walking it recurses once per level and would overflow the stack.
    if (depth > max_json_depth)
      throw LoadError(display_name + ": JSON nested more than " + std::to_string(max_json_depth) + " levels deep");
    switch (event) {
      case json::parse_event_t::object_start:
        frames.push_back({{}, frames.empty() ? std::string() : last_key});
        break;
      case json::parse_event_t::object_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!frames.back().keys.insert(key).second) {
          if (frames.size() == 1)
            throw LoadError(display_name + ": duplicate " + std::string(top_level_noun) + " " + in_quotes(key));
          throw LoadError(display_name + ": duplicate key " + in_quotes(key) + " in " + in_quotes(frames.back().owner));
        }
        last_key = key;
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    throw LoadError(display_name + ": invalid JSON: " + e.what());
  }
}

// A JSON value as it would be written, for messages (long values are cut).
inline std::string json_excerpt(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

}  // namespace griffin::io::detail
