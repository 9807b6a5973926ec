/*
 * api.c: a C11 test of every function of include/harmonizer.h, with every error path the
 * header documents: NULL handles and pointers, unknown enum values, oversize payloads,
 * malformed flips, calls in the wrong state, free(NULL), out-parameters left untouched on
 * error, status strings, version macros, and a valid predictor model loaded from a file and
 * from a buffer.
 *
 * Usage: api [MODEL_JSON]   (default: crates/harmonizer-core/models/default.json, relative to the working directory)
 * Exits 0 on success; on failure prints file:line of the failed check and exits 1.
 */
#include "harmonizer.h"
#include "common.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* Sentinels: out-parameters are pre-filled with these and must be untouched on error. */
#define SENT_PTR ((void *)(uintptr_t)0x5EA1F00Du)
#define SENT_SIZE ((size_t)0xA5A5A5A5u)
#define SENT_U32 0xC0FFEE11u
#define SENT_U64 0xC0FFEE11C0FFEE11ull

static const char *model_path = "crates/harmonizer-core/models/default.json";

/* ------------------------------------------------------------------------------------------ */
/* A recorder for poll callbacks: every event and notice, in order.                           */

#define MAX_REC 8192

typedef struct {
    uint32_t stream;
    hz_event_header h;
    size_t len;
    uint8_t payload[64];
    size_t order;
} ev_rec;

typedef struct {
    hz_notice n;
    uint8_t loc[64];
    size_t order;
} nt_rec;

typedef struct {
    ev_rec ev[MAX_REC];
    size_t nev;
    nt_rec nt[256];
    size_t nnt;
    size_t order;
    /* The first poll's SUBSCRIBE of the initial stream (HZ_PURPOSE_INITIAL), kept apart so the
     * cases below count only the notices they cause; tested on its own. */
    hz_notice initial;
    size_t ninitial;
} recorder;

static void on_event(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *payload,
                     size_t len) {
    recorder *r = (recorder *)user;
    CHECK(r != NULL && h != NULL);
    CHECK(len == 0 || payload != NULL);
    CHECK(r->nev < MAX_REC);
    ev_rec *e = &r->ev[r->nev++];
    e->stream = stream;
    e->h = *h;
    e->len = len;
    if (len > 0) memcpy(e->payload, payload, len < sizeof e->payload ? len : sizeof e->payload);
    e->order = r->order++;
}

static void on_notice(void *user, const hz_notice *n) {
    recorder *r = (recorder *)user;
    CHECK(r != NULL && n != NULL);
    if (n->kind == HZ_NOTICE_SUBSCRIBE && n->purpose == HZ_PURPOSE_INITIAL) {
        r->initial = *n;
        r->initial.locator = NULL;
        r->ninitial++;
        return;
    }
    CHECK(r->nnt < 256);
    nt_rec *x = &r->nt[r->nnt++];
    x->n = *n;
    CHECK(n->locator_len <= sizeof x->loc);
    CHECK(n->locator_len == 0 || n->locator != NULL);
    if (n->locator_len > 0) memcpy(x->loc, n->locator, n->locator_len);
    x->n.locator = NULL; /* borrowed: valid during the callback only */
    x->order = r->order++;
}

static recorder *rec_new(void) {
    recorder *r = (recorder *)calloc(1, sizeof *r);
    CHECK(r != NULL);
    return r;
}

static void rec_clear(recorder *r) { memset(r, 0, sizeof *r); }

/* Polls until a poll delivers nothing and produces no notice; returns the events delivered. */
static size_t drain(hz_engine *e, recorder *r) {
    size_t total = 0;
    for (int i = 0; i < 100; i++) {
        size_t before_nt = r->nnt;
        size_t n = SENT_SIZE;
        CHECK_OK(hz_engine_poll(e, 64, on_event, on_notice, r, &n));
        CHECK(n != SENT_SIZE && n <= 64);
        total += n;
        if (n == 0 && r->nnt == before_nt) return total;
    }
    CHECK(!"drain did not settle");
    return total;
}

static const nt_rec *find_notice(const recorder *r, uint32_t kind, size_t nth) {
    for (size_t i = 0; i < r->nnt; i++) {
        if (r->nt[i].n.kind == kind && nth-- == 0) return &r->nt[i];
    }
    return NULL;
}

static size_t count_notices(const recorder *r, uint32_t kind) {
    size_t c = 0;
    for (size_t i = 0; i < r->nnt; i++) c += r->nt[i].n.kind == kind;
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* Event and flip helpers.                                                                    */

static hz_event_header hdr(uint64_t pos, uint64_t seq, uint16_t kind) {
    hz_event_header h;
    memset(&h, 0, sizeof h);
    h.pos = pos;
    h.seq = seq;
    h.ts_ns = 1000 * pos;
    h.origin = 0;
    h.kind = kind;
    h.flags = 0;
    return h;
}

static uint32_t push_data(hz_producer *p, uint64_t pos, uint64_t seq) {
    hz_event_header h = hdr(pos, seq, HZ_KIND_DATA);
    uint8_t payload[8];
    for (int i = 0; i < 8; i++) payload[i] = (uint8_t)(seq >> (8 * i));
    return hz_producer_push(p, &h, payload, sizeof payload);
}

static hz_flip mkflip(uint32_t action, uint32_t target, uint64_t id) {
    hz_flip f;
    memset(&f, 0, sizeof f);
    f.struct_size = sizeof f;
    f.action = action;
    f.target = target;
    f.flip_id = id;
    f.selector = HZ_SELECTOR_ALL;
    return f;
}

static size_t encode(const hz_flip *f, uint8_t *buf, size_t cap) {
    size_t written = SENT_SIZE;
    CHECK_OK(hz_flip_encode(f, buf, cap, &written));
    CHECK(written != SENT_SIZE && written <= cap && written <= HZ_MAX_FLIP_LEN);
    return written;
}

static uint32_t push_flip(hz_producer *p, uint64_t pos, const hz_flip *f) {
    uint8_t buf[HZ_MAX_FLIP_LEN];
    size_t n = encode(f, buf, sizeof buf);
    hz_event_header h = hdr(pos, 0, HZ_KIND_FLIP);
    return hz_producer_push(p, &h, buf, n);
}

/* A config with `streams` streams of 64 KiB, payloads up to HZ_MAX_FLIP_LEN. */
static hz_config *cfg_new(uint64_t recipient, uint32_t streams) {
    hz_config *c = NULL;
    CHECK_OK(hz_config_new(recipient, streams, 1 << 16, HZ_MAX_FLIP_LEN, &c));
    CHECK(c != NULL);
    return c;
}

static hz_engine *engine_from(hz_config *c) {
    hz_engine *e = NULL;
    CHECK_OK(hz_engine_new(c, &e));
    CHECK(e != NULL);
    return e;
}

static hz_producer *take(hz_engine *e, uint32_t stream) {
    hz_producer *p = NULL;
    CHECK_OK(hz_engine_take_producer(e, stream, &p));
    CHECK(p != NULL);
    CHECK(hz_producer_stream(p) == stream);
    return p;
}

static hz_stats stats_of(const hz_engine *e) {
    hz_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    CHECK_OK(hz_engine_stats(e, &s));
    return s;
}

static uint32_t active_of(const hz_engine *e) {
    uint32_t a = SENT_U32;
    CHECK_OK(hz_engine_active_stream(e, &a));
    CHECK(a != SENT_U32);
    return a;
}

/* ------------------------------------------------------------------------------------------ */

static void test_layout(void) {
    CHECK(sizeof(hz_event_header) == 32);
    CHECK(offsetof(hz_event_header, pos) == 0);
    CHECK(offsetof(hz_event_header, seq) == 8);
    CHECK(offsetof(hz_event_header, ts_ns) == 16);
    CHECK(offsetof(hz_event_header, origin) == 24);
    CHECK(offsetof(hz_event_header, kind) == 28);
    CHECK(offsetof(hz_event_header, flags) == 30);
    CHECK(HZ_MAX_FLIP_LEN == 1335);
}

static void test_versions(void) {
    CHECK(hz_version_number() == HZ_VERSION_NUMBER);
    CHECK(HZ_VERSION_NUMBER == HZ_VERSION_MAJOR * 10000 + HZ_VERSION_MINOR * 100 + HZ_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", (int)HZ_VERSION_MAJOR, (int)HZ_VERSION_MINOR,
             (int)HZ_VERSION_PATCH);
    const char *v = hz_version();
    CHECK(v != NULL);
    CHECK(strcmp(v, want) == 0);
    CHECK(hz_version() == v); /* static storage */
}

static void test_status_str(void) {
    static const struct {
        hz_status st;
        const char *name;
    } all[] = {
        {HZ_OK, "ok"},
        {HZ_FULL, "ring full"},
        {HZ_SHED, "event shed by a staged ring"},
        {HZ_NOT_SUBSCRIBED, "stream not subscribed"},
        {HZ_EMPTY, "nothing to deliver"},
        {HZ_GOT_NOTICE, "notice"},
        {HZ_ERR_NULL, "null pointer"},
        {HZ_ERR_INVALID, "invalid argument"},
        {HZ_ERR_CONFIG, "invalid configuration"},
        {HZ_ERR_TOO_LARGE, "payload too large"},
        {HZ_ERR_STATE, "wrong state"},
        {HZ_ERR_MALFORMED, "malformed flip"},
        {HZ_ERR_BUFFER_TOO_SMALL, "buffer too small"},
        {HZ_ERR_MODEL, "invalid model"},
        {HZ_ERR_IO, "i/o error"},
        {HZ_ERR_PANIC, "internal error (panic)"},
        {HZ_ERR_RING_FILE, "ring file refused"},
        {HZ_ERR_BUSY, "ring file in use"},
        {HZ_ERR_NO_MEMORY, "out of memory"},
        {HZ_ERR_RING_CORRUPT, "ring file corrupt"},
    };
    const size_t n = sizeof all / sizeof all[0];
    /* Success and informational results are dense from 0 below HZ_ERR_FIRST; errors dense from
       HZ_ERR_FIRST. */
    CHECK(HZ_GOT_NOTICE < HZ_ERR_FIRST && HZ_ERR_NULL == HZ_ERR_FIRST);
    CHECK(n == (HZ_GOT_NOTICE + 1) + (HZ_ERR_RING_CORRUPT - HZ_ERR_FIRST + 1));
    for (size_t i = 0; i < n; i++) {
        hz_status want = i <= HZ_GOT_NOTICE ? (hz_status)i : (hz_status)(HZ_ERR_FIRST + i - (HZ_GOT_NOTICE + 1));
        CHECK(all[i].st == want);
        const char *s = hz_status_str(all[i].st);
        CHECK(s != NULL);
        CHECK(strcmp(s, all[i].name) == 0);
        CHECK(strcmp(s, "unknown status") != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, hz_status_str(all[j].st)) != 0);
    }
    const uint32_t unknown[] = {HZ_GOT_NOTICE + 1, HZ_ERR_FIRST - 1, HZ_ERR_RING_CORRUPT + 1, 100, 999, 0x7fffffffu, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(strcmp(hz_status_str(unknown[i]), "unknown status") == 0);
    }
}

