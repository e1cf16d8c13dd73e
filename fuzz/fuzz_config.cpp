// libFuzzer target: any text through parse_config_json. The contract under test: it either throws
// io::LoadError (not JSON) or ConfigError (not a model), or returns a config that validates, whose sizes
// are within the documented limits and whose State could be described. Any other exception, a crash or
// a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "griffin/io/config_json.hpp"
#include "griffin/io/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace griffin;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const DynamicConfig c = io::parse_config_json(text, "fuzz/config.json");
    c.validate();  // must not throw for a config the parser returned
    if (io::detail::approximate_parameters(c.sizes) > io::detail::max_config_parameters) __builtin_trap();
    visit_sizes([&](const SizeField& f) {  // every size of the field table
      const std::size_t v = c.sizes.*f.member;
      if (v == 0 || v > io::detail::max_config_size) __builtin_trap();
    });
    if (c.pattern.period() == 0) __builtin_trap();
    for (std::size_t i = 0; i < c.pattern.period(); ++i) (void)block_type_name(c.block_type(i));
    if (c.hyper.bos_token_id < 0 || std::size_t(c.hyper.bos_token_id) >= c.sizes.vocab_size) __builtin_trap();
  } catch (const io::LoadError&) {
  } catch (const ConfigError&) {
  }
  return 0;
}
