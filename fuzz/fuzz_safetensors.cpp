// libFuzzer target: any byte string through SafetensorsFile::parse. The contract under test: parse either
// throws io::LoadError or returns views that lie wholly inside the input, whose converters read only
// their own bytes. Any other exception, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "griffin/dtype.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace griffin::io;
  using griffin::DType;
  using griffin::dtype_size;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const SafetensorsFile file = SafetensorsFile::parse(bytes, "fuzz.safetensors");
    const std::byte* begin = bytes.data();
    const std::byte* end = begin + size;
    for (const TensorView& t : file.tensors()) {
      if (t.size_bytes > size || t.data < begin || t.data > end - t.size_bytes) __builtin_trap();  // outside the input
      if (t.element_count() * dtype_size(t.dtype) != t.size_bytes) __builtin_trap();
      if (file.find(t.name) != &t) __builtin_trap();
      switch (t.dtype) {
        case DType::f32:
        case DType::bf16:
        case DType::f16:
          (void)to_f32(t);
          break;
        case DType::i32:
        case DType::i64:
          try {
            (void)to_i32(t);
          } catch (const LoadError&) {  // an I64 value outside int32
          }
          break;
        default:
          break;
      }
    }
  } catch (const LoadError&) {
  }
  return 0;
}