/* hz_config_*: construction, every setter, NULL and unknown values, hz_config_last_error. */
static void test_config(void) {
    hz_config *c = (hz_config *)SENT_PTR;
    CHECK_ST(hz_config_new(1, 2, 4096, 64, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_config_new(1, 0, 4096, 64, &c), HZ_ERR_INVALID);
    CHECK(c == SENT_PTR);
    CHECK_ST(hz_config_new(1, 17, 4096, 64, &c), HZ_ERR_INVALID);
    CHECK(c == SENT_PTR);
    CHECK_ST(hz_config_new(1, UINT32_MAX, 4096, 64, &c), HZ_ERR_INVALID);
    CHECK(c == SENT_PTR);
    CHECK_OK(hz_config_new(1, 16, 4096, 64, &c));
    CHECK(c != SENT_PTR && c != NULL);
    hz_config_free(c);
    c = cfg_new(1, 1); /* one stream is allowed */
    hz_config_free(c);

    /* NULL config: every setter says HZ_ERR_NULL. */
    CHECK_ST(hz_config_set_initial_stream(NULL, 0), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_max_origins(NULL, 4), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_gap_policy(NULL, HZ_GAP_REREAD), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_seq_mode(NULL, HZ_SEQ_STRICT), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_staging_budget(NULL, 1 << 20), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_default_window(NULL, 10), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_keep_previous(NULL, 1), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_policy(NULL, HZ_POLICY_MANUAL), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_preset(NULL, HZ_PRESET_BALANCED), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_pool(NULL, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_cold_switch_cost(NULL, 1), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_spread(NULL, 1, 500), HZ_ERR_NULL);
    CHECK(hz_config_last_error(NULL) != NULL);
    CHECK(strcmp(hz_config_last_error(NULL), "") == 0);

    c = cfg_new(7, 3);
    CHECK(strcmp(hz_config_last_error(c), "") == 0);
    /* Valid values. */
    CHECK_OK(hz_config_set_initial_stream(c, 2));
    CHECK_OK(hz_config_set_max_origins(c, 1));
    CHECK_OK(hz_config_set_max_origins(c, 64));
    CHECK_OK(hz_config_set_gap_policy(c, HZ_GAP_REPORT_LOST));
    CHECK_OK(hz_config_set_gap_policy(c, HZ_GAP_REREAD));
    CHECK_OK(hz_config_set_seq_mode(c, HZ_SEQ_MONOTONIC));
    CHECK_OK(hz_config_set_seq_mode(c, HZ_SEQ_STRICT));
    CHECK_OK(hz_config_set_staging_budget(c, 0));
    CHECK_OK(hz_config_set_staging_budget(c, SIZE_MAX));
    CHECK_OK(hz_config_set_default_window(c, 1));
    CHECK_OK(hz_config_set_default_window(c, 100));
    CHECK_OK(hz_config_set_keep_previous(c, 0));
    CHECK_OK(hz_config_set_keep_previous(c, 7));
    for (uint32_t p = HZ_POLICY_MANUAL; p <= HZ_POLICY_PREDICTOR; p++) CHECK_OK(hz_config_set_policy(c, p));
    for (uint32_t p = HZ_PRESET_CONSERVATIVE; p <= HZ_PRESET_AGGRESSIVE; p++) CHECK_OK(hz_config_set_preset(c, p));
    CHECK(strcmp(hz_config_last_error(c), "") == 0);

    /* Unknown values and zeros: HZ_ERR_INVALID with a reason. */
    CHECK_ST(hz_config_set_max_origins(c, 0), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "max_origins");
    CHECK_ST(hz_config_set_gap_policy(c, 2), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "gap policy");
    CHECK_ST(hz_config_set_gap_policy(c, UINT32_MAX), HZ_ERR_INVALID);
    CHECK_ST(hz_config_set_seq_mode(c, 2), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "seq mode");
    CHECK_ST(hz_config_set_seq_mode(c, UINT32_MAX), HZ_ERR_INVALID);
    CHECK_ST(hz_config_set_default_window(c, 0), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "window");
    CHECK_ST(hz_config_set_policy(c, HZ_POLICY_PREDICTOR + 1), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "policy");
    CHECK_ST(hz_config_set_policy(c, UINT32_MAX), HZ_ERR_INVALID);
    CHECK_ST(hz_config_set_preset(c, HZ_PRESET_AGGRESSIVE + 1), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "preset");
    CHECK_ST(hz_config_set_preset(c, UINT32_MAX), HZ_ERR_INVALID);

    /* A refused value leaves the previous one: policy stays PREDICTOR (set last above), so a
       model loads (HZ_ERR_STATE otherwise). */
    hz_engine *e = engine_from(c);
    CHECK(active_of(e) == 2); /* initial stream 2 */
    CHECK_OK(hz_engine_load_model_file(e, model_path));
    hz_engine_free(e);

    /* One configuration builds several engines, and may be freed before them. */
    hz_engine *e1 = engine_from(c);
    hz_engine *e2 = engine_from(c);
    hz_config_free(c);
    CHECK(active_of(e1) == 2 && active_of(e2) == 2);
    hz_engine_free(e2);
    hz_engine_free(e1);
}

/* hz_engine_new: NULL pointers and every kind of refused configuration (HZ_ERR_CONFIG). */
static void test_engine_new_errors(void) {
    hz_engine *e = (hz_engine *)SENT_PTR;
    hz_config *c = cfg_new(1, 2);
    CHECK_ST(hz_engine_new(NULL, &e), HZ_ERR_NULL);
    CHECK(e == SENT_PTR);
    CHECK_ST(hz_engine_new(c, NULL), HZ_ERR_NULL);
    hz_config_free(c);

    /* capacity 0, or above the maximum; max_payload above its maximum: refused when the
       configuration is made (issue 19: every size has a maximum checked at config time). */
    c = (hz_config *)SENT_PTR;
    CHECK_ST(hz_config_new(1, 2, 0, 64, &c), HZ_ERR_CONFIG);
    CHECK(c == (hz_config *)SENT_PTR);
    CHECK_CONTAINS(hz_last_error(), "capacity_bytes 0");
    CHECK_ST(hz_config_new(1, 2, SIZE_MAX, 64, &c), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_last_error(), "capacity_bytes");
    CHECK_ST(hz_config_new(1, 2, 1 << 16, SIZE_MAX, &c), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_last_error(), "max_payload");
    CHECK(c == (hz_config *)SENT_PTR);

    /* capacity too small for one maximal record */
    CHECK_OK(hz_config_new(1, 2, 64, 1024, &c));
    CHECK_ST(hz_engine_new(c, &e), HZ_ERR_CONFIG);
    CHECK(e == SENT_PTR);
    CHECK(strlen(hz_config_last_error(c)) > 0);
    hz_config_free(c);


    /* initial stream out of range */
    c = cfg_new(1, 3);
    CHECK_OK(hz_config_set_initial_stream(c, 3));
    CHECK_ST(hz_engine_new(c, &e), HZ_ERR_CONFIG);
    CHECK(e == SENT_PTR);
    CHECK_CONTAINS(hz_config_last_error(c), "3");
    /* fixed, the same config builds */
    CHECK_OK(hz_config_set_initial_stream(c, 1));
    e = engine_from(c);
    CHECK(active_of(e) == 1);
    hz_engine_free(e);
    hz_config_free(c);
}

/* Producers: take (errors, twice -> STATE), push and push_batch with every documented status. */
static void test_producers(recorder *r) {
    hz_config *c = NULL;
    CHECK_OK(hz_config_new(5, 2, 4096, 64, &c)); /* small rings: backpressure comes fast */
    hz_engine *e = engine_from(c);
    hz_config_free(c);

    hz_producer *p = (hz_producer *)SENT_PTR;
    CHECK_ST(hz_engine_take_producer(NULL, 0, &p), HZ_ERR_NULL);
    CHECK(p == SENT_PTR);
    CHECK_ST(hz_engine_take_producer(e, 0, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_engine_take_producer(e, 2, &p), HZ_ERR_INVALID);
    CHECK(p == SENT_PTR);
    CHECK_CONTAINS(hz_engine_last_error(e), "2");
    CHECK_ST(hz_engine_take_producer(e, UINT32_MAX, &p), HZ_ERR_INVALID);
    CHECK(p == SENT_PTR);
    hz_producer *p0 = take(e, 0);
    CHECK_ST(hz_engine_take_producer(e, 0, &p), HZ_ERR_STATE);
    CHECK(p == SENT_PTR);
    CHECK_CONTAINS(hz_engine_last_error(e), "already taken");
    hz_producer *p1 = take(e, 1);
    CHECK_ST(hz_engine_take_producer(e, 1, &p), HZ_ERR_STATE);
    CHECK(p == SENT_PTR);

    /* Queries on NULL. */
    CHECK(hz_producer_stream(NULL) == 0);
    CHECK(hz_producer_error_count(NULL) == 0);
    CHECK(hz_producer_last_error(NULL) != NULL && strcmp(hz_producer_last_error(NULL), "") == 0);
    CHECK(hz_producer_stream(p1) == 1);
    CHECK(hz_producer_error_count(p0) == 0);
    CHECK(strcmp(hz_producer_last_error(p0), "") == 0);

    /* hz_producer_push errors. */
    hz_event_header h = hdr(1, 1, HZ_KIND_DATA);
    uint8_t big[65];
    memset(big, 0x5a, sizeof big);
    CHECK_ST(hz_producer_push(NULL, &h, big, 8), HZ_ERR_NULL);
    CHECK_ST(hz_producer_push(p0, NULL, big, 8), HZ_ERR_NULL);
    CHECK(hz_producer_error_count(p0) == 1);
    CHECK_CONTAINS(hz_producer_last_error(p0), "header");
    CHECK_ST(hz_producer_push(p0, &h, NULL, 8), HZ_ERR_NULL);
    CHECK(hz_producer_error_count(p0) == 2);
    CHECK_CONTAINS(hz_producer_last_error(p0), "payload");
    CHECK_ST(hz_producer_push(p0, &h, big, 65), HZ_ERR_TOO_LARGE);
    CHECK(hz_producer_error_count(p0) == 3);
    CHECK_CONTAINS(hz_producer_last_error(p0), "exceeds");
    {
        /* A large, readable payload: refused before anything is read or written. */
        uint8_t *mib = (uint8_t *)calloc(1, 1 << 20);
        CHECK(mib != NULL);
        CHECK_ST(hz_producer_push(p0, &h, mib, 1 << 20), HZ_ERR_TOO_LARGE);
        free(mib);
    }
    CHECK(hz_producer_error_count(p0) == 4);
    if (getenv("HZ_API_HUGE_LEN") != NULL) {
        /* Repro of a library bug (README): a length above isize::MAX reaches
           slice::from_raw_parts before the max_payload check; a debug build aborts. */
        CHECK_ST(hz_producer_push(p0, &h, big, SIZE_MAX), HZ_ERR_TOO_LARGE);
        CHECK(hz_producer_error_count(p0) == 5);
        return;
    }
    /* Nothing was written by the failed pushes. */
    rec_clear(r);
    CHECK(drain(e, r) == 0);

    /* NULL payload with length 0 is fine; a payload of exactly max_payload too. */
    CHECK_OK(hz_producer_push(p0, &h, NULL, 0));
    h = hdr(2, 2, HZ_KIND_DATA);
    CHECK_OK(hz_producer_push(p0, &h, big, 64));
    /* Idle stream: discarded, informational, not counted. */
    CHECK_ST(push_data(p1, 1, 1), HZ_NOT_SUBSCRIBED);
    CHECK(hz_producer_error_count(p1) == 0);
    rec_clear(r);
    CHECK(drain(e, r) == 2);
    CHECK(r->ev[0].h.seq == 1 && r->ev[0].len == 0 && r->ev[0].stream == 0);
    CHECK(r->ev[1].h.seq == 2 && r->ev[1].len == 64 && r->ev[1].payload[63] == 0x5a);
    CHECK(r->ev[1].h.pos == 2 && r->ev[1].h.ts_ns == 2000 && r->ev[1].h.kind == HZ_KIND_DATA);

    /* Backpressure: fill the 4 KiB active ring until HZ_FULL; not counted as an error. */
    uint64_t seq = 3, errors = hz_producer_error_count(p0);
    uint32_t st;
    while ((st = push_data(p0, seq, seq)) == HZ_OK) seq++;
    CHECK_ST(st, HZ_FULL);
    CHECK(seq > 3 + 10);
    CHECK(hz_producer_error_count(p0) == errors);
    size_t stored = (size_t)(seq - 3);
    /* push_batch on a full ring: HZ_FULL, *pushed = 0. */
    {
        hz_event_header hs[2] = {hdr(seq, seq, HZ_KIND_DATA), hdr(seq + 1, seq + 1, HZ_KIND_DATA)};
        const uint8_t *ps[2] = {big, big};
        size_t ls[2] = {8, 8};
        size_t pushed = SENT_SIZE;
        CHECK_ST(hz_producer_push_batch(p0, hs, ps, ls, 2, &pushed), HZ_FULL);
        CHECK(pushed == 0);
    }
    rec_clear(r);
    CHECK(drain(e, r) == stored);
    for (size_t i = 0; i < stored; i++) CHECK(r->ev[i].h.seq == 3 + i);
    CHECK_OK(push_data(p0, seq, seq)); /* room again */
    seq++;

    /* hz_producer_push_batch. */
    {
        size_t pushed = SENT_SIZE;
        hz_event_header hs[3];
        const uint8_t *ps[3];
        size_t ls[3];
        for (int i = 0; i < 3; i++) {
            hs[i] = hdr(seq + (uint64_t)i, seq + (uint64_t)i, HZ_KIND_DATA);
            ps[i] = big;
            ls[i] = (size_t)(8 + i);
        }
        CHECK_ST(hz_producer_push_batch(NULL, hs, ps, ls, 3, &pushed), HZ_ERR_NULL);
        CHECK(pushed == SENT_SIZE);
        errors = hz_producer_error_count(p0);
        CHECK_ST(hz_producer_push_batch(p0, NULL, ps, ls, 3, &pushed), HZ_ERR_NULL);
        CHECK_ST(hz_producer_push_batch(p0, hs, NULL, ls, 3, &pushed), HZ_ERR_NULL);
        CHECK_ST(hz_producer_push_batch(p0, hs, ps, NULL, 3, &pushed), HZ_ERR_NULL);
        CHECK(pushed == SENT_SIZE);
        CHECK(hz_producer_error_count(p0) == errors + 3);
        CHECK_CONTAINS(hz_producer_last_error(p0), "NULL");
        /* n == 0: NULL arrays are fine. */
        CHECK_OK(hz_producer_push_batch(p0, NULL, NULL, NULL, 0, &pushed));
        CHECK(pushed == 0);
        pushed = SENT_SIZE;
        CHECK_OK(hz_producer_push_batch(p0, hs, ps, ls, 3, &pushed));
        CHECK(pushed == 3);
        seq += 3;
        /* `pushed` may be NULL. */
        for (int i = 0; i < 3; i++) hs[i] = hdr(seq + (uint64_t)i, seq + (uint64_t)i, HZ_KIND_DATA);
        CHECK_OK(hz_producer_push_batch(p0, hs, ps, ls, 3, NULL));
        seq += 3;
        /* Oversize in the middle: the first is published, *pushed = 1, counted with a reason. */
        for (int i = 0; i < 3; i++) hs[i] = hdr(seq + (uint64_t)i, seq + (uint64_t)i, HZ_KIND_DATA);
        ls[1] = 65;
        pushed = SENT_SIZE;
        errors = hz_producer_error_count(p0);
        CHECK_ST(hz_producer_push_batch(p0, hs, ps, ls, 3, &pushed), HZ_ERR_TOO_LARGE);
        CHECK(pushed == 1);
        CHECK(hz_producer_error_count(p0) == errors + 1);
        CHECK_CONTAINS(hz_producer_last_error(p0), "event 1");
        seq += 1;
        rec_clear(r);
        CHECK(drain(e, r) == 1 + 3 + 3 + 1);
        CHECK(r->ev[0].h.seq == seq - 8);
        CHECK(r->ev[1].len == 8 && r->ev[2].len == 9 && r->ev[3].len == 10);
        CHECK(r->ev[7].h.seq == seq - 1);
        /* A NULL payload with a non-zero length in the middle: HZ_ERR_NULL, counted; the event
           before it is published and *pushed says so. */
        for (int i = 0; i < 3; i++) hs[i] = hdr(seq + (uint64_t)i, seq + (uint64_t)i, HZ_KIND_DATA);
        ls[1] = 8;
        ps[1] = NULL;
        pushed = SENT_SIZE;
        errors = hz_producer_error_count(p0);
        CHECK_ST(hz_producer_push_batch(p0, hs, ps, ls, 3, &pushed), HZ_ERR_NULL);
        CHECK(pushed == 1);
        CHECK(hz_producer_error_count(p0) == errors + 1);
        CHECK_CONTAINS(hz_producer_last_error(p0), "payloads[1]");
        rec_clear(r);
        CHECK(drain(e, r) == 1);
        CHECK(r->ev[0].h.seq == seq);
        seq += 1;
        /* Idle stream: HZ_NOT_SUBSCRIBED with *pushed = 0. */
        pushed = SENT_SIZE;
        ps[1] = big;
        CHECK_ST(hz_producer_push_batch(p1, hs, ps, ls, 3, &pushed), HZ_NOT_SUBSCRIBED);
        CHECK(pushed == 0);
        CHECK(hz_producer_error_count(p1) == 0);
    }

    /* Engine errors are counted in stats.api_errors (take_producer x5, above). */
    hz_stats s = stats_of(e);
    CHECK(s.api_errors == 5);

    /* Producers outlive their engine: pushes then say NOT_SUBSCRIBED or FULL, never crash. */
    hz_engine_free(e);
    for (int i = 0; i < 200; i++) {
        uint32_t a = push_data(p0, seq + (uint64_t)i, seq + (uint64_t)i);
        CHECK(a == HZ_OK || a == HZ_FULL || a == HZ_NOT_SUBSCRIBED);
        uint32_t b = push_data(p1, seq + (uint64_t)i, seq + (uint64_t)i);
        CHECK(b == HZ_OK || b == HZ_FULL || b == HZ_NOT_SUBSCRIBED);
    }
    hz_producer_free(p0);
    hz_producer_free(p1);
}

/* hz_engine_poll / stats / active_stream / arm / disarm / last_error, NULL paths and notices. */
static void test_engine_calls(recorder *r) {
    hz_config *c = cfg_new(42, 3);
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1), *p2 = take(e, 2);

    CHECK(hz_engine_last_error(NULL) != NULL && strcmp(hz_engine_last_error(NULL), "") == 0);
    CHECK(strcmp(hz_engine_last_error(e), "") == 0);

    /* poll */
    size_t n = SENT_SIZE;
    CHECK_ST(hz_engine_poll(NULL, 10, on_event, on_notice, r, &n), HZ_ERR_NULL);
    CHECK(n == SENT_SIZE);
    CHECK_ST(hz_engine_poll(e, 10, NULL, on_notice, r, &n), HZ_ERR_NULL);
    CHECK(n == SENT_SIZE);
    CHECK_CONTAINS(hz_engine_last_error(e), "on_event");
    CHECK_OK(hz_engine_poll(e, 10, on_event, NULL, NULL, NULL)); /* nothing queued: no callback */
    CHECK_OK(hz_engine_poll(e, 10, on_event, on_notice, r, &n));
    CHECK(n == 0);

    /* stats: NULL paths leave *out untouched */
    hz_stats s;
    memset(&s, 0xab, sizeof s);
    s.struct_size = sizeof s;
    CHECK_ST(hz_engine_stats(NULL, &s), HZ_ERR_NULL);
    CHECK(s.delivered == 0xababababababababULL && s.api_errors == 0xababababababababULL);
    CHECK_ST(hz_engine_stats(e, NULL), HZ_ERR_NULL);
    /* ...and a struct_size below the first layout: refused, untouched. */
    s.struct_size = 8;
    CHECK_ST(hz_engine_stats(e, &s), HZ_ERR_INVALID);
    CHECK(s.delivered == 0xababababababababULL);
    CHECK_CONTAINS(hz_engine_last_error(e), "struct_size");
    s.struct_size = sizeof s;

    /* active_stream */
    uint32_t a = SENT_U32;
    CHECK_ST(hz_engine_active_stream(NULL, &a), HZ_ERR_NULL);
    CHECK(a == SENT_U32);
    uint64_t errs = stats_of(e).api_errors;
    CHECK_ST(hz_engine_active_stream(e, NULL), HZ_ERR_NULL);
    CHECK(stats_of(e).api_errors == errs + 1);
    CHECK(active_of(e) == 0);

    /* frontier: the last seq delivered per origin */
    uint64_t fr = SENT_U64;
    CHECK_ST(hz_engine_frontier(NULL, 0, &fr), HZ_ERR_NULL);
    CHECK_ST(hz_engine_frontier(e, 0, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_engine_frontier(e, 1u << 30, &fr), HZ_ERR_INVALID);
    CHECK(fr == SENT_U64);

    /* arm / disarm */
    CHECK_ST(hz_engine_arm(NULL, 1), HZ_ERR_NULL);
    CHECK_ST(hz_engine_disarm(NULL, 1), HZ_ERR_NULL);
    CHECK_ST(hz_engine_arm(e, 3), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "3");
    CHECK_ST(hz_engine_disarm(e, UINT32_MAX), HZ_ERR_INVALID);

    /* Data flows, with max respected. */
    for (uint64_t i = 1; i <= 5; i++) CHECK_OK(push_data(p0, i, i));
    CHECK_ST(push_data(p1, 1, 1), HZ_NOT_SUBSCRIBED);
    rec_clear(r);
    CHECK_OK(hz_engine_poll(e, 2, on_event, on_notice, r, &n));
    CHECK(n == 2 && r->nev == 2);
    CHECK_OK(hz_engine_poll(e, 0, on_event, on_notice, r, &n));
    CHECK(n == 0 && r->nev == 2);
    CHECK(drain(e, r) == 3);
    for (size_t i = 0; i < 5; i++) CHECK(r->ev[i].h.seq == i + 1 && r->ev[i].stream == 0);
    CHECK(r->nnt == 0);

    /* arm(1): the manual policy stages it (SUBSCRIBE from 0); disarm: UNSUBSCRIBE. */
    CHECK_OK(hz_engine_arm(e, 1));
    rec_clear(r);
    drain(e, r);
    CHECK(r->nnt == 1 && r->nt[0].n.kind == HZ_NOTICE_SUBSCRIBE && r->nt[0].n.stream == 1);
    CHECK(r->nt[0].n.start_pos == 0 && r->nt[0].n.locator_len == 0);
    CHECK_OK(push_data(p1, 6, 6)); /* staged: stored */
    CHECK_OK(hz_engine_disarm(e, 1));
    rec_clear(r);
    drain(e, r);
    CHECK(r->nnt == 1 && r->nt[0].n.kind == HZ_NOTICE_UNSUBSCRIBE && r->nt[0].n.stream == 1);
    CHECK_ST(push_data(p1, 7, 7), HZ_NOT_SUBSCRIBED);

    /* Heartbeats are consumed; unknown kinds are delivered as data and counted. */
    hz_event_header hb = hdr(6, 0, HZ_KIND_HEARTBEAT);
    CHECK_OK(hz_producer_push(p0, &hb, NULL, 0));
    hz_event_header odd = hdr(7, 6, 9);
    CHECK_OK(hz_producer_push(p0, &odd, (const uint8_t *)"xyz", 3));
    rec_clear(r);
    CHECK(drain(e, r) == 1);
    CHECK(r->ev[0].h.kind == 9 && r->ev[0].h.seq == 6 && r->ev[0].len == 3);
    CHECK(memcmp(r->ev[0].payload, "xyz", 3) == 0);
    s = stats_of(e);
    CHECK(s.unknown_kinds == 1 && s.delivered == 6);

    /* Bad event: origin >= max_origins (64 by default). */
    hz_event_header bad = hdr(8, 1, HZ_KIND_DATA);
    bad.origin = 64;
    CHECK_OK(hz_producer_push(p0, &bad, NULL, 0));
    rec_clear(r);
    CHECK(drain(e, r) == 0);
    CHECK(r->nnt == 1 && r->nt[0].n.kind == HZ_NOTICE_BAD_EVENT);
    CHECK(r->nt[0].n.stream == 0 && r->nt[0].n.pos == 8 && r->nt[0].n.origin == 64);
    CHECK(r->nt[0].n.seq == 1 && r->nt[0].n.reason == HZ_BAD_EVENT_UNKNOWN_ORIGIN);
    CHECK(stats_of(e).bad_events == 1);

    /* Flip rejections: switch to the active stream, to an unknown stream, switchback with no
       previous stream, and a malformed record (bad CRC). */
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 0, 900);
    CHECK_OK(push_flip(p0, 9, &f));
    f = mkflip(HZ_FLIP_SWITCH, 7, 901);
    CHECK_OK(push_flip(p0, 10, &f));
    f = mkflip(HZ_FLIP_SWITCHBACK, 0, 902);
    CHECK_OK(push_flip(p0, 11, &f));
    {
        uint8_t buf[HZ_MAX_FLIP_LEN];
        f = mkflip(HZ_FLIP_SWITCH, 1, 903);
        size_t len = encode(&f, buf, sizeof buf);
        buf[len - 1] ^= 0xff;
        hz_event_header fh = hdr(12, 0, HZ_KIND_FLIP);
        CHECK_OK(hz_producer_push(p0, &fh, buf, len));
    }
    CHECK_OK(push_data(p0, 13, 7));
    rec_clear(r);
    CHECK(drain(e, r) == 1);
    CHECK(r->nnt == 4);
    static const uint32_t reasons[4] = {HZ_REJECT_ALREADY_ACTIVE, HZ_REJECT_UNKNOWN_STREAM,
                                        HZ_REJECT_NO_PREVIOUS, HZ_REJECT_MALFORMED};
    for (size_t i = 0; i < 4; i++) {
        CHECK(r->nt[i].n.kind == HZ_NOTICE_FLIP_REJECTED);
        CHECK(r->nt[i].n.stream == 0 && r->nt[i].n.pos == 9 + i);
        CHECK(r->nt[i].n.reason == reasons[i]);
    }
    CHECK(r->ev[0].h.seq == 7 && r->ev[0].order > r->nt[3].order);
    s = stats_of(e);
    CHECK(s.flips_rejected == 4 && s.flips_applied == 0);
    CHECK(active_of(e) == 0);

    /* ANNOUNCE stages the target; a seamless SWITCH to it; the same flip on the target is a
       repeat; duplicates of delivered events are dropped. */
    f = mkflip(HZ_FLIP_ANNOUNCE, 2, 1);
    f.expected_in_ns = 1000000;
    CHECK_OK(push_flip(p0, 14, &f));
    rec_clear(r);
    drain(e, r);
    CHECK(r->nnt == 1 && r->nt[0].n.kind == HZ_NOTICE_SUBSCRIBE && r->nt[0].n.stream == 2);
    for (uint64_t sq = 8; sq <= 9; sq++) {
        CHECK_OK(push_data(p0, 7 + sq, sq));
        CHECK_OK(push_data(p2, 7 + sq, sq)); /* staged: kept */
    }
    f = mkflip(HZ_FLIP_SWITCH, 2, 2);
    CHECK_OK(push_flip(p0, 17, &f));
    CHECK_OK(push_flip(p2, 17, &f));
    CHECK_OK(push_data(p2, 18, 10));
    CHECK_OK(push_data(p0, 18, 10)); /* stream 0 is still active until the flip is consumed */
    rec_clear(r);
    CHECK(drain(e, r) == 3);
    CHECK(r->ev[0].h.seq == 8 && r->ev[0].stream == 0);
    CHECK(r->ev[1].h.seq == 9 && r->ev[1].stream == 0);
    CHECK(r->ev[2].h.seq == 10 && r->ev[2].stream == 2);
    {
        const nt_rec *sw = find_notice(r, HZ_NOTICE_SWITCHED, 0);
        CHECK(sw != NULL && count_notices(r, HZ_NOTICE_SWITCHED) == 1);
        CHECK(sw->n.stream == 0 && sw->n.to_stream == 2 && sw->n.flip_id == 2 && sw->n.seamless == 1);
        CHECK(sw->order + 1 == r->ev[2].order); /* right before the first event of stream 2 */
    }
    CHECK(active_of(e) == 2);
    s = stats_of(e);
    CHECK(s.flips_applied == 2 && s.flips_repeated == 1 && s.switches_seamless == 1);
    CHECK(s.duplicates_dropped == 2);

    /* SWITCHBACK to 0 (kept staged): seamless. */
    CHECK_OK(push_data(p0, 19, 11));
    f = mkflip(HZ_FLIP_SWITCHBACK, 0, 3);
    CHECK_OK(push_flip(p2, 19, &f));
    rec_clear(r);
    CHECK(drain(e, r) == 1);
    CHECK(r->ev[0].h.seq == 11 && r->ev[0].stream == 0);
    {
        const nt_rec *sw = find_notice(r, HZ_NOTICE_SWITCHED, 0);
        CHECK(sw != NULL && sw->n.stream == 2 && sw->n.to_stream == 0 && sw->n.flip_id == 3);
        CHECK(sw->n.seamless == 1);
    }
    CHECK(active_of(e) == 0);

    /* Cohort and id selectors: 0 bp and a list without us are ignored; 10000 bp selects us.
       A cold switch to idle stream 1 with a locator and resume_pos: SUBSCRIBE carries them,
       events before resume_pos are dropped, SWITCHED is not seamless. */
    f = mkflip(HZ_FLIP_SWITCH, 1, 4);
    f.selector = HZ_SELECTOR_COHORT;
    f.basis_points = 0;
    f.salt = 77;
    CHECK_OK(push_flip(p0, 20, &f));
    {
        static const uint64_t others[3] = {1, 2, 3};
        f = mkflip(HZ_FLIP_SWITCH, 1, 5);
        f.selector = HZ_SELECTOR_IDS;
        f.ids = others;
        f.ids_len = 3;
        CHECK_OK(push_flip(p0, 21, &f));
    }
    CHECK_OK(push_data(p0, 22, 12));
    f = mkflip(HZ_FLIP_SWITCH, 1, 6);
    f.selector = HZ_SELECTOR_COHORT;
    f.basis_points = 10000;
    f.salt = 77;
    f.resume_pos = 50;
    f.locator = (const uint8_t *)"feed-b";
    f.locator_len = 6;
    CHECK_OK(push_flip(p0, 23, &f));
    rec_clear(r);
    CHECK(drain(e, r) == 1);
    CHECK(r->ev[0].h.seq == 12);
    {
        const nt_rec *sub = find_notice(r, HZ_NOTICE_SUBSCRIBE, 0);
        CHECK(sub != NULL && sub->n.stream == 1 && sub->n.start_pos == 50);
        CHECK(sub->n.locator_len == 6 && memcmp(sub->loc, "feed-b", 6) == 0);
        CHECK(count_notices(r, HZ_NOTICE_SWITCHED) == 0); /* comes with the first event */
    }
    CHECK(active_of(e) == 1);
    s = stats_of(e);
    CHECK(s.flips_ignored == 2);
    CHECK_OK(push_data(p1, 49, 13)); /* before resume_pos: dropped */
    CHECK_OK(push_data(p1, 50, 13));
    CHECK_OK(push_data(p1, 51, 14));
    rec_clear(r);
    CHECK(drain(e, r) == 2);
    CHECK(r->ev[0].h.seq == 13 && r->ev[0].h.pos == 50 && r->ev[0].stream == 1);
    {
        const nt_rec *sw = find_notice(r, HZ_NOTICE_SWITCHED, 0);
        CHECK(sw != NULL && sw->n.stream == 0 && sw->n.to_stream == 1 && sw->n.flip_id == 6);
        CHECK(sw->n.seamless == 0);
        CHECK(sw->order < r->ev[0].order);
    }
    s = stats_of(e);
    CHECK(s.before_resume_pos == 1 && s.switches_cold == 1 && s.switches_seamless == 2);

    /* Gap with the re-read policy: GAP then SUBSCRIBE of the active stream from the position
       after the last delivered; the re-read delivers what was missing. Stream 0 (staged, kept
       as previous) must not hold seqs 15..16 so that no A/B fill happens; it shows seq 17, past
       the hole, so the hole does not wait for it (hz_config_set_gap_wait). */
    CHECK_OK(push_data(p0, 24, 17));
    CHECK_OK(push_data(p1, 54, 17));
    rec_clear(r);
    CHECK(drain(e, r) == 0);
    {
        const nt_rec *g = find_notice(r, HZ_NOTICE_GAP, 0);
        CHECK(g != NULL && g->n.stream == 1 && g->n.origin == 0 && g->n.first_seq == 15 && g->n.last_seq == 16);
        const nt_rec *sub = find_notice(r, HZ_NOTICE_SUBSCRIBE, 0);
        CHECK(sub != NULL && sub->n.stream == 1 && sub->n.start_pos == 52 && sub->order > g->order);
    }
    CHECK_OK(push_data(p1, 52, 15));
    CHECK_OK(push_data(p1, 53, 16));
    CHECK_OK(push_data(p1, 54, 17));
    rec_clear(r);
    CHECK(drain(e, r) == 3);
    for (size_t i = 0; i < 3; i++) CHECK(r->ev[i].h.seq == 15 + i);
    s = stats_of(e);
    CHECK(s.gaps == 1 && s.rereads == 1 && s.lost == 0 && s.delivered == 17);
    {
        uint64_t fr = SENT_U64;
        CHECK_OK(hz_engine_frontier(e, 0, &fr));
        CHECK(fr == 17);
        CHECK_ST(hz_engine_frontier(e, 1, &fr), HZ_ERR_STATE); /* nothing from origin 1 */
        CHECK(fr == 17);
    }

    /* api_errors: poll(NULL on_event), stats(NULL out), stats(struct_size 8),
       active_stream(NULL out), frontier(NULL out), frontier(bad origin), frontier(no data yet),
       arm(3), disarm(UINT32_MAX). */
    CHECK(stats_of(e).api_errors == 9);

    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_producer_free(p2);
    hz_engine_free(e);
}

/* Gap policy REPORT_LOST, monotonic seqs, max_origins, keep_previous = 0, the other policies. */
static void test_config_effects(recorder *r) {
    /* REPORT_LOST: GAP then LOST, the tracker moves on. */
    hz_config *c = cfg_new(1, 2);
    CHECK_OK(hz_config_set_gap_policy(c, HZ_GAP_REPORT_LOST));
    CHECK_OK(hz_config_set_max_origins(c, 2));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    CHECK_OK(push_data(p0, 1, 1));
    CHECK_OK(push_data(p0, 2, 4));
    hz_event_header o2 = hdr(3, 1, HZ_KIND_DATA);
    o2.origin = 2; /* max_origins 2: unknown */
    CHECK_OK(hz_producer_push(p0, &o2, NULL, 0));
    o2.origin = 1;
    o2.pos = 4;
    CHECK_OK(hz_producer_push(p0, &o2, NULL, 0));
    rec_clear(r);
    CHECK(drain(e, r) == 3);
    CHECK(r->ev[0].h.seq == 1 && r->ev[1].h.seq == 4 && r->ev[2].h.origin == 1);
    {
        const nt_rec *g = find_notice(r, HZ_NOTICE_GAP, 0), *l = find_notice(r, HZ_NOTICE_LOST, 0);
        CHECK(g && l && g->order < l->order && l->order < r->ev[1].order);
        CHECK(l->n.origin == 0 && l->n.first_seq == 2 && l->n.last_seq == 3);
        CHECK(count_notices(r, HZ_NOTICE_BAD_EVENT) == 1);
    }
    hz_stats s = stats_of(e);
    CHECK(s.lost == 2 && s.gaps == 1 && s.rereads == 0 && s.bad_events == 1);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);

    /* MONOTONIC: jumps are not gaps; going back is a duplicate. */
    c = cfg_new(1, 2);
    CHECK_OK(hz_config_set_seq_mode(c, HZ_SEQ_MONOTONIC));
    e = engine_from(c);
    hz_config_free(c);
    p0 = take(e, 0);
    CHECK_OK(push_data(p0, 1, 1));
    CHECK_OK(push_data(p0, 2, 5));
    CHECK_OK(push_data(p0, 3, 3));
    CHECK_OK(push_data(p0, 4, 9));
    rec_clear(r);
    CHECK(drain(e, r) == 3);
    CHECK(r->ev[0].h.seq == 1 && r->ev[1].h.seq == 5 && r->ev[2].h.seq == 9 && r->nnt == 0);
    s = stats_of(e);
    CHECK(s.duplicates_dropped == 1 && s.gaps == 0);
    hz_producer_free(p0);
    hz_engine_free(e);

    /* keep_previous = 0: the old stream is released with UNSUBSCRIBE after a switch. With the
       NEVER policy it stays idle. (With the MANUAL policy the previous stream is the switchback
       target, which the policy stages again at once: UNSUBSCRIBE then SUBSCRIBE; see README.) */
    for (uint32_t pol = HZ_POLICY_MANUAL; pol <= HZ_POLICY_NEVER; pol++) {
        c = cfg_new(1, 2);
        CHECK_OK(hz_config_set_keep_previous(c, 0));
        CHECK_OK(hz_config_set_policy(c, pol));
        e = engine_from(c);
        hz_config_free(c);
        p0 = take(e, 0);
        p1 = take(e, 1);
        hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 10);
        CHECK_OK(push_flip(p0, 1, &f));
        rec_clear(r);
        CHECK(drain(e, r) == 0);
        const nt_rec *un = find_notice(r, HZ_NOTICE_UNSUBSCRIBE, 0);
        CHECK(un != NULL && un->n.stream == 0);
        const nt_rec *sub = find_notice(r, HZ_NOTICE_SUBSCRIBE, 0);
        CHECK(sub != NULL && sub->n.stream == 1 && sub->order > un->order);
        CHECK_OK(push_data(p1, 1, 1));
        if (pol == HZ_POLICY_NEVER) {
            CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 1);
            CHECK_ST(push_data(p0, 2, 2), HZ_NOT_SUBSCRIBED);
        } else {
            /* Documented: the manual policy stages the switchback target, so the released old
               stream is subscribed again at once. */
            const nt_rec *again = find_notice(r, HZ_NOTICE_SUBSCRIBE, 1);
            CHECK(again != NULL && again->n.stream == 0 && again->order > un->order);
        }
        CHECK(drain(e, r) == 1);
        hz_producer_free(p0);
        hz_producer_free(p1);
        hz_engine_free(e);
    }

    /* NEVER: an announce stages nothing. ALWAYS: every candidate is staged. A staging budget of
       0 stages nothing either. */
    c = cfg_new(1, 3);
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_NEVER));
    e = engine_from(c);
    p0 = take(e, 0);
    hz_flip f = mkflip(HZ_FLIP_ANNOUNCE, 1, 11);
    CHECK_OK(push_flip(p0, 1, &f));
    rec_clear(r);
    drain(e, r);
    CHECK(r->nnt == 0);
    hz_producer_free(p0);
    hz_engine_free(e);

    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_ALWAYS));
    e = engine_from(c);
    rec_clear(r);
    drain(e, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 2);
    hz_engine_free(e);

    CHECK_OK(hz_config_set_staging_budget(c, 0));
    e = engine_from(c);
    rec_clear(r);
    drain(e, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 0);
    hz_engine_free(e);
    hz_config_free(c);
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    CHECK(fseek(fp, 0, SEEK_END) == 0);
    long n = ftell(fp);
    CHECK(n > 0);
    CHECK(fseek(fp, 0, SEEK_SET) == 0);
    uint8_t *buf = (uint8_t *)malloc((size_t)n);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, fp) == (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Models: STATE on a non-predictor engine; a valid model from file and buffer; refused models
   (HZ_ERR_MODEL, the engine keeps working); NULLs; I/O errors; every preset. */
static void test_models(recorder *r) {
    size_t len = 0;
    uint8_t *json = read_file(model_path, &len);

    /* Non-predictor engine: HZ_ERR_STATE for a valid model, from buffer and file. */
    hz_config *c = cfg_new(3, 2);
    hz_engine *e = engine_from(c);
    CHECK_ST(hz_engine_load_model(e, json, len), HZ_ERR_STATE);
    CHECK_CONTAINS(hz_engine_last_error(e), "predictor");
    CHECK_ST(hz_engine_load_model_file(e, model_path), HZ_ERR_STATE);
    CHECK_ST(hz_engine_load_model(NULL, json, len), HZ_ERR_NULL);
    CHECK_ST(hz_engine_load_model_file(NULL, model_path), HZ_ERR_NULL);
    hz_engine_free(e);

    for (uint32_t preset = HZ_PRESET_CONSERVATIVE; preset <= HZ_PRESET_AGGRESSIVE; preset++) {
        CHECK_OK(hz_config_set_policy(c, HZ_POLICY_PREDICTOR));
        CHECK_OK(hz_config_set_preset(c, preset));
        e = engine_from(c);
        hz_producer *p0 = take(e, 0);
        uint64_t seq = 1;

        CHECK_OK(hz_engine_load_model_file(e, model_path));
        CHECK_OK(hz_engine_load_model(e, json, len));

        uint64_t errs = stats_of(e).api_errors;
        /* NULL pointers */
        CHECK_ST(hz_engine_load_model(e, NULL, len), HZ_ERR_NULL);
        CHECK_ST(hz_engine_load_model_file(e, NULL), HZ_ERR_NULL);
        /* I/O */
        CHECK_ST(hz_engine_load_model_file(e, "/nonexistent/harmonizer-model.json"), HZ_ERR_IO);
        CHECK_CONTAINS(hz_engine_last_error(e), "/nonexistent/harmonizer-model.json");
        CHECK_ST(hz_engine_load_model_file(e, "/"), HZ_ERR_IO);
        /* Refused models */
        CHECK_ST(hz_engine_load_model(e, NULL, 0), HZ_ERR_MODEL);
        CHECK_ST(hz_engine_load_model(e, (const uint8_t *)"{}", 2), HZ_ERR_MODEL);
        CHECK(strlen(hz_engine_last_error(e)) > 0);
        CHECK_ST(hz_engine_load_model(e, (const uint8_t *)"not json", 8), HZ_ERR_MODEL);
        CHECK_ST(hz_engine_load_model(e, (const uint8_t *)"\xff\xfe", 2), HZ_ERR_MODEL);
        CHECK_CONTAINS(hz_engine_last_error(e), "UTF-8");
        CHECK_ST(hz_engine_load_model(e, json, len / 2), HZ_ERR_MODEL); /* truncated JSON */
        {
            /* A well-formed file with the wrong format tag. */
            uint8_t *copy = (uint8_t *)malloc(len);
            CHECK(copy != NULL);
            memcpy(copy, json, len);
            uint8_t *tag = (uint8_t *)strstr((char *)copy, "harmonizer-predictor");
            if (tag != NULL && tag < copy + len) {
                tag[0] = 'X';
                CHECK_ST(hz_engine_load_model(e, copy, len), HZ_ERR_MODEL);
            }
            free(copy);
        }
        CHECK(stats_of(e).api_errors >= errs + 9);

        /* The engine still works after refused models, and still takes a good one. */
        for (int i = 0; i < 50; i++, seq++) CHECK_OK(push_data(p0, seq, seq));
        rec_clear(r);
        CHECK(drain(e, r) == 50);
        CHECK(r->ev[49].h.seq == 50);
        CHECK_OK(hz_engine_load_model(e, json, len));
        CHECK_OK(push_data(p0, seq, seq));
        CHECK(drain(e, r) == 1);
        hz_producer_free(p0);
        hz_engine_free(e);
    }
    hz_config_free(c);
    free(json);
}

/* Flip encode/decode: every field, every error, hz_last_error. */
static void test_flips(void) {
    uint8_t buf[HZ_MAX_FLIP_LEN + 16];
    size_t len = SENT_SIZE, written = SENT_SIZE;
    hz_flip f = mkflip(HZ_FLIP_ANNOUNCE, 2, 0x1122334455667788ULL);
    f.cutover_pos = 10;
    f.resume_pos = 20;
    f.not_before_ns = 30;
    f.expected_in_ns = 40;
    f.selector = HZ_SELECTOR_COHORT;
    f.basis_points = 2500;
    f.salt = 99;
    f.locator = (const uint8_t *)"tcp://b:9000";
    f.locator_len = 12;

    /* encoded_len */
    CHECK_ST(hz_flip_encoded_len(NULL, &len), HZ_ERR_NULL);
    CHECK(len == SENT_SIZE);
    CHECK_CONTAINS(hz_last_error(), "flip");
    CHECK_ST(hz_flip_encoded_len(&f, NULL), HZ_ERR_NULL);
    CHECK_OK(hz_flip_encoded_len(&f, &len));
    CHECK(len > 0 && len <= HZ_MAX_FLIP_LEN);

    /* encode */
    CHECK_ST(hz_flip_encode(NULL, buf, sizeof buf, &written), HZ_ERR_NULL);
    CHECK_ST(hz_flip_encode(&f, NULL, sizeof buf, &written), HZ_ERR_NULL);
    CHECK_ST(hz_flip_encode(&f, buf, sizeof buf, NULL), HZ_ERR_NULL);
    CHECK(written == SENT_SIZE);
    CHECK_ST(hz_flip_encode(&f, buf, len - 1, &written), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK(written == SENT_SIZE);
    CHECK_CONTAINS(hz_last_error(), "needs");
    CHECK_ST(hz_flip_encode(&f, buf, 0, &written), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK_OK(hz_flip_encode(&f, buf, len, &written));
    CHECK(written == len);

    /* decode round trip */
    hz_flip d;
    d.struct_size = sizeof d;
    uint64_t ids[32];
    CHECK_OK(hz_flip_decode(buf, written, &d, ids, 32));
    CHECK(d.action == HZ_FLIP_ANNOUNCE && d.target == 2 && d.flip_id == 0x1122334455667788ULL);
    CHECK(d.cutover_pos == 10 && d.resume_pos == 20 && d.not_before_ns == 30 && d.expected_in_ns == 40);
    CHECK(d.selector == HZ_SELECTOR_COHORT && d.basis_points == 2500 && d.salt == 99);
    CHECK(d.ids == NULL && d.ids_len == 0);
    CHECK(d.locator_len == 12 && memcmp(d.locator, "tcp://b:9000", 12) == 0);
    CHECK(d.locator >= buf && d.locator + d.locator_len <= buf + written); /* points into bytes */
    /* ALL selector, no ids buffer needed */
    hz_flip g = mkflip(HZ_FLIP_CANCEL, 1, 5);
    size_t n = encode(&g, buf, sizeof buf);
    CHECK_OK(hz_flip_decode(buf, n, &d, NULL, 0));
    CHECK(d.action == HZ_FLIP_CANCEL && d.selector == HZ_SELECTOR_ALL && d.locator_len == 0);
    g.action = HZ_FLIP_SWITCHBACK;
    n = encode(&g, buf, sizeof buf);
    CHECK_OK(hz_flip_decode(buf, n, &d, NULL, 0));
    CHECK(d.action == HZ_FLIP_SWITCHBACK);
    g.action = HZ_FLIP_SWITCH;
    n = encode(&g, buf, sizeof buf);
    CHECK_OK(hz_flip_decode(buf, n, &d, NULL, 0));
    CHECK(d.action == HZ_FLIP_SWITCH);

    /* The largest flip: 32 ids and a 1024-byte locator is exactly HZ_MAX_FLIP_LEN. */
    uint64_t many[33];
    for (int i = 0; i < 33; i++) many[i] = 1000 + (uint64_t)i;
    static uint8_t loc[1025];
    memset(loc, 'L', sizeof loc);
    hz_flip m = mkflip(HZ_FLIP_SWITCH, 3, 77);
    m.selector = HZ_SELECTOR_IDS;
    m.ids = many;
    m.ids_len = HZ_FLIP_MAX_IDS;
    m.locator = loc;
    m.locator_len = 1024;
    CHECK_OK(hz_flip_encoded_len(&m, &len));
    CHECK(len == HZ_MAX_FLIP_LEN);
    CHECK_OK(hz_flip_encode(&m, buf, sizeof buf, &written));
    CHECK(written == HZ_MAX_FLIP_LEN);
    memset(&d, 0x5a, sizeof d);
    d.struct_size = sizeof d;
    hz_flip before = d;
    CHECK_ST(hz_flip_decode(buf, written, &d, ids, 31), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    CHECK_CONTAINS(hz_last_error(), "32 ids");
    CHECK_ST(hz_flip_decode(buf, written, &d, NULL, 32), HZ_ERR_NULL); /* a NULL buffer for a flip that lists ids */
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    CHECK_OK(hz_flip_decode(buf, written, &d, ids, 32));
    CHECK(d.selector == HZ_SELECTOR_IDS && d.ids == ids && d.ids_len == 32);
    CHECK(ids[0] == 1000 && ids[31] == 1031 && d.locator_len == 1024 && d.locator[1023] == 'L');

    /* struct_size: below the first layout, or not initialised: refused, nothing written. */
    hz_flip bad = f;
    bad.struct_size = 8;
    len = SENT_SIZE;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
    CHECK(len == SENT_SIZE);
    CHECK_CONTAINS(hz_last_error(), "struct_size");
    bad.struct_size = SENT_SIZE;
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "not initialised");
    n = encode(&f, buf, sizeof buf);
    memset(&d, 0x5a, sizeof d);
    d.struct_size = 16;
    before = d;
    CHECK_ST(hz_flip_decode(buf, n, &d, ids, 32), HZ_ERR_INVALID);
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    d.struct_size = sizeof d;

    /* Invalid flips: unknown action, selector; bad id counts; basis points; locator size. */
    bad = f;
    static const uint32_t bad_actions[] = {0, 5, 256, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_actions / sizeof bad_actions[0]; i++) {
        bad.action = bad_actions[i];
        len = SENT_SIZE;
        CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
        CHECK(len == SENT_SIZE);
        CHECK_CONTAINS(hz_last_error(), "action");
        written = SENT_SIZE;
        CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
        CHECK(written == SENT_SIZE);
    }
    bad = f;
    bad.selector = 3;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "selector");
    bad.selector = UINT32_MAX;
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    bad = m;
    bad.ids_len = 0;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "ids");
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    bad.ids_len = 33;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    bad.ids_len = 2;
    bad.ids = NULL;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_NULL);
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_NULL);
    bad = f;
    bad.basis_points = 10001;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "10001");
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    bad.basis_points = 70000; /* above u16 */
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    bad.basis_points = 10000; /* the edge is fine */
    CHECK_OK(hz_flip_encode(&bad, buf, sizeof buf, &written));
    bad = f;
    bad.locator = NULL;
    bad.locator_len = 3;
    CHECK_ST(hz_flip_encoded_len(&bad, &len), HZ_ERR_NULL);
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_NULL);
    bad.locator_len = 0; /* NULL locator with length 0 is fine */
    CHECK_OK(hz_flip_encode(&bad, buf, sizeof buf, &written));
    bad = m;
    bad.locator_len = 1025;
    written = SENT_SIZE;
    CHECK_ST(hz_flip_encode(&bad, buf, sizeof buf, &written), HZ_ERR_INVALID);
    CHECK(written == SENT_SIZE);
    CHECK_CONTAINS(hz_last_error(), "locator");

    /* Malformed records: bad CRC, truncation, trailing bytes, NULLs. */
    n = encode(&f, buf, sizeof buf);
    memset(&d, 0x5a, sizeof d);
    d.struct_size = sizeof d;
    before = d;
    CHECK_ST(hz_flip_decode(NULL, n, &d, ids, 32), HZ_ERR_NULL);
    CHECK_ST(hz_flip_decode(buf, n, NULL, ids, 32), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_last_error(), "out");
    buf[8] ^= 0x01; /* a bit of the target */
    CHECK_ST(hz_flip_decode(buf, n, &d, ids, 32), HZ_ERR_MALFORMED);
    CHECK_CONTAINS(hz_last_error(), "CRC");
    CHECK_CONTAINS(hz_last_error(), "bad_crc");
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    buf[8] ^= 0x01;
    CHECK_OK(hz_flip_decode(buf, n, &d, ids, 32));
    memset(&d, 0x5a, sizeof d);
    d.struct_size = sizeof d;
    for (size_t cut = 0; cut < 45 && cut < n; cut++) {
        CHECK_ST(hz_flip_decode(buf, cut, &d, ids, 32), HZ_ERR_MALFORMED);
        CHECK_CONTAINS(hz_last_error(), "truncated");
        CHECK(memcmp(&d, &before, sizeof d) == 0);
    }
    CHECK_ST(hz_flip_decode(buf, n - 1, &d, ids, 32), HZ_ERR_MALFORMED);
    CHECK(strlen(hz_last_error()) > 0);
    CHECK_ST(hz_flip_decode(NULL, 0, &d, ids, 32), HZ_ERR_MALFORMED);
    CHECK_CONTAINS(hz_last_error(), "truncated");
    buf[n] = 0;
    CHECK_ST(hz_flip_decode(buf, n + 1, &d, ids, 32), HZ_ERR_MALFORMED);
    CHECK(strlen(hz_last_error()) > 0);
    CHECK(memcmp(&d, &before, sizeof d) == 0);
}

