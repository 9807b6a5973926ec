/*
 * dlopen.c: loads libharmonizer.so at run time with dlopen/dlsym only: no link-time
 * dependency on the library (built without -lharmonizer; run.sh checks that the binary has no
 * DT_NEEDED entry for it and no undefined hz_* symbol). The header is included for its types;
 * every function pointer type below is checked against the header's prototype at compile time
 * (_Generic in a _Static_assert: unevaluated, so no symbol is referenced).
 *
 * Usage: dlopen PATH/TO/libharmonizer.so
 * Runs: version, config, engine, take producer, push, poll, stats, free. Exits 0 on success.
 */
#define _POSIX_C_SOURCE 200809L

#include "harmonizer.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

/* Function pointer types, spelled from the header's prototypes. */
typedef const char *(*fn_version)(void);
typedef uint32_t (*fn_version_number)(void);
typedef const char *(*fn_status_str)(uint32_t);
typedef hz_status (*fn_config_new)(uint64_t, uint32_t, size_t, size_t, hz_config **);
typedef void (*fn_config_free)(hz_config *);
typedef hz_status (*fn_engine_new)(hz_config *, hz_engine **);
typedef void (*fn_engine_free)(hz_engine *);
typedef hz_status (*fn_take_producer)(hz_engine *, uint32_t, hz_producer **);
typedef hz_status (*fn_poll)(hz_engine *, size_t, hz_event_fn, hz_notice_fn, void *, size_t *);
typedef hz_status (*fn_stats)(const hz_engine *, hz_stats *);
typedef void (*fn_producer_free)(hz_producer *);
typedef hz_status (*fn_push)(hz_producer *, const hz_event_header *, const uint8_t *, size_t);
typedef const char *(*fn_engine_last_error)(const hz_engine *);

/* Each type must be exactly the type of &function in the header. */
#define SAME_TYPE(fn, T) _Static_assert(_Generic(&fn, T: 1, default: 0), #fn " does not match " #T)
SAME_TYPE(hz_version, fn_version);
SAME_TYPE(hz_version_number, fn_version_number);
SAME_TYPE(hz_status_str, fn_status_str);
SAME_TYPE(hz_config_new, fn_config_new);
SAME_TYPE(hz_config_free, fn_config_free);
SAME_TYPE(hz_engine_new, fn_engine_new);
SAME_TYPE(hz_engine_free, fn_engine_free);
SAME_TYPE(hz_engine_take_producer, fn_take_producer);
SAME_TYPE(hz_engine_poll, fn_poll);
SAME_TYPE(hz_engine_stats, fn_stats);
SAME_TYPE(hz_producer_free, fn_producer_free);
SAME_TYPE(hz_producer_push, fn_push);
SAME_TYPE(hz_engine_last_error, fn_engine_last_error);

static void *lib;

/* dlsym into a function pointer without the object-to-function pointer cast ISO C forbids. */
static void resolve(const char *name, void *fnptr, size_t size) {
    dlerror();
    void *sym = dlsym(lib, name);
    const char *err = dlerror();
    if (err != NULL || sym == NULL) {
        fprintf(stderr, "dlsym(%s): %s\n", name, err ? err : "NULL");
        exit(1);
    }
    CHECK(size == sizeof sym);
    memcpy(fnptr, &sym, size);
}
#define RESOLVE(var, name) resolve(name, &(var), sizeof(var))

static uint64_t sum_seq;
static size_t events;

static void on_event(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *payload,
                     size_t len) {
    CHECK(user == (void *)&sum_seq && stream == 0);
    CHECK(len == 4 && memcmp(payload, "data", 4) == 0);
    sum_seq += h->seq;
    events++;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "libharmonizer.so";
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen(%s): %s\n", path, dlerror());
        return 1;
    }
    fn_version version;
    fn_version_number version_number;
    fn_status_str status_str;
    fn_config_new config_new;
    fn_config_free config_free;
    fn_engine_new engine_new;
    fn_engine_free engine_free;
    fn_take_producer take_producer;
    fn_poll poll;
    fn_stats stats;
    fn_producer_free producer_free;
    fn_push push;
    fn_engine_last_error engine_last_error;
    RESOLVE(version, "hz_version");
    RESOLVE(version_number, "hz_version_number");
    RESOLVE(status_str, "hz_status_str");
    RESOLVE(config_new, "hz_config_new");
    RESOLVE(config_free, "hz_config_free");
    RESOLVE(engine_new, "hz_engine_new");
    RESOLVE(engine_free, "hz_engine_free");
    RESOLVE(take_producer, "hz_engine_take_producer");
    RESOLVE(poll, "hz_engine_poll");
    RESOLVE(stats, "hz_engine_stats");
    RESOLVE(producer_free, "hz_producer_free");
    RESOLVE(push, "hz_producer_push");
    RESOLVE(engine_last_error, "hz_engine_last_error");
    dlerror();
    CHECK(dlsym(lib, "hz_no_such_function") == NULL && dlerror() != NULL);

    /* The library loaded is the one the header describes. */
    CHECK(version_number() == HZ_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", (int)HZ_VERSION_MAJOR, (int)HZ_VERSION_MINOR,
             (int)HZ_VERSION_PATCH);
    CHECK(strcmp(version(), want) == 0);
    CHECK(strcmp(status_str(HZ_ERR_STATE), "wrong state") == 0);

    hz_config *cfg = NULL;
    CHECK(config_new(1, 2, 1 << 16, 64, &cfg) == HZ_OK && cfg != NULL);
    hz_engine *e = NULL;
    CHECK(engine_new(cfg, &e) == HZ_OK && e != NULL);
    config_free(cfg);
    hz_producer *p = NULL, *again = NULL;
    CHECK(take_producer(e, 0, &p) == HZ_OK && p != NULL);
    CHECK(take_producer(e, 0, &again) == HZ_ERR_STATE && again == NULL);
    CHECK(strlen(engine_last_error(e)) > 0);

    uint64_t want_sum = 0;
    for (uint64_t seq = 1; seq <= 100; seq++) {
        hz_event_header h;
        memset(&h, 0, sizeof h);
        h.pos = seq;
        h.seq = seq;
        h.ts_ns = seq;
        h.kind = HZ_KIND_DATA;
        CHECK(push(p, &h, (const uint8_t *)"data", 4) == HZ_OK);
        want_sum += seq;
    }
    CHECK(poll(e, 100, NULL, NULL, NULL, NULL) == HZ_ERR_NULL);
    size_t n = 0;
    CHECK(poll(e, 1000, on_event, NULL, &sum_seq, &n) == HZ_OK);
    CHECK(n == 100 && events == 100 && sum_seq == want_sum);
    hz_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK(stats(e, &st) == HZ_OK && st.delivered == 100 && st.api_errors == 2);

    producer_free(p);
    engine_free(e);
    producer_free(NULL);
    engine_free(NULL);
    config_free(NULL);
    CHECK(dlclose(lib) == 0);
    printf("dlopen: all checks passed (%s)\n", path);
    return 0;
}
