/* Fuzzes wsp_utf8_valid() (common/utf8.c), which gates what Redis may publish, against a
 * reference written the other way round: decode each sequence to a code point, then reject
 * overlongs, surrogates and values above U+10FFFF (RFC 3629 section 3). */
#include "fuzz.h"
#include "utf8.h"

static int ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i];
        size_t k;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, c &= 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, c &= 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
            c = c << 6 | (p[i + j] & 0x3Fu);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int v = wsp_utf8_valid(data, size);
    WSP_FUZZ_CHECK(v == 0 || v == 1);
    WSP_FUZZ_CHECK(v == ref_valid(data, size));
    return 0;
}