/* hz_last_error is per thread. */
static void *other_thread(void *arg) {
    (void)arg;
    CHECK(strcmp(hz_last_error(), "") == 0); /* nothing failed on this thread yet */
    uint8_t junk[4] = {1, 2, 3, 4};
    hz_flip d;
    d.struct_size = sizeof d;
    CHECK_ST(hz_flip_decode(junk, sizeof junk, &d, NULL, 0), HZ_ERR_MALFORMED);
    CHECK_CONTAINS(hz_last_error(), "truncated");
    return NULL;
}

static void test_last_error_per_thread(void) {
    hz_flip d;
    d.struct_size = sizeof d;
    uint8_t buf[64];
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 1);
    size_t n = encode(&f, buf, sizeof buf);
    buf[n - 2] ^= 0x10;
    CHECK_ST(hz_flip_decode(buf, n, &d, NULL, 0), HZ_ERR_MALFORMED);
    CHECK_CONTAINS(hz_last_error(), "CRC");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_CONTAINS(hz_last_error(), "CRC"); /* untouched by the other thread */
}

static void test_free_null(void) {
    hz_config_free(NULL);
    hz_engine_free(NULL);
    hz_producer_free(NULL);
    hz_pool_free(NULL);
}

/* hz_engine_next: events lent without copying, each valid until the next call; a switch to a
   staged stream and a gap filled from a staged window on the way; mixing with hz_engine_poll. */
