// Where the matmul finds element (row, col) of an activation matrix (its input X or output Y): row-major,
// or head-major, where the columns come in blocks (the recurrent block's heads) and each block is a
// [rows, block] matrix of its own, stored one after another: [heads][rows][head width].
//
// Why head-major exists: the recurrent block's Conv1D, gates and RG-LRU scan work within a head, and the
// threads split the heads. Over a row-major [T, E] chunk each thread would walk part of every row (a run,
// then a jump of a row), which two cores' memory system serves well below two contiguous streams;
// head-major, each thread's heads are contiguous memory (docs/performance.md, "Design notes").
#pragma once

#include <cstddef>
#include <limits>

namespace griffin::kernels {

struct ActivationLayout {
  std::size_t ld = 0;                                         // between consecutive rows (within a block)
  std::size_t block = std::numeric_limits<std::size_t>::max();  // columns per block; the maximum: no blocks
  std::size_t block_stride = 0;                               // between consecutive blocks

  // Row-major rows `ld` floats apart.
  static constexpr ActivationLayout row_major(std::size_t ld) { return {ld, std::numeric_limits<std::size_t>::max(), 0}; }
  // `rows` rows of blocks `head_width` columns wide: [cols / head_width][rows][head_width].
  static constexpr ActivationLayout head_major(std::size_t rows, std::size_t head_width) {
    return {head_width, head_width, rows * head_width};
  }

  constexpr bool is_row_major() const { return block == std::numeric_limits<std::size_t>::max(); }
  constexpr bool operator==(const ActivationLayout&) const = default;
  constexpr std::size_t offset(std::size_t row, std::size_t col) const {
    if (is_row_major()) return row * ld + col;
    return col / block * block_stride + row * ld + col % block;
  }
  // Columns from col to the end of its block: a run that is contiguous within each row.
  constexpr std::size_t run_from(std::size_t col) const { return block - col % block; }
};

}  // namespace griffin::kernels
