// LoadError, what every problem with a checkpoint or config file throws, and how its messages quote a
// name. Its own header so that each reader (JSON, mapped files, safetensors, config.json) can throw it
// without depending on the others.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace griffin::io {

// Every problem with a checkpoint or config file. The message starts with the file (or directory) and
// names the tensor or field, with the expected and the actual value where there are two.
struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {

// A name as the messages quote it: "NAME" (for reading, not JSON: nothing inside is escaped).
inline std::string in_quotes(std::string_view s) {
  std::string out;  // appended piecewise: "\"" + std::string(s) trips a g++ 12 -Wrestrict false positive
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

}  // namespace detail

}  // namespace griffin::io