static void sum_seq(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *p, size_t n) {
    (void)stream; (void)p; (void)n;
    *(uint64_t *)user += h->seq;
}

static void test_next(void) {
    hz_config *c = cfg_new(1, 2);
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_ALWAYS));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    hz_event_view v;
    memset(&v, 0x5a, sizeof v);
    v.struct_size = sizeof v;
    hz_event_view before = v;
    hz_notice nt;
    memset(&nt, 0x5a, sizeof nt);
    nt.struct_size = sizeof nt;
    int switched = 0, subscribed = 0;
    CHECK_ST(hz_engine_next(NULL, &v, &nt), HZ_ERR_NULL);
    CHECK_ST(hz_engine_next(e, NULL, &nt), HZ_ERR_NULL);
    /* struct_size below the first layout, or uninitialised: refused, nothing written. */
    v.struct_size = 8;
    CHECK_ST(hz_engine_next(e, &v, &nt), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "struct_size");
    v.struct_size = (size_t)0x5a5a5a5a5a5a5a5aULL;
    CHECK_ST(hz_engine_next(e, &v, &nt), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "not initialised");
    v.struct_size = sizeof v;
    nt.struct_size = 4;
    CHECK_ST(hz_engine_next(e, &v, &nt), HZ_ERR_INVALID);
    nt.struct_size = sizeof nt;
    CHECK(memcmp(&v, &before, sizeof v) == 0);
    /* The first pull hands out the initial SUBSCRIBE, then the staging SUBSCRIBE, one per call,
       without a callback; then nothing. */
    for (;;) {
        uint32_t st = hz_engine_next(e, &v, &nt);
        if (st == HZ_EMPTY) break;
        CHECK_ST(st, HZ_GOT_NOTICE);
        CHECK(nt.struct_size == sizeof nt && nt.kind == HZ_NOTICE_SUBSCRIBE);
        CHECK(nt.purpose == (subscribed == 0 ? HZ_PURPOSE_INITIAL : HZ_PURPOSE_STAGE));
        CHECK(nt.stream == (uint32_t)subscribed);
        subscribed++;
    }
    CHECK(subscribed == 2);
    CHECK(memcmp(&v, &before, sizeof v) == 0);
    /* Seqs 1..3 on stream 0, then a switch to stream 1, which (staged) holds 1..6: a seamless
       switch in the middle of the pulls. */
    for (uint64_t s = 1; s <= 3; s++) CHECK_OK(push_data(p0, s, s));
    for (uint64_t s = 1; s <= 6; s++) CHECK_OK(push_data(p1, 100 + s, s));
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 77);
    CHECK_OK(push_flip(p0, 4, &f));
    uint64_t want = 1;
    const hz_event_header *prev = NULL;
    while (want <= 6) {
        uint32_t st = hz_engine_next(e, &v, &nt);
        if (st == HZ_EMPTY) break;
        if (st == HZ_GOT_NOTICE) {
            /* One item per call: the notice comes between seq 3 and seq 4, in order. */
            CHECK(nt.kind == HZ_NOTICE_SWITCHED && want == 4);
            CHECK(nt.stream == 0 && nt.to_stream == 1 && nt.flip_id == 77 && nt.seamless == 1);
            CHECK(nt.cause == HZ_SWITCH_CAUSE_FLIP);
            switched++;
            continue;
        }
        CHECK_OK(st);
        CHECK(v.header != NULL && v.header->seq == want);
        CHECK(v.stream == (want <= 3 ? 0u : 1u));
        CHECK(v.header != prev);
        prev = v.header;
        want++;
    }
    CHECK(want == 7 && switched == 1);
    CHECK_ST(hz_engine_next(e, &v, NULL), HZ_EMPTY);
    /* Mixed with hz_engine_poll. */
    for (uint64_t s = 7; s <= 9; s++) CHECK_OK(push_data(p1, 100 + s, s));
    CHECK_OK(hz_engine_next(e, &v, NULL));
    CHECK(v.header->seq == 7);
    /* ...and hz_engine_poll takes over where it left: 8 and 9, once each. */
    uint64_t sum = 0;
    size_t got = 0;
    CHECK_OK(hz_engine_poll(e, 64, sum_seq, NULL, &sum, &got));
    CHECK(got == 2 && sum == 8 + 9);
    hz_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_OK(hz_engine_stats(e, &st));
    CHECK(st.delivered == 9);
    /* hz_engine_poll_views: a batch of lent views, valid until the next call. */
    for (uint64_t s = 10; s <= 14; s++) CHECK_OK(push_data(p1, 100 + s, s));
    hz_event_view vs[8];
    memset(vs, 0, sizeof vs);
    vs[0].struct_size = sizeof vs[0];
    size_t nv = 99;
    CHECK_ST(hz_engine_poll_views(NULL, vs, 8, &nv, &nt), HZ_ERR_NULL);
    CHECK_ST(hz_engine_poll_views(e, NULL, 8, &nv, &nt), HZ_ERR_NULL);
    CHECK_ST(hz_engine_poll_views(e, vs, 8, NULL, &nt), HZ_ERR_NULL);
    vs[0].struct_size = sizeof vs[0] + 1; /* not a multiple of the alignment: not a stride */
    CHECK_ST(hz_engine_poll_views(e, vs, 8, &nv, &nt), HZ_ERR_INVALID);
    vs[0].struct_size = sizeof vs[0];
    CHECK(nv == 99);
    CHECK_OK(hz_engine_poll_views(e, vs, 0, &nv, &nt));
    CHECK(nv == 0);
    CHECK_OK(hz_engine_poll_views(e, vs, 3, &nv, &nt));
    CHECK(nv == 3 && vs[0].header->seq == 10 && vs[2].header->seq == 12 && vs[1].stream == 1);
    CHECK(vs[0].payload != NULL && vs[0].payload_len == 8 && vs[2].struct_size == sizeof vs[0]);
    CHECK_OK(hz_engine_poll_views(e, vs, 8, &nv, &nt));
    CHECK(nv == 2 && vs[0].header->seq == 13 && vs[1].header->seq == 14);
    CHECK_OK(hz_engine_poll_views(e, vs, 8, &nv, &nt));
    CHECK(nv == 0);
    /* A switchback in the middle of a batch: the views before it, then the notice, in one call;
       the events after it in the next. */
    for (uint64_t s = 15; s <= 16; s++) CHECK_OK(push_data(p1, 100 + s, s));
    hz_flip back = mkflip(HZ_FLIP_SWITCHBACK, 0, 78);
    CHECK_OK(push_flip(p1, 117, &back));
    for (uint64_t s = 15; s <= 18; s++) CHECK_OK(push_data(p0, 100 + s, s)); /* stream 0, staged again */
    uint64_t next = 15;
    int back_seen = 0;
    for (int round = 0; round < 8 && next <= 18; round++) {
        uint32_t st2 = hz_engine_poll_views(e, vs, 8, &nv, &nt);
        CHECK(st2 == HZ_OK || st2 == HZ_GOT_NOTICE);
        for (size_t i = 0; i < nv; i++) {
            /* 15 and 16 from stream 1, then (after the notice) 17 and 18 from stream 0. */
            CHECK(vs[i].header->seq == next && vs[i].stream == (next <= 16 ? 1u : 0u));
            CHECK(back_seen == (next >= 17));
            next++;
        }
        if (st2 == HZ_GOT_NOTICE) {
            CHECK(nv < 8); /* the notice comes after this call's views */
            if (nt.kind == HZ_NOTICE_SWITCHED) {
                CHECK(nt.stream == 1 && nt.to_stream == 0 && nt.flip_id == 78 && next == 17);
                back_seen = 1;
            }
        }
    }
    CHECK(next == 19 && back_seen);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* A callback calling into the engine it is being polled by is refused (HZ_ERR_STATE), and
   hz_engine_free from inside is ignored; the poll goes on and the engine stays usable. */
