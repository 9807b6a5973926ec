/* Shared helpers for the C tests of ffi-tests/ (C11 and C++17). Header-only. */
#ifndef HZ_FFI_TESTS_COMMON_H
#define HZ_FFI_TESTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails the test: prints file:line and the failed expression, exits non-zero. */
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* Checks that a call returns the status `want`; prints both names otherwise. */
#define CHECK_ST(call, want)                                                             \
    do {                                                                                 \
        uint32_t st_got_ = (call);                                                       \
        uint32_t st_want_ = (want);                                                      \
        if (st_got_ != st_want_) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %u (%s), expected %u (%s)\n", __FILE__,  \
                    __LINE__, #call, (unsigned)st_got_, hz_status_str(st_got_),          \
                    (unsigned)st_want_, hz_status_str(st_want_));                        \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_OK(call) CHECK_ST(call, HZ_OK)

/* Checks that a C string contains `needle`. */
#define CHECK_CONTAINS(str, needle)                                                      \
    do {                                                                                 \
        const char *s_ = (str);                                                          \
        if (s_ == NULL || strstr(s_, (needle)) == NULL) {                                \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,         \
                    __LINE__, s_ ? s_ : "(null)", (needle));                             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#endif
