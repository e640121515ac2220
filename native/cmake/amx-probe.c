/* Configures an AMX tile the way ggml's AMX kernels do and loads it once: exit 0 where that
 * works. GCC 12's RTL dead-store elimination drops the stores of the tile sizes before ldtilecfg
 * (only the palette byte survives), so ggml's first tile load dies with SIGILL on a CPU with
 * AMX; CMakeLists.txt then builds with -fno-dse where that makes this probe run, else without
 * AMX. */
#include <stdint.h>
#include <string.h>
#if defined(__AMX_TILE__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

typedef struct {
    uint8_t  palette_id;
    uint8_t  start_row;
    uint8_t  reserved[14];
    uint16_t colsb[16];
    uint8_t  rows[16];
} tile_config;

__attribute__((noinline)) static void configure_one_tile(void) {
    _Alignas(64) tile_config config = { 0 };
    config.palette_id = 1;
    config.rows[0]    = 1;
    config.colsb[0]   = 64;
    _tile_loadconfig(&config);
}
#endif

int main(void) {
#if defined(__AMX_TILE__) && defined(__linux__)
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return 1;
    unsigned char row[64];
    memset(row, 1, sizeof row);
    configure_one_tile();
    _tile_loadd(0, row, 64);
    _tile_stored(0, row, 64);
    _tile_release();
    return row[0] == 1 ? 0 : 1;
#else
    return 0; /* no AMX in this target: nothing to turn off */
#endif
}