typedef struct {
    hz_engine *e;
    uint32_t frontier_st, poll_st, arm_st;
    int events;
} reenter;

static void reenter_event(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *p, size_t n) {
    (void)stream; (void)h; (void)p; (void)n;
    reenter *x = (reenter *)user;
    uint64_t fr = 0;
    size_t d = 0;
    x->frontier_st = hz_engine_frontier(x->e, 0, &fr);
    x->poll_st = hz_engine_poll(x->e, 1, reenter_event, NULL, x, &d);
    x->arm_st = hz_engine_arm(x->e, 1);
    hz_engine_free(x->e);
    CHECK(strstr(hz_engine_last_error(x->e), "inside") != NULL);
    x->events++;
}

static void test_reentrancy(void) {
    hz_config *c = cfg_new(1, 2);
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0);
    CHECK_OK(push_data(p0, 1, 1));
    CHECK_OK(push_data(p0, 2, 2));
    reenter x = { e, 0, 0, 0, 0 };
    size_t d = 0;
    CHECK_OK(hz_engine_poll(e, 64, reenter_event, NULL, &x, &d));
    CHECK(d == 2 && x.events == 2);
    CHECK(x.frontier_st == HZ_ERR_STATE && x.poll_st == HZ_ERR_STATE && x.arm_st == HZ_ERR_STATE);
    uint64_t fr = 0;
    CHECK_OK(hz_engine_frontier(e, 0, &fr));
    CHECK(fr == 2);
    hz_producer_free(p0);
    hz_engine_free(e);
}

/* Issue 12 from C: the initial SUBSCRIBE and its exact start, the recovery and silence settings,
 * and a hole no stream has: bounded re-reads and fills, STUCK once, then the application gives
 * the hole up and it is reported LOST with its exact range. */
static void test_liveness(recorder *r) {
    hz_config *c = cfg_new(1, 2);
    CHECK_ST(hz_config_set_recovery(NULL, 3, 1000, 1, HZ_EXHAUSTED_STUCK), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_recovery(c, 0, 1000, 1, HZ_EXHAUSTED_STUCK), HZ_ERR_INVALID);
    CHECK_ST(hz_config_set_recovery(c, 1, 1000, 1, 7), HZ_ERR_INVALID);
    CHECK_ST(hz_config_set_silence(NULL, 0, 0), HZ_ERR_NULL);
    CHECK_OK(hz_config_set_silence(c, 0, 0));
    /* One round a stream, each timing out at once: the ladder takes one poll a rung. */
    CHECK_OK(hz_config_set_recovery(c, 1, 0, 1, HZ_EXHAUSTED_STUCK));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    CHECK_ST(hz_engine_resume_stream_at(e, 9, 1), HZ_ERR_INVALID);
    CHECK_OK(hz_engine_resume_stream_at(e, 0, 777));
    CHECK_ST(hz_engine_retry_gap(e), HZ_ERR_STATE);
    CHECK_ST(hz_engine_give_up_gap(e), HZ_ERR_STATE);
    CHECK_ST(hz_engine_retry_gap(NULL), HZ_ERR_NULL);
    hz_producer *p0 = take(e, 0);
    hz_producer *p1 = take(e, 1);
    rec_clear(r);
    CHECK(drain(e, r) == 0);
    /* The first poll names the initial stream's exact start from the checkpoint. */
    CHECK(r->ninitial == 1 && r->initial.stream == 0 && r->initial.start == HZ_START_POS &&
          r->initial.start_pos == 777);
    /* Seqs 0, 1, 2, 4 on stream 0; stream 1 has nothing. */
    CHECK_OK(push_data(p0, 10, 0));
    CHECK_OK(push_data(p0, 11, 1));
    CHECK_OK(push_data(p0, 12, 2));
    CHECK_OK(push_data(p0, 14, 4));
    size_t got = drain(e, r);
    CHECK(got == 3);
    /* GAP 3..3, a re-read of stream 0 from just after seq 2 (position 13), a fill asked of
     * stream 1 (typed: it never carried origin 0), then STUCK. */
    const nt_rec *gap = find_notice(r, HZ_NOTICE_GAP, 0);
    CHECK(gap != NULL && gap->n.origin == 0 && gap->n.first_seq == 3 && gap->n.last_seq == 3);
    const nt_rec *reread = find_notice(r, HZ_NOTICE_SUBSCRIBE, 0);
    CHECK(reread != NULL && reread->n.stream == 0 && reread->n.purpose == HZ_PURPOSE_REREAD);
    CHECK(reread->n.start == HZ_START_POS && reread->n.start_pos == 13);
    CHECK(reread->n.first_seq == 3 && reread->n.last_seq == 3);
    const nt_rec *fill = find_notice(r, HZ_NOTICE_SUBSCRIBE, 1);
    CHECK(fill != NULL && fill->n.stream == 1 && fill->n.purpose == HZ_PURPOSE_FILL);
    CHECK(fill->n.start == HZ_START_AFTER_SEQ && fill->n.start_origin == 0 && fill->n.start_after_seq == 2);
    CHECK(fill->n.origin == 0 && fill->n.first_seq == 3 && fill->n.last_seq == 3);
    const nt_rec *stuck = find_notice(r, HZ_NOTICE_STUCK, 0);
    CHECK(stuck != NULL && stuck->n.first_seq == 3 && stuck->n.last_seq == 3 && stuck->n.rounds == 2);
    CHECK(count_notices(r, HZ_NOTICE_STUCK) == 1);
    CHECK(find_notice(r, HZ_NOTICE_LOST, 0) == NULL);
    hz_stats s = stats_of(e);
    CHECK(s.rereads == 1 && s.fill_requests == 1 && s.stuck == 1 && s.lost == 0);
    /* The application gives the hole up: LOST 3..3, then a read of stream 0 from before it
     * (it was skipped meanwhile); pushed again, seq 4 is delivered. */
    CHECK_OK(hz_engine_give_up_gap(e));
    rec_clear(r);
    drain(e, r);
    const nt_rec *lost = find_notice(r, HZ_NOTICE_LOST, 0);
    CHECK(lost != NULL && lost->n.origin == 0 && lost->n.first_seq == 3 && lost->n.last_seq == 3);
    const nt_rec *resume = find_notice(r, HZ_NOTICE_SUBSCRIBE, 0);
    CHECK(resume != NULL && resume->n.stream == 0 && resume->n.purpose == HZ_PURPOSE_RESUME);
    CHECK(resume->n.start == HZ_START_POS && resume->n.start_pos == 13);
    CHECK_OK(push_data(p0, 14, 4));
    rec_clear(r);
    CHECK(drain(e, r) == 1 && r->ev[0].h.seq == 4);
    s = stats_of(e);
    CHECK(s.lost == 1 && s.delivered == 4);
    CHECK_ST(hz_engine_give_up_gap(e), HZ_ERR_STATE);
    /* hz_engine_wait: nothing comes, a zero timeout says not ready; a record waits: ready. */
    uint32_t ready = 7;
    CHECK_OK(hz_engine_wait(e, 0, &ready));
    CHECK(ready == 0);
    CHECK_OK(push_data(p0, 15, 5));
    CHECK_OK(hz_engine_wait(e, 1000000000, &ready));
    CHECK(ready == 1);
    CHECK_OK(hz_engine_wait(e, 0, NULL));
    CHECK_ST(hz_engine_wait(NULL, 0, &ready), HZ_ERR_NULL);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* A virtual clock: the application decides what time it is (docs/design.md section 6). */
typedef struct {
    uint64_t now;
    unsigned calls;
} vclock;

static uint64_t vclock_read(void *user_data) {
    vclock *v = user_data;
    v->calls++;
    return v->now;
}

static void test_app_clock(recorder *r) {
    vclock v = {1000, 0};
    hz_config *c = cfg_new(1, 2);
    CHECK_ST(hz_config_set_clock(NULL, vclock_read, &v), HZ_ERR_NULL);
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    hz_engine *e = engine_from(c);
    /* NULL restores the monotonic clock for engines built afterwards; this one keeps v. */
    CHECK_OK(hz_config_set_clock(c, NULL, NULL));
    hz_config_free(c);
    hz_producer *p0 = take(e, 0);
    rec_clear(r);
    drain(e, r);
    CHECK(v.calls > 0);
    /* Statistics count time on this clock, exactly: 4000 ns between two polls. */
    v.now = 5000;
    CHECK_OK(push_data(p0, 10, 0));
    CHECK(drain(e, r) == 1);
    hz_stats s = stats_of(e);
    CHECK(s.observed_ns == 4000);
    /* A reading that goes back counts as no time passing; then time goes on from the last. */
    v.now = 3000;
    drain(e, r);
    CHECK(stats_of(e).observed_ns == 4000);
    v.now = 6000;
    drain(e, r);
    CHECK(stats_of(e).observed_ns == 5000);
    /* An engine built from the reset configuration does not call v. */
    hz_config *c2 = cfg_new(1, 2);
    CHECK_OK(hz_config_set_clock(c2, vclock_read, &v));
    CHECK_OK(hz_config_set_clock(c2, NULL, NULL));
    hz_engine *e2 = engine_from(c2);
    hz_config_free(c2);
    unsigned before = v.calls;
    drain(e2, r);
    CHECK(v.calls == before);
    hz_engine_free(e2);
    hz_producer_free(p0);
    hz_engine_free(e);
}

/* Issue 19, defect 7, from C: a hole in the active stream waits (on the application's clock)
 * for a staged stream that lags, which fills it: no GAP, counted in gaps_filled_by_wait. A hole
 * no stream fills is reported LOST once the wait runs out. */
static void test_gap_wait(recorder *r) {
    vclock v = {1000, 0};
    hz_config *c = cfg_new(1, 2);
    CHECK_ST(hz_config_set_gap_wait(NULL, 0), HZ_ERR_NULL);
    CHECK_OK(hz_config_set_gap_wait(c, 5000));
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    CHECK_OK(hz_config_set_gap_policy(c, HZ_GAP_REPORT_LOST));
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_ALWAYS));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    rec_clear(r);
    drain(e, r); /* stages stream 1 */
    /* Stream 0 lacks seq 2: delivery holds at seq 3, nothing reported. */
    CHECK_OK(push_data(p0, 10, 0));
    CHECK_OK(push_data(p0, 11, 1));
    CHECK_OK(push_data(p0, 13, 3));
    rec_clear(r);
    CHECK(drain(e, r) == 2);
    CHECK(count_notices(r, HZ_NOTICE_GAP) == 0);
    /* 4 us later stream 1, behind, brings seqs 0 to 2: seq 2 fills the hole. */
    v.now += 4000;
    for (uint64_t seq = 0; seq < 3; seq++) CHECK_OK(push_data(p1, 20 + seq, seq));
    rec_clear(r);
    CHECK(drain(e, r) == 1); /* the count is of the active stream's events; seq 2 came filled */
    CHECK(r->nev == 2);
    CHECK(r->ev[0].h.seq == 2 && r->ev[0].stream == 1 && r->ev[1].h.seq == 3 && r->ev[1].stream == 0);
    CHECK(count_notices(r, HZ_NOTICE_GAP) == 0 && count_notices(r, HZ_NOTICE_LOST) == 0);
    hz_stats s = stats_of(e);
    CHECK(s.gaps_filled_by_wait == 1 && s.gap_filled == 1 && s.gaps == 0 && s.lost == 0);
    /* Seq 4 is in no stream: held for the wait, then GAP and LOST, and seq 5 is delivered. */
    CHECK_OK(push_data(p0, 15, 5));
    rec_clear(r);
    CHECK(drain(e, r) == 0);
    v.now += 4999;
    CHECK(drain(e, r) == 0 && count_notices(r, HZ_NOTICE_LOST) == 0);
    v.now += 1;
    CHECK(drain(e, r) == 1 && r->ev[0].h.seq == 5);
    const nt_rec *lost = find_notice(r, HZ_NOTICE_LOST, 0);
    CHECK(lost != NULL && lost->n.first_seq == 4 && lost->n.last_seq == 4);
    s = stats_of(e);
    CHECK(s.gaps_filled_by_wait == 1 && s.gaps == 1 && s.lost == 1);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* Zero-copy produce: reserve room in the ring, fill it in place, commit with the header; no
   other write while it is lent out; cancel publishes nothing; free with one open cancels. */
