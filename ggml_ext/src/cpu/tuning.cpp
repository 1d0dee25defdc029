#include "tuning.h"

#include <algorithm>
#include <cstdlib>
#include <unistd.h>

namespace veclut {

static long env_long(const char * name, long fallback) {
    const char * value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        return fallback;
    }
    const long parsed = std::strtol(value, nullptr, 10);
    return parsed > 0 ? parsed : fallback;
}

static long l2_bytes() {
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long size = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (size > 0) {
        return size;
    }
#endif
    return 1L << 20;  // 1 MiB: common per-core L2 of current x86 and Arm cores
}

// Read once: tiles are chosen on every MUL_MAT by every thread, and a decoded token has hundreds
// (getenv walks the environment; sysconf may ask cpuid, a trap into the hypervisor in a VM).
struct overrides {
    long lut_min_n, tile_kb, row_chunk, shared_tables, l2;
};

static const overrides & settings() {
    static const overrides o{env_long("VECLUT_LUT_MIN_N", 0), env_long("VECLUT_TILE_KB", 0),
                             env_long("VECLUT_ROW_CHUNK", 0), env_long("VECLUT_SHARED_TABLES", 0), l2_bytes()};
    return o;
}

tiles choose_tiles(const kernel_set & k, layout kind, int64_t blocks) {
    return choose_tiles(k.tile_n, k.lut_min_n, blocks, table_entries(k, kind), k.lut_rows);
}

tiles choose_tiles(int tile_n, int lut_min_n, int64_t blocks, int64_t entries, int64_t lut_rows,
                   int l2_share) {
    tiles t;
    t.tile_n    = tile_n;
    const overrides & o = settings();
    t.lut_min_n = (int) (o.lut_min_n > 0 ? o.lut_min_n : lut_min_n);
    // tables of kb blocks take about 1 / l2_share of L2, so the weights and row sums streaming past
    // do not evict them; an eighth, not a half: with 2 MiB of L2 a half held 3 I2_V blocks and
    // prefill ran 5-18 % slower than with one (docs/speed-bounds.md, Xeon with AMX)
    const long per_block = (long) entries * tile_n * (long) sizeof(int16_t);
    const long fit = std::max(1L, o.l2 / l2_share / per_block);
    t.kb        = std::min<int64_t>(blocks, o.tile_kb > 0 ? o.tile_kb : fit);
    t.row_chunk = o.row_chunk > 0 ? o.row_chunk : lut_rows;
    t.row_chunk_set = o.row_chunk > 0;
    t.private_tables = o.shared_tables == 0;
    return t;
}

}  // namespace veclut
