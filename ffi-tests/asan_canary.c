/*
 * asan_canary.c: a deliberate bug, to show that the ASan-instrumented Rust build catches what
 * the plain staticlib cannot. It lies to hz_flip_decode about the length of a heap buffer, so
 * the Rust side reads past its end. run.sh expects AddressSanitizer to report a
 * heap-buffer-overflow here when linked against the -Zsanitizer=address staticlib (against the
 * release staticlib the over-read goes unnoticed and the call just fails).
 */
#include "harmonizer.h"

#include <stdlib.h>
#include <string.h>

int main(void) {
    uint8_t *bytes = (uint8_t *)malloc(20);
    if (bytes == NULL) return 2;
    memset(bytes, 1, 20);
    hz_flip f;
    memset(&f, 0, sizeof f);
    f.struct_size = sizeof f;
    uint32_t st = hz_flip_decode(bytes, 200, &f, NULL, 0); /* 200: a lie */
    free(bytes);
    return st == HZ_OK ? 0 : 3;
}