static void test_reserve(void) {
    hz_config *c = cfg_new(1, 1);
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p = take(e, 0);
    uint8_t *buf = (uint8_t *)SENT_PTR, *other = (uint8_t *)SENT_PTR;
    hz_event_header h = hdr(1, 1, HZ_KIND_DATA);
    uint64_t errors = hz_producer_error_count(p);
    CHECK_ST(hz_producer_reserve(NULL, 8, &buf), HZ_ERR_NULL);
    CHECK_ST(hz_producer_reserve(p, 8, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_producer_reserve(p, HZ_MAX_FLIP_LEN + 1, &buf), HZ_ERR_TOO_LARGE);
    CHECK(buf == (uint8_t *)SENT_PTR);
    CHECK_ST(hz_producer_commit(p, &h), HZ_ERR_STATE);
    CHECK_CONTAINS(hz_producer_last_error(p), "no reservation");
    CHECK_ST(hz_producer_cancel(p), HZ_ERR_STATE);
    CHECK_ST(hz_producer_commit(NULL, &h), HZ_ERR_NULL);
    CHECK_ST(hz_producer_cancel(NULL), HZ_ERR_NULL);
    CHECK(hz_producer_error_count(p) == errors + 4); /* the calls with a NULL producer have no handle to count on */
    /* Fill in place, commit. */
    CHECK_OK(hz_producer_reserve(p, 8, &buf));
    CHECK(buf != NULL && buf != (uint8_t *)SENT_PTR);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(0x10 + i);
    CHECK_ST(hz_producer_reserve(p, 8, &other), HZ_ERR_STATE);
    CHECK(other == (uint8_t *)SENT_PTR);
    CHECK_ST(push_data(p, 9, 9), HZ_ERR_STATE);
    CHECK_CONTAINS(hz_producer_last_error(p), "reservation is open");
    hz_event_header hb[1] = {h};
    const uint8_t *pl[1] = {buf};
    size_t lens[1] = {8}, pushed = SENT_SIZE;
    CHECK_ST(hz_producer_push_batch(p, hb, pl, lens, 1, &pushed), HZ_ERR_STATE);
    CHECK_ST(hz_producer_commit(p, NULL), HZ_ERR_NULL); /* the reservation stays open */
    CHECK_OK(hz_producer_commit(p, &h));
    /* Cancelled: nothing published. Then an empty payload (NULL pointer). */
    CHECK_OK(hz_producer_reserve(p, 8, &buf));
    memset(buf, 0xee, 8);
    CHECK_OK(hz_producer_cancel(p));
    CHECK_OK(hz_producer_reserve(p, 0, &buf));
    CHECK(buf == NULL);
    h = hdr(2, 2, HZ_KIND_HEARTBEAT);
    CHECK_OK(hz_producer_commit(p, &h));
    hz_event_view vs[4];
    memset(vs, 0, sizeof vs);
    vs[0].struct_size = sizeof vs[0];
    size_t n = 0;
    uint32_t st;
    do {
        st = hz_engine_poll_views(e, vs, 4, &n, NULL);
    } while (st == HZ_OK && n == 0);
    CHECK_OK(st);
    CHECK(n == 1 && vs[0].header->seq == 1 && vs[0].payload_len == 8);
    CHECK(vs[0].payload[0] == 0x10 && vs[0].payload[7] == 0x17);
    /* The heartbeat is consumed, not delivered; nothing else came. */
    CHECK_OK(hz_engine_poll_views(e, vs, 4, &n, NULL));
    CHECK(n == 0);
    CHECK_OK(hz_producer_reserve(p, 8, &buf)); /* freed open: cancelled, no leak (ASan) */
    hz_producer_free(p);
    hz_engine_free(e);
}

/* Issue 19, defects 4 to 6: absurd sizes get an error that names the real problem; nothing
   aborts the process or reads without end. */
static void test_hostile_sizes(void) {
    /* 4: a terabyte ring is within the capacity limit, so it is tried, and refused. */
    hz_config *c = NULL;
    CHECK_OK(hz_config_new(1, 2, (size_t)1 << 40, 16, &c));
    hz_engine *e = (hz_engine *)SENT_PTR;
    CHECK_ST(hz_engine_new(c, &e), HZ_ERR_NO_MEMORY);
    CHECK(e == (hz_engine *)SENT_PTR);
    CHECK_CONTAINS(hz_config_last_error(c), "cannot allocate");
    CHECK(strcmp(hz_status_str(HZ_ERR_NO_MEMORY), "out of memory") == 0);
    hz_config_free(c);
    c = NULL;

    /* 5: a model file that never ends, and one over the limit: refused before reading on. */
    c = cfg_new(3, 2);
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_PREDICTOR));
    e = engine_from(c);
    hz_config_free(c);
    CHECK_ST(hz_engine_load_model_file(e, "/dev/zero"), HZ_ERR_IO);
    CHECK_CONTAINS(hz_engine_last_error(e), "not a regular file");
    CHECK_ST(hz_engine_load_model_file(e, "/tmp"), HZ_ERR_IO);
    char path[64];
    snprintf(path, sizeof path, "/tmp/hz-api-big-model-%ld.json", (long)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    for (size_t i = 0; i < HZ_MAX_MODEL_BYTES + 1; i++) CHECK(fputc(' ', f) != EOF);
    CHECK(fclose(f) == 0);
    CHECK_ST(hz_engine_load_model_file(e, path), HZ_ERR_MODEL);
    CHECK_CONTAINS(hz_engine_last_error(e), "limit of 1048576 bytes");
    CHECK(remove(path) == 0);
    static uint8_t spaces[HZ_MAX_MODEL_BYTES + 1];
    memset(spaces, ' ', sizeof spaces);
    CHECK_ST(hz_engine_load_model(e, spaces, sizeof spaces), HZ_ERR_MODEL);
    CHECK_CONTAINS(hz_engine_last_error(e), "limit");
    CHECK_ST(hz_engine_load_model(e, spaces, SIZE_MAX), HZ_ERR_MODEL);
    CHECK_ST(hz_engine_load_model(e, NULL, 5), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_engine_last_error(e), "json is NULL with a length of 5");

    /* 6: every entry point that takes a length names the real problem. */
    uint8_t buf[HZ_MAX_FLIP_LEN];
    hz_flip fl = mkflip(HZ_FLIP_SWITCH, 1, 1);
    size_t n = encode(&fl, buf, sizeof buf);
    hz_flip d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    CHECK_ST(hz_flip_decode(buf, SIZE_MAX, &d, NULL, 0), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "longer than any object");
    CHECK_ST(hz_flip_decode(NULL, 7, &d, NULL, 0), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_last_error(), "bytes is NULL with a length of 7");
    CHECK_OK(hz_flip_decode(buf, n, &d, NULL, 0));
    fl.locator = (const uint8_t *)"x";
    fl.locator_len = SIZE_MAX;
    size_t len = SENT_SIZE;
    CHECK_ST(hz_flip_encoded_len(&fl, &len), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "locator: a length of");
    CHECK(len == SENT_SIZE);
    fl.ids_len = SIZE_MAX;
    fl.selector = HZ_SELECTOR_IDS;
    CHECK_ST(hz_flip_encoded_len(&fl, &len), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_last_error(), "1 to 32");
    hz_producer *p = take(e, 0);
    hz_event_header h = hdr(1, 1, HZ_KIND_DATA);
    CHECK_ST(hz_producer_push(p, &h, buf, SIZE_MAX), HZ_ERR_TOO_LARGE);
    CHECK_CONTAINS(hz_producer_last_error(p), "exceeds max_payload");
    const uint8_t *pls[1] = {buf};
    size_t lens[1] = {SIZE_MAX}, pushed = SENT_SIZE;
    CHECK_ST(hz_producer_push_batch(p, &h, pls, lens, 1, &pushed), HZ_ERR_TOO_LARGE);
    CHECK(pushed == 0);
    uint8_t *slot = (uint8_t *)SENT_PTR;
    CHECK_ST(hz_producer_reserve(p, SIZE_MAX, &slot), HZ_ERR_TOO_LARGE);
    CHECK(slot == (uint8_t *)SENT_PTR);
    hz_event_view vs[1];
    memset(vs, 0, sizeof vs);
    vs[0].struct_size = sizeof vs[0];
    size_t nv = SENT_SIZE;
    CHECK_ST(hz_engine_poll_views(e, vs, SIZE_MAX, &nv, NULL), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "no array is that long");
    hz_producer_free(p);
    hz_engine_free(e);
}

/* A config for the staging pool tests: `streams` streams of 64 KiB, data payloads up to 64
   bytes, so a window of 100 records is priced at 100 x (8 + 32 + 64) = 10400 bytes before any
   delivery (docs/staging.md). */
#define POOL_WINDOW 10400u

static hz_config *pool_cfg(uint64_t recipient, const hz_pool *pool) {
    hz_config *c = NULL;
    CHECK_OK(hz_config_new(recipient, 2, 1 << 16, 64, &c));
    CHECK_OK(hz_config_set_pool(c, pool));
    return c;
}

static hz_staging_demand demand_of(const hz_engine *e) {
    hz_staging_demand d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    CHECK_OK(hz_engine_staging_demand(e, &d));
    CHECK(d.struct_size == sizeof d);
    return d;
}

static hz_pool_counters counters_of(const hz_pool *p) {
    hz_pool_counters s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    CHECK_OK(hz_pool_stats(p, &s));
    return s;
}

/* hz_pool_*, hz_config_set_pool / _cold_switch_cost / _spread, hz_engine_staging_demand:
   arguments, then two engines sharing one pool sized for one window (docs/staging.md; the Rust
   version is crates/harmonizer-core/tests/staging_pool.rs). */
static void test_pool(recorder *r) {
    /* hz_pool_new: NULL out, capacity 0 or above HZ_MAX_POOL_BYTES; nothing written. */
    hz_pool *pool = (hz_pool *)SENT_PTR;
    CHECK_ST(hz_pool_new(POOL_WINDOW, 0, 0, NULL), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_last_error(), "out is NULL");
    CHECK_ST(hz_pool_new(0, 0, 0, &pool), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_last_error(), "capacity_bytes 0 outside 1..=1125899906842624");
    CHECK_ST(hz_pool_new(HZ_MAX_POOL_BYTES + 1, 0, 0, &pool), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_last_error(), "HZ_MAX_POOL_BYTES");
    CHECK_ST(hz_pool_new(UINT64_MAX, 1, 1, &pool), HZ_ERR_CONFIG);
    CHECK(pool == (hz_pool *)SENT_PTR);
    /* Defaults: per engine 0 (or above the capacity) is the capacity, bid lifetime 0 is 100 ms. */
    CHECK_OK(hz_pool_new(HZ_MAX_POOL_BYTES, 0, 0, &pool));
    hz_pool_counters s = counters_of(pool);
    CHECK(s.capacity_bytes == HZ_MAX_POOL_BYTES && s.per_engine_max_bytes == HZ_MAX_POOL_BYTES);
    CHECK(s.bid_ttl_ns == 100000000u && s.used_bytes == 0 && s.grants == 0);
    hz_pool_free(pool);
    CHECK_OK(hz_pool_new(1000, 5000, 7, &pool));
    s = counters_of(pool);
    CHECK(s.capacity_bytes == 1000 && s.per_engine_max_bytes == 1000 && s.bid_ttl_ns == 7);
    /* hz_pool_stats: NULL pool, NULL out, a struct_size below the first layout (the message
       names the real problem); nothing written. */
    CHECK_ST(hz_pool_stats(NULL, &s), HZ_ERR_NULL);
    CHECK_ST(hz_pool_stats(pool, NULL), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_pool_last_error(pool), "out is NULL");
    s.struct_size = 8;
    s.grants = SENT_U64;
    CHECK_ST(hz_pool_stats(pool, &s), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_pool_last_error(pool), "below the first hz_pool_counters layout");
    CHECK(s.grants == SENT_U64 && s.struct_size == 8);
    s.struct_size = sizeof s + 4;
    CHECK_ST(hz_pool_stats(pool, &s), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_pool_last_error(pool), "alignment");
    CHECK(strcmp(hz_pool_last_error(NULL), "") == 0);
    hz_pool_free(pool);

    /* The setters: spread permille 0..=1000, anything above refused with the value named. */
    hz_config *c = cfg_new(1, 2);
    CHECK_OK(hz_config_set_spread(c, 0, 0));
    CHECK_OK(hz_config_set_spread(c, UINT64_MAX, 1000));
    CHECK_ST(hz_config_set_spread(c, 1000, 1001), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "fraction_permille 1001");
    CHECK_ST(hz_config_set_spread(c, 1000, UINT32_MAX), HZ_ERR_INVALID);
    CHECK_OK(hz_config_set_cold_switch_cost(c, 0));
    CHECK_OK(hz_config_set_cold_switch_cost(c, UINT64_MAX));
    CHECK_OK(hz_config_set_pool(c, NULL));
    /* hz_engine_staging_demand: NULL engine, NULL out, bad sizes; all zero before any poll. */
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_staging_demand d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    CHECK_ST(hz_engine_staging_demand(NULL, &d), HZ_ERR_NULL);
    CHECK_ST(hz_engine_staging_demand(e, NULL), HZ_ERR_NULL);
    CHECK_CONTAINS(hz_engine_last_error(e), "out is NULL");
    d.struct_size = 16;
    d.wanted_bytes = SENT_U64;
    CHECK_ST(hz_engine_staging_demand(e, &d), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "below the first hz_staging_demand layout");
    CHECK(d.wanted_bytes == SENT_U64);
    d.struct_size = 5000;
    CHECK_ST(hz_engine_staging_demand(e, &d), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "not initialised");
    d = demand_of(e);
    CHECK(d.wanted_bytes == 0 && d.wanted_streams == 0 && d.urgency == 0.0 && d.next_start_ns == 0);
    hz_engine_free(e);

    /* Two engines, one pool sized for one window. A's cold switches cost twice B's. */
    CHECK_OK(hz_pool_new(POOL_WINDOW, 0, 0, &pool));
    hz_config *ca = pool_cfg(1, pool), *cb = pool_cfg(2, pool);
    CHECK_OK(hz_config_set_cold_switch_cost(ca, 200000000u));
    hz_engine *a = engine_from(ca), *b = engine_from(cb);
    hz_config_free(ca);
    hz_config_free(cb);
    hz_producer *pa = take(a, 0), *pb = take(b, 0);
    /* A is armed for stream 1: staged, and it holds the whole pool. */
    CHECK_OK(hz_engine_arm(a, 1));
    rec_clear(r);
    drain(a, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 1);
    CHECK(find_notice(r, HZ_NOTICE_SUBSCRIBE, 0)->n.stream == 1);
    CHECK(find_notice(r, HZ_NOTICE_SUBSCRIBE, 0)->n.purpose == HZ_PURPOSE_STAGE);
    d = demand_of(a);
    CHECK(d.wanted_streams == 1 && d.staged_streams == 1 && d.refused_streams == 0);
    CHECK(d.wanted_bytes == POOL_WINDOW && d.granted_bytes == POOL_WINDOW && d.pool_bytes == POOL_WINDOW);
    CHECK(d.urgency == 2e8); /* probability 1 x its cold switch cost */
    /* B is armed too: no room. Refused, and its demand says so. */
    CHECK_OK(hz_engine_arm(b, 1));
    rec_clear(r);
    drain(b, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 0);
    d = demand_of(b);
    CHECK(d.wanted_streams == 1 && d.staged_streams == 0 && d.refused_streams == 1);
    CHECK(d.wanted_bytes == POOL_WINDOW && d.pool_bytes == 0 && d.urgency == 1e8);
    s = counters_of(pool);
    CHECK(s.used_bytes <= s.capacity_bytes && s.peak_used_bytes <= s.capacity_bytes);
    CHECK(s.used_bytes == POOL_WINDOW && s.grants == 1 && s.refusals >= 1 && s.yields == 0);
    /* The pool handle goes first: the engines hold the pool and go on. B delivers; its window
       is now priced at the mean frame delivered (8 + 32 + 8 bytes a record), still more than
       the pool has left. */
    hz_pool_free(pool);
    for (uint64_t seq = 1; seq <= 3; seq++) CHECK_OK(push_data(pb, seq, seq));
    rec_clear(r);
    CHECK(drain(b, r) == 3);
    d = demand_of(b);
    CHECK(d.refused_streams == 1 && d.pool_bytes == 0 && d.wanted_bytes == 100 * 48);
    /* A delivers too: its window shrinks to the same price and gives the rest back, which B's
       next poll takes. Both staged within the one window's bytes. */
    for (uint64_t seq = 1; seq <= 3; seq++) CHECK_OK(push_data(pa, seq, seq));
    rec_clear(r);
    CHECK(drain(a, r) == 3);
    d = demand_of(a);
    CHECK(d.staged_streams == 1 && d.pool_bytes == 100 * 48);
    rec_clear(r);
    drain(b, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 1);
    CHECK(find_notice(r, HZ_NOTICE_SUBSCRIBE, 0)->n.stream == 1);
    d = demand_of(b);
    CHECK(d.staged_streams == 1 && d.refused_streams == 0 && d.pool_bytes == 100 * 48);
    CHECK(demand_of(a).pool_bytes + d.pool_bytes <= POOL_WINDOW);
    /* Events still flow on both, exactly once. */
    CHECK_OK(push_data(pa, 4, 4));
    CHECK_OK(push_data(pb, 4, 4));
    rec_clear(r);
    CHECK(drain(a, r) == 1 && r->ev[0].h.seq == 4);
    rec_clear(r);
    CHECK(drain(b, r) == 1 && r->ev[0].h.seq == 4);
    CHECK(stats_of(a).delivered == 4 && stats_of(b).delivered == 4);
    /* Freed in either order; the pool goes with the last engine. */
    hz_producer_free(pa);
    hz_engine_free(a);
    hz_producer_free(pb);
    hz_engine_free(b);
}

/* hz_config_set_spread from C: an ANNOUNCE (switch expected in 4 s) on a recipient spreading
   over 1 s at 500 permille waits for its place on the application's clock, which the demand
   reports, then stages. */
static void test_spread(recorder *r) {
    vclock v = {1000, 0};
    hz_config *c = NULL;
    CHECK_OK(hz_config_new(0x5EED, 2, 1 << 16, 64, &c));
    CHECK_OK(hz_config_set_spread(c, 1000000000u, 500));
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p = take(e, 0);
    hz_flip f = mkflip(HZ_FLIP_ANNOUNCE, 1, 31);
    f.expected_in_ns = 4000000000u;
    CHECK_OK(push_flip(p, 1, &f));
    rec_clear(r);
    drain(e, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 0);
    hz_staging_demand d = demand_of(e);
    CHECK(d.wanted_streams == 1 && d.deferred_streams == 1 && d.staged_streams == 0);
    CHECK(d.next_start_ns > v.now && d.next_start_ns <= v.now + 1000000000u);
    uint64_t start = d.next_start_ns;
    v.now = start - 1;
    drain(e, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 0 && demand_of(e).deferred_streams == 1);
    v.now = start;
    drain(e, r);
    CHECK(count_notices(r, HZ_NOTICE_SUBSCRIBE) == 1);
    d = demand_of(e);
    CHECK(d.deferred_streams == 0 && d.staged_streams == 1 && d.next_start_ns == 0);
    hz_producer_free(p);
    hz_engine_free(e);
}

/* The identity tier (hz_config_set_identity_records): stream 1 leads stream 0 by 25 events
   and stages a window of 4, so at the switch it has evicted seqs 1 to 26, 6 to 26 of them
   undelivered. Returns the re-read SUBSCRIBE of stream 1 and the engine's counters. */
static void identity_run(recorder *r, size_t slots, hz_notice *reread, hz_stats *st) {
    vclock v = {1000, 0};
    hz_config *c = cfg_new(7, 2);
    CHECK_OK(hz_config_set_default_window(c, 4));
    CHECK_OK(hz_config_set_identity_records(c, slots));
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_ALWAYS));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    rec_clear(r);
    drain(e, r); /* stages stream 1 */
    for (uint64_t seq = 1; seq <= 30; seq++) CHECK_OK(push_data(p1, 2000 + seq, seq));
    for (uint64_t seq = 1; seq <= 5; seq++) CHECK_OK(push_data(p0, 1000 + seq, seq));
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 77);
    CHECK_OK(push_flip(p0, 1006, &f));
    drain(e, r);
    v.now += 100000000; /* past the gap wait: nothing else brings 6 to 26 */
    drain(e, r);
    const nt_rec *found = NULL;
    for (size_t i = 0; (found = find_notice(r, HZ_NOTICE_SUBSCRIBE, i)) != NULL; i++) {
        if (found->n.purpose == HZ_PURPOSE_REREAD && found->n.stream == 1) break;
    }
    CHECK(found != NULL);
    if (found != NULL) *reread = found->n;
    CHECK(found == NULL || (found->n.first_seq == 6 && found->n.last_seq == 26));
    *st = stats_of(e);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

static void test_identity_tier(recorder *r) {
    CHECK_ST(hz_config_set_identity_records(NULL, 4), HZ_ERR_NULL);
    hz_config *c = cfg_new(1, 2);
    CHECK_ST(hz_config_set_identity_records(c, HZ_MAX_IDENTITIES + 1), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MAX_IDENTITIES") != NULL);
    CHECK_OK(hz_config_set_identity_records(c, HZ_MAX_IDENTITIES)); /* accepted; allocated only by hz_engine_new */
    CHECK_OK(hz_config_set_identity_records(c, 0));
    hz_config_free(c);
    hz_notice n;
    hz_stats st;
    memset(&n, 0, sizeof n);
    identity_run(r, 64, &n, &st);
    /* The exact position after seq 5, the last delivered, on stream 1 (push_data's pos). */
    CHECK(n.start == HZ_START_POS && n.start_pos == 2005 + 1);
    CHECK(HZ_HAS_FIELD(&st, hz_stats, identity_starts) && st.identity_starts == 1);
    memset(&n, 0, sizeof n);
    identity_run(r, 0, &n, &st);
    CHECK(n.start == HZ_START_AFTER_SEQ && n.start_origin == 0 && n.start_after_seq == 5);
    CHECK(st.identity_starts == 0);
}

/* The conflation tier (hz_config_set_conflation): as identity_run, every event marked
   conflatable with key seq % 8, stream 1's records looked at as they arrive. The hole 6 to 26
   is conflated: keys 3 to 6 come again in the window (27 to 30), so only the latest of keys 7,
   0, 1 and 2 (23 to 26) are delivered; the other 17 are reported dropped. */
static uint32_t push_marked(hz_producer *p, uint64_t pos, uint64_t seq) {
    hz_event_header h = hdr(pos, seq, HZ_KIND_DATA);
    h.flags = HZ_FLAG_CONFLATABLE;
    uint8_t payload[16];
    for (int i = 0; i < 8; i++) payload[i] = (uint8_t)((seq % 8) >> (8 * i));
    for (int i = 0; i < 8; i++) payload[8 + i] = (uint8_t)(seq >> (8 * i));
    return hz_producer_push(p, &h, payload, sizeof payload);
}

static void test_conflation(recorder *r) {
    CHECK_ST(hz_config_set_conflation(NULL, 16, 64), HZ_ERR_NULL);
    hz_config *c = cfg_new(7, 2);
    CHECK_ST(hz_config_set_conflation(c, HZ_MAX_CONFLATION_KEYS + 1, 64), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MAX_CONFLATION_KEYS") != NULL);
    CHECK_ST(hz_config_set_conflation(c, 16, HZ_MAX_CONFLATION_PAYLOAD + 1), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MAX_CONFLATION_PAYLOAD") != NULL);
    CHECK_OK(hz_config_set_conflation(c, 16, 64));
    hz_engine *e = NULL;
    CHECK_ST(hz_engine_new(c, &e), HZ_ERR_CONFIG); /* no identity tier */
    CHECK(e == NULL && strstr(hz_config_last_error(c), "identity") != NULL);
    vclock v = {1000, 0};
    CHECK_OK(hz_config_set_identity_records(c, 64));
    CHECK_OK(hz_config_set_default_window(c, 4));
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_ALWAYS));
    e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    rec_clear(r);
    drain(e, r); /* stages stream 1 */
    for (uint64_t seq = 1; seq <= 30; seq++) {
        CHECK_OK(push_marked(p1, 2000 + seq, seq));
        drain(e, r); /* the engine looks at each record as it arrives */
    }
    for (uint64_t seq = 1; seq <= 5; seq++) CHECK_OK(push_marked(p0, 1000 + seq, seq));
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 78);
    CHECK_OK(push_flip(p0, 1006, &f));
    rec_clear(r);
    drain(e, r);
    const nt_rec *n = find_notice(r, HZ_NOTICE_CONFLATED, 0);
    CHECK(n != NULL);
    if (n != NULL) {
        CHECK(n->n.stream == 1 && n->n.origin == 0 && n->n.first_seq == 6 && n->n.last_seq == 26);
        CHECK(HZ_HAS_FIELD(&n->n, hz_notice, dropped) && n->n.dropped == 17);
    }
    CHECK(count_notices(r, HZ_NOTICE_GAP) == 0 && count_notices(r, HZ_NOTICE_SUBSCRIBE) <= 1);
    uint64_t want[] = {1, 2, 3, 4, 5, 23, 24, 25, 26, 27, 28, 29, 30};
    CHECK(r->nev == sizeof want / sizeof want[0]);
    for (size_t i = 0; i < r->nev && i < sizeof want / sizeof want[0]; i++) {
        CHECK(r->ev[i].h.seq == want[i]);
        /* Each survivor carries its own payload, copied out of the window before eviction. */
        CHECK(r->ev[i].len == 16 && r->ev[i].payload[8] == (uint8_t)want[i] && r->ev[i].payload[0] == want[i] % 8);
    }
    hz_stats st = stats_of(e);
    CHECK(HZ_HAS_FIELD(&st, hz_stats, conflation_fallbacks));
    CHECK(st.conflated == 17 && st.conflation_survivors == 4 && st.conflation_fallbacks == 0);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* Content verification and the position map (hz_config_set_verify, docs/verify.md): stream 1,
   staged, carries a different payload for seq 5; the mismatch is reported with both
   positions, a switch to stream 1 is blocked until 10 events have verified since, the map
   translates exactly, and the switch's notice carries its record. */
static void test_verify(recorder *r) {
    CHECK_ST(hz_config_set_verify(NULL, 64, 16, HZ_MISMATCH_REPORT, 1), HZ_ERR_NULL);
    hz_config *c = cfg_new(7, 2);
    CHECK_ST(hz_config_set_verify(c, HZ_MAX_VERIFY_RECORDS + 1, 16, HZ_MISMATCH_REPORT, 1), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MAX_VERIFY_RECORDS") != NULL);
    CHECK_ST(hz_config_set_verify(c, 64, 0, HZ_MISMATCH_REPORT, 1), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MAX_MAP_RUNS") != NULL);
    CHECK_ST(hz_config_set_verify(c, 64, 16, 9, 1), HZ_ERR_INVALID);
    CHECK(strstr(hz_config_last_error(c), "HZ_MISMATCH_BLOCK_SWITCH") != NULL);
    CHECK_OK(hz_config_set_verify(c, 64, 16, HZ_MISMATCH_BLOCK_SWITCH, 10));
    CHECK_ST(hz_config_set_dry_run_switches(NULL, 1), HZ_ERR_NULL);
    CHECK_OK(hz_config_set_dry_run_switches(c, 1));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    CHECK_OK(hz_engine_arm(e, 1));
    rec_clear(r);
    drain(e, r); /* stages stream 1 */
    for (uint64_t seq = 1; seq <= 12; seq++) {
        CHECK_OK(push_data(p0, 1000 + seq, seq));
        if (seq == 5) {
            hz_event_header h = hdr(2000 + 2 * seq, seq, HZ_KIND_DATA);
            uint8_t other[8] = {0xde, 0xad};
            CHECK_OK(hz_producer_push(p1, &h, other, sizeof other));
        } else {
            CHECK_OK(push_data(p1, 2000 + 2 * seq, seq));
        }
    }
    drain(e, r);
    const nt_rec *m = find_notice(r, HZ_NOTICE_MISMATCH, 0);
    CHECK(m != NULL && count_notices(r, HZ_NOTICE_MISMATCH) == 1);
    if (m != NULL) {
        CHECK(HZ_HAS_FIELD(&m->n, hz_notice, other_pos));
        CHECK(m->n.stream == 1 && m->n.to_stream == 0 && m->n.seq == 5);
        CHECK(m->n.pos == 2010 && m->n.other_pos == 1005);
    }
    uint64_t out = 0;
    uint32_t found = 9;
    CHECK_OK(hz_engine_translate(e, 0, 1, 1007, &out, &found));
    CHECK(found == 1 && out == 2014);
    CHECK_OK(hz_engine_translate(e, 1, 0, 2014, &out, &found));
    CHECK(found == 1 && out == 1007);
    out = 77;
    CHECK_OK(hz_engine_translate(e, 0, 1, 1005, &out, &found)); /* the mismatched pair */
    CHECK(found == 0 && out == 77);
    CHECK_ST(hz_engine_translate(e, 0, 1, 1005, NULL, &found), HZ_ERR_NULL);
    CHECK(strstr(hz_engine_last_error(e), "out_pos") != NULL);
    size_t n = 0;
    CHECK_OK(hz_engine_position_map(e, NULL, 0, &n));
    CHECK(n == 2); /* 1..=4 and 6..=12 */
    hz_map_run runs[4];
    CHECK_OK(hz_engine_position_map(e, runs, 4, &n));
    CHECK(n == 2 && runs[0].first_seq == 1 && runs[0].len == 4 && runs[1].first_seq == 6 && runs[1].len == 7);
    CHECK(runs[1].from == 0 && runs[1].to == 1 && runs[1].from_pos == 1006 && runs[1].to_pos == 2012);
    CHECK(runs[1].from_stride == 1 && runs[1].to_stride == 2);
    CHECK_OK(hz_engine_position_map(e, runs, 1, &n));
    CHECK(n == 1 && runs[0].first_seq == 6); /* the newest */
    CHECK_ST(hz_engine_position_map(e, runs, 1, NULL), HZ_ERR_NULL);
    /* The dry run says what the switch would do: blocked, by the same rule. */
    hz_dry_run d;
    memset(&d, 0xAB, sizeof d);
    d.struct_size = sizeof d;
    CHECK_OK(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCH, 1, &d));
    CHECK(d.struct_size == sizeof d && d.to_stream == 1 && d.refusal == HZ_DRY_RUN_BLOCKED);
    CHECK(d.staged == 1 && d.seamless == 0 && d.has_gap == 0 && d.verified == 11 && d.mismatched == 1);
    CHECK(d.has_matched == 1 && d.matched_seq == 12 && d.matched_to_pos == 2024 && d.start == 0);
    CHECK_OK(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCH, 9, &d));
    CHECK(d.refusal == HZ_REJECT_UNKNOWN_STREAM);
    CHECK_OK(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCHBACK, 0, &d));
    CHECK(d.refusal == HZ_REJECT_NO_PREVIOUS);
    CHECK_ST(hz_engine_evaluate_switch(e, HZ_FLIP_ANNOUNCE, 1, &d), HZ_ERR_INVALID);
    CHECK(strstr(hz_engine_last_error(e), "HZ_FLIP_SWITCHBACK") != NULL);
    CHECK_ST(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCH, 1, NULL), HZ_ERR_NULL);
    d.struct_size = 8;
    CHECK_ST(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCH, 1, &d), HZ_ERR_INVALID);
    /* 7 verified since the mismatch, 10 needed: blocked. */
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 81);
    CHECK_OK(push_flip(p0, 1013, &f));
    rec_clear(r);
    drain(e, r);
    /* The dry run reported just before the refusal said it. */
    const nt_rec *dr = find_notice(r, HZ_NOTICE_DRY_RUN, 0);
    CHECK(dr != NULL && dr->n.to_stream == 1 && dr->n.reason == HZ_DRY_RUN_BLOCKED && dr->n.seamless == 0);
    const nt_rec *b = find_notice(r, HZ_NOTICE_SWITCH_BLOCKED, 0);
    CHECK(dr == NULL || b == NULL || dr < b);
    CHECK(b != NULL && b->n.stream == 0 && b->n.to_stream == 1 && b->n.flip_id == 81);
    CHECK(b != NULL && b->n.verified == 11 && b->n.mismatched == 1);
    CHECK(count_notices(r, HZ_NOTICE_SWITCHED) == 0);
    for (uint64_t seq = 13; seq <= 16; seq++) {
        CHECK_OK(push_data(p0, 1000 + seq, seq));
        CHECK_OK(push_data(p1, 2000 + 2 * seq, seq));
    }
    drain(e, r);
    f = mkflip(HZ_FLIP_SWITCH, 1, 82);
    CHECK_OK(push_flip(p0, 1017, &f));
    CHECK_OK(push_data(p1, 2034, 17));
    rec_clear(r);
    drain(e, r);
    const nt_rec *sw = find_notice(r, HZ_NOTICE_SWITCHED, 0);
    CHECK(sw != NULL);
    const nt_rec *dr2 = find_notice(r, HZ_NOTICE_DRY_RUN, 0);
    CHECK(dr2 != NULL && dr2->n.reason == 0 && dr2->n.seamless == 1 && dr2->n.stall_ns == 0 && dr2->n.last_seq == 0);
    if (sw != NULL) {
        CHECK(dr2 == NULL || dr2 < sw);
        CHECK(HZ_HAS_FIELD(&sw->n, hz_notice, first_pos));
        CHECK(sw->n.verified == 15 && sw->n.mismatched == 1 && sw->n.has_matched == 1);
        CHECK(sw->n.matched_seq == 16 && sw->n.matched_from_pos == 1016 && sw->n.matched_to_pos == 2032);
        CHECK(sw->n.other_pos == 1017 && sw->n.first_pos == 2034);
    }
    /* After it, the way back: stream 0, kept staged, its window behind the frontier. */
    d.struct_size = sizeof d;
    CHECK_OK(hz_engine_evaluate_switch(e, HZ_FLIP_SWITCHBACK, 0, &d));
    CHECK(d.refusal == 0 && d.to_stream == 0 && d.staged == 1 && d.has_gap == 0 && d.ahead == 0);
    /* The switch's audit record, as a JSON line. */
    if (sw != NULL) {
        size_t len = SENT_SIZE;
        CHECK_ST(hz_switch_record_json(&sw->n, 7, NULL, 0, &len), HZ_ERR_BUFFER_TOO_SMALL);
        char line[512];
        CHECK(len < sizeof line);
        size_t got = 0;
        CHECK_OK(hz_switch_record_json(&sw->n, 7, line, sizeof line, &got));
        CHECK(got == len && strlen(line) == len && line[len - 1] == '\n');
        CHECK(strncmp(line, "{\"version\":1,\"recipient\":7,\"from\":0,\"to\":1,\"flip_id\":82,\"cause\":\"flip\"", 70) == 0);
        CHECK(strstr(line, "\"verified\":15,\"mismatched\":1,\"matched\":{\"origin\":0,\"seq\":16,\"from_pos\":1016,\"to_pos\":2032}") != NULL);
        CHECK(strstr(line, "\"cut_pos\":1017,\"first_pos\":2034,\"rollback\":false}\n") != NULL);
        hz_notice other = sw->n;
        other.kind = HZ_NOTICE_MISMATCH;
        CHECK_ST(hz_switch_record_json(&other, 7, line, sizeof line, &got), HZ_ERR_INVALID);
        other = sw->n;
        other.struct_size = 64; /* an older layout, without the record's fields */
        CHECK_ST(hz_switch_record_json(&other, 7, line, sizeof line, &got), HZ_ERR_INVALID);
        CHECK_ST(hz_switch_record_json(NULL, 7, line, sizeof line, &got), HZ_ERR_NULL);
    }
    hz_stats st = stats_of(e);
    CHECK(HZ_HAS_FIELD(&st, hz_stats, map_runs_dropped));
    CHECK(st.verified == 15 && st.mismatches == 1 && st.switches_blocked == 1 && st.map_runs == 2);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* Automatic rollback (hz_config_set_probation): after the switch to stream 1, stream 1 misses
   seq 7 (stream 0, kept staged, fills it); with no hole allowed, the probation fails and the
   engine switches back, every event delivered once. */
static void test_probation(recorder *r) {
    CHECK_ST(hz_config_set_probation(NULL, 1, 0, 0, 0, 0, 1), HZ_ERR_NULL);
    hz_config *c = cfg_new(7, 2);
    CHECK_OK(hz_config_set_probation(c, 1000000000ull, 0, 0, 0, 0, 1));
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0), *p1 = take(e, 1);
    CHECK_OK(hz_engine_arm(e, 1));
    rec_clear(r);
    drain(e, r);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        CHECK_OK(push_data(p0, 1000 + seq, seq));
        CHECK_OK(push_data(p1, 2000 + seq, seq));
    }
    hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 91);
    CHECK_OK(push_flip(p0, 1006, &f));
    drain(e, r);
    CHECK_OK(hz_engine_disarm(e, 1));
    for (uint64_t seq = 6; seq <= 10; seq++) {
        CHECK_OK(push_data(p0, 1000 + seq, seq));
        if (seq != 7) CHECK_OK(push_data(p1, 2000 + seq, seq));
    }
    drain(e, r);
    const nt_rec *n = find_notice(r, HZ_NOTICE_PROBATION_FAILED, 0);
    CHECK(n != NULL);
    if (n != NULL) {
        CHECK(HZ_HAS_FIELD(&n->n, hz_notice, anomaly_value));
        CHECK(n->n.stream == 1 && n->n.to_stream == 0 && n->n.reason == HZ_ANOMALY_HOLES);
        CHECK(n->n.anomaly_value == 1 && n->n.seamless == 1);
    }
    const nt_rec *back = find_notice(r, HZ_NOTICE_SWITCHED, 1);
    CHECK(back != NULL && back->n.cause == HZ_SWITCH_CAUSE_ROLLBACK && back->n.stream == 1 && back->n.to_stream == 0);
    CHECK(r->nev == 10);
    for (size_t i = 0; i < r->nev && i < 10; i++) CHECK(r->ev[i].h.seq == i + 1);
    hz_stats st = stats_of(e);
    CHECK(HZ_HAS_FIELD(&st, hz_stats, rollbacks) && st.rollbacks == 1 && st.probation_failures == 1);
    hz_producer_free(p0);
    hz_producer_free(p1);
    hz_engine_free(e);
}

/* hz_engine_metrics: the counters as OpenMetrics text and as a versioned JSON object, into
   the caller's buffer (asked for its length first), NUL-terminated; errors name the problem. */
static void test_metrics(recorder *r) {
    hz_config *c = cfg_new(9, 2);
    hz_engine *e = engine_from(c);
    hz_config_free(c);
    hz_producer *p0 = take(e, 0);
    for (uint64_t seq = 0; seq < 3; seq++) CHECK_OK(push_data(p0, 10 + seq, seq));
    rec_clear(r);
    CHECK(drain(e, r) == 3);
    size_t len = SENT_SIZE;
    CHECK_ST(hz_engine_metrics(e, HZ_METRICS_OPENMETRICS, NULL, 0, &len), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK(len != SENT_SIZE && len > 100);
    char *buf = (char *)malloc(len + 1);
    CHECK(buf != NULL);
    size_t got = 0;
    memset(buf, 'x', len + 1);
    CHECK_ST(hz_engine_metrics(e, HZ_METRICS_OPENMETRICS, buf, len, &got), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK(got == len && buf[0] == 'x'); /* nothing written */
    CHECK_OK(hz_engine_metrics(e, HZ_METRICS_OPENMETRICS, buf, len + 1, &got));
    CHECK(got == len && strlen(buf) == len);
    CHECK(strstr(buf, "harmonizer_delivered_total{recipient=\"9\"} 3\n") != NULL);
    CHECK(strstr(buf, "# TYPE harmonizer_staged_bytes gauge\n") != NULL);
    CHECK(len >= 6 && strcmp(buf + len - 6, "# EOF\n") == 0);
    free(buf);
    CHECK_ST(hz_engine_metrics(e, HZ_METRICS_JSON, NULL, 0, &len), HZ_ERR_BUFFER_TOO_SMALL);
    buf = (char *)malloc(len + 1);
    CHECK(buf != NULL);
    CHECK_OK(hz_engine_metrics(e, HZ_METRICS_JSON, buf, len + 1, &got));
    CHECK(strncmp(buf, "{\"version\":1,\"recipient\":9,\"active_stream\":0,\"stats\":{\"delivered\":3,", 60) == 0);
    CHECK(buf[len - 1] == '}' && buf[len - 2] == '}');
    free(buf);
    CHECK_ST(hz_engine_metrics(e, 99, NULL, 0, &len), HZ_ERR_INVALID);
    CHECK(strstr(hz_engine_last_error(e), "HZ_METRICS_JSON") != NULL);
    CHECK_ST(hz_engine_metrics(e, HZ_METRICS_JSON, NULL, 5, &len), HZ_ERR_NULL);
    CHECK_ST(hz_engine_metrics(e, HZ_METRICS_JSON, NULL, 0, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_engine_metrics(NULL, HZ_METRICS_JSON, NULL, 0, &len), HZ_ERR_NULL);
    hz_producer_free(p0);
    hz_engine_free(e);
}

/* Issue 20: the predictor records labelled feature snapshots while it runs, from C; the
 * online mode adapts its model, which comes back out as a model file that loads again. */
static void test_learn(recorder *r) {
    /* Settings: checked when set, with the field named. */
    hz_online_config o;
    memset(&o, 0, sizeof o);
    CHECK_ST(hz_online_config_default(&o), HZ_ERR_INVALID); /* struct_size 0 */
    o.struct_size = sizeof o;
    CHECK_OK(hz_online_config_default(&o));
    CHECK(o.struct_size == sizeof o && o.learning_rate > 0 && o.prior_precision > 0 && o.max_drift > 0);
    hz_config *c = cfg_new(7, 2);
    CHECK_ST(hz_config_set_learning(NULL, 100000000, 64, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_config_set_learning(c, 1000, 64, NULL), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_config_last_error(c), "every_ns");
    /* 1 ms is allowed, but too fine for the default model's 5 s horizon (5002 x 16 waiting). */
    CHECK_ST(hz_config_set_learning(c, HZ_MIN_SNAPSHOT_NS, 64, NULL), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_config_last_error(c), "too fine for the model's horizon");
    CHECK_ST(hz_config_set_learning(c, 100000000, HZ_MAX_HISTORY_ROWS + 1, NULL), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_config_last_error(c), "record_rows");
    hz_online_config bad = o;
    bad.learning_rate = 0.0;
    CHECK_ST(hz_config_set_learning(c, 100000000, 64, &bad), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_config_last_error(c), "learning_rate");
    bad = o;
    bad.struct_size = 8;
    CHECK_ST(hz_config_set_learning(c, 100000000, 64, &bad), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_config_last_error(c), "struct_size");
    /* Learning is the predictor's. */
    CHECK_OK(hz_config_set_learning(c, 100000000, 4096, &o));
    hz_engine *e = NULL;
    CHECK_ST(hz_engine_new(c, &e), HZ_ERR_CONFIG);
    CHECK_CONTAINS(hz_config_last_error(c), "HZ_POLICY_PREDICTOR");
    CHECK_OK(hz_config_set_learning(c, 0, 0, NULL)); /* off again */
    e = engine_from(c);
    size_t count = SENT_SIZE;
    CHECK_ST(hz_engine_drain_history(e, NULL, 0, &count), HZ_ERR_STATE);
    hz_engine_free(e);

    /* A predictor recording every 100 ms, online, on the application's clock. */
    vclock v = {1000, 0};
    CHECK_OK(hz_config_set_clock(c, vclock_read, &v));
    CHECK_OK(hz_config_set_policy(c, HZ_POLICY_PREDICTOR));
    CHECK_OK(hz_config_set_learning(c, 100000000, 4096, &o));
    e = engine_from(c);
    hz_config_free(c);
    hz_producer *p[2] = {take(e, 0), take(e, 1)};
    rec_clear(r);
    /* 12 s of events every 10 ms on both streams; a switch to 1 at 3 s. */
    uint64_t switch_at = 0;
    for (uint64_t k = 1; k <= 1200; k++) {
        v.now = k * 10000000ull;
        for (int s = 0; s < 2; s++) (void)push_data(p[s], k, k);
        if (k == 300) {
            hz_flip f = mkflip(HZ_FLIP_SWITCH, 1, 77);
            uint32_t active = 9;
            CHECK_OK(hz_engine_active_stream(e, &active));
            CHECK(active == 0);
            CHECK_OK(push_flip(p[active], k, &f));
            switch_at = v.now;
        }
        drain(e, r);
    }
    uint32_t active = 9;
    CHECK_OK(hz_engine_active_stream(e, &active));
    CHECK(active == 1);
    hz_learn_stats ls;
    memset(&ls, 0, sizeof ls);
    ls.struct_size = sizeof ls;
    CHECK_OK(hz_engine_learn_stats(e, &ls));
    CHECK(ls.snapshots > 100 && ls.rows_recorded == ls.labelled && ls.rows_waiting == ls.rows_recorded);
    CHECK(ls.updates == ls.labelled && ls.positives > 0 && ls.rows_dropped == 0);
    /* Drain in small batches: every row is labelled by the switch that followed it. */
    hz_history_row rows[16];
    size_t total = 0, positives = 0;
    CHECK_ST(hz_engine_drain_history(e, NULL, 16, &count), HZ_ERR_NULL);
    CHECK_ST(hz_engine_drain_history(e, rows, 16, NULL), HZ_ERR_NULL);
    for (;;) {
        count = SENT_SIZE;
        CHECK_OK(hz_engine_drain_history(e, rows, 16, &count));
        CHECK(count <= 16);
        if (count == 0) break;
        for (size_t i = 0; i < count; i++) {
            const hz_history_row *row = &rows[i];
            uint32_t want = row->stream == 1 && row->t_ns < switch_at && row->t_ns + 5000000000ull >= switch_at;
            CHECK(row->label == want);
            CHECK(row->n_features == HZ_N_FEATURES && row->reserved == 0);
            for (uint32_t f = HZ_N_FEATURES; f < HZ_HISTORY_MAX_FEATURES; f++) CHECK(row->features[f] == 0.0);
            positives += row->label;
        }
        total += count;
    }
    CHECK(total == ls.rows_recorded && positives == ls.positives);
    CHECK(strcmp(hz_feature_name(0), "load_burst") == 0);
    CHECK(hz_feature_name(HZ_N_FEATURES) == NULL);
    /* The adapted model comes out as a model file, and loads back. */
    size_t len = SENT_SIZE;
    CHECK_ST(hz_engine_model_json(e, NULL, 0, &len), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 100 && len < HZ_MAX_MODEL_BYTES);
    char *json = malloc(len + 1);
    CHECK(json != NULL);
    CHECK_ST(hz_engine_model_json(e, json, len, &len), HZ_ERR_BUFFER_TOO_SMALL);
    CHECK_OK(hz_engine_model_json(e, json, len + 1, &len));
    CHECK(json[len] == 0 && strstr(json, "\"harmonizer-predictor\"") != NULL);
    CHECK_OK(hz_engine_load_model(e, (const uint8_t *)json, len));
    free(json);
    hz_producer_free(p[0]);
    hz_producer_free(p[1]);
    hz_engine_free(e);
}

int main(int argc, char **argv) {
    if (argc > 1) model_path = argv[1];
    CHECK(hz_last_error() != NULL && strcmp(hz_last_error(), "") == 0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    recorder *r = rec_new();
    test_layout();
    test_versions();
    test_status_str();
    test_free_null();
    test_config();
    test_engine_new_errors();
    test_producers(r);
    test_engine_calls(r);
    test_config_effects(r);
    test_models(r);
    test_flips();
    test_last_error_per_thread();
    test_reentrancy();
    test_next();
    test_reserve();
    test_hostile_sizes();
    test_liveness(r);
    test_app_clock(r);
    test_gap_wait(r);
    test_pool(r);
    test_spread(r);
    test_identity_tier(r);
    test_conflation(r);
    test_metrics(r);
    test_verify(r);
    test_probation(r);
    test_learn(r);
    free(r);
    printf("api: all checks passed (harmonizer %s)\n", hz_version());
    return 0;
}
