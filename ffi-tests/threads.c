/*
 * threads.c: C11 + pthreads. One producer thread per stream (3 streams), the consumer (the
 * engine's poll loop) on the main thread, and a scenario of flips built with hz_flip_encode:
 * announce, switch (seamless and cold), a switch with a cut-over position, a switch with a
 * resume position, switchbacks, a cohort flip and an id-list flip for other recipients, a
 * cohort flip and an id-list flip that select this recipient, a cancel, a switch to the active
 * stream and a malformed flip (both rejected).
 *
 * The feed: every stream carries the same records at the same positions (pos = index in the
 * feed): the data events of origin 0 with seqs 1..N, the flips, a heartbeat now and then. So
 * every flip also arrives on every stream (duplicates across streams, applied once), and every
 * seq is available on whichever stream is active. A producer never blocks on the engine:
 *   - HZ_FULL (active ring): retry after a short back-off;
 *   - HZ_NOT_SUBSCRIBED (idle) / HZ_SHED (staged, shed): the record is gone for this
 *     stream; move on, like a live feed;
 *   - on a SUBSCRIBE notice the consumer asks that stream's producer to re-send from the start
 *     it names: `start_pos` for HZ_START_POS; for HZ_START_AFTER_SEQ / HZ_START_AFTER_FRONTIER
 *     (one origin here) from just after the last delivered position; HZ_START_LIVE (staging)
 *     the same, a generous live. This is how an application serves re-reads, fills and cold
 *     switches. The initial stream's SUBSCRIBE (HZ_PURPOSE_INITIAL) needs nothing: it is fed
 *     from the start.
 * Producers run at most LEAD positions ahead of the delivery frontier, like a live feed, so
 * staged windows hold what a switch needs. Stream 1 is lossy: it drops a data event now and then
 * the first time it sends it (never on a re-send), so the engine meets gaps on it, filled from
 * a staged candidate or re-read.
 *
 * The consumer checks exactly-once, in-order delivery of every seq 1..N (origin 0, payload =
 * the seq), no LOST/BAD_EVENT notice, and the exact sequence of SWITCHED notices.
 *
 * Usage: threads [N]   (default 500000; also HZ_THREADS_N in the environment; minimum 20000)
 */
#define _POSIX_C_SOURCE 200809L

#include "harmonizer.h"
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define STREAMS 3
#define RECIPIENT 4242u
#define LEAD 256           /* producers run at most this many positions past the frontier */
#define WINDOW 1024        /* staging window, records (> LEAD: a staged window holds the lead) */
#define BATCH 16           /* records per hz_producer_push_batch */
#define POLL_MAX 256
#define DEADLINE_S 120
#define LOSSY_STREAM 1     /* this stream loses every LOSS_EVERY-th position on first sending */
#define LOSS_EVERY 2003

/* ------------------------------------------------------------------------------------------ */
/* The feed, shared read-only by the producers.                                              */

typedef struct {
    hz_event_header *hdr;   /* [1..records] */
    const uint8_t **data;   /* payload pointers */
    size_t *len;            /* payload lengths */
    uint64_t *seq_bytes;    /* payload of data record i: its seq */
    uint8_t *flip_bytes;    /* encoded flips, HZ_MAX_FLIP_LEN each */
    uint64_t records;
    uint64_t n;             /* seqs 1..n */
} feed;

typedef struct {
    uint64_t at_seq;        /* inserted right before the data event of this seq */
    hz_flip flip;
    bool corrupt;           /* flip a CRC byte: a malformed record */
    uint64_t cutover_after; /* cutover_pos = flip pos + this (0: none) */
    bool resume_next;       /* resume_pos = flip pos + 1 */
} planned_flip;

static const uint64_t other_ids[3] = {1, 2, 3};
static const uint64_t ids_with_us[4] = {1, 2, RECIPIENT, 9};

/* Expected SWITCHED notices: from, to, flip id. */
static const struct {
    uint32_t from, to;
    uint64_t flip_id;
} expected_switches[] = {
    {0, 1, 2}, {1, 0, 3}, {0, 2, 6}, {2, 1, 8}, {1, 2, 9}, {2, 0, 12}, {0, 1, 14}, {1, 0, 15},
};
#define N_SWITCHES (sizeof expected_switches / sizeof expected_switches[0])

static hz_flip fl(uint32_t action, uint32_t target, uint64_t id) {
    hz_flip f;
    memset(&f, 0, sizeof f);
    f.struct_size = sizeof f;
    f.action = action;
    f.target = target;
    f.flip_id = id;
    f.selector = HZ_SELECTOR_ALL;
    return f;
}

static size_t make_plan(uint64_t n, planned_flip *p) {
    size_t k = 0;
#define AT(pct) ((n) * (pct) / 100)
    memset(p, 0, 20 * sizeof *p);
    p[k].at_seq = AT(5); p[k++].flip = fl(HZ_FLIP_ANNOUNCE, 1, 1);
    p[k].at_seq = AT(10); p[k++].flip = fl(HZ_FLIP_SWITCH, 1, 2);            /* 0 -> 1 seamless */
    p[k].at_seq = AT(20); p[k++].flip = fl(HZ_FLIP_SWITCHBACK, 0, 3);        /* 1 -> 0 */
    p[k].at_seq = AT(30); p[k].flip = fl(HZ_FLIP_SWITCH, 2, 4);              /* cohort: not us */
    p[k].flip.selector = HZ_SELECTOR_COHORT; p[k].flip.basis_points = 0; p[k++].flip.salt = 11;
    p[k].at_seq = AT(32); p[k].flip = fl(HZ_FLIP_SWITCH, 2, 5);              /* ids: not us */
    p[k].flip.selector = HZ_SELECTOR_IDS; p[k].flip.ids = other_ids; p[k++].flip.ids_len = 3;
    p[k].at_seq = AT(35); p[k].flip = fl(HZ_FLIP_SWITCH, 2, 6);              /* cohort: us; cold */
    p[k].flip.selector = HZ_SELECTOR_COHORT; p[k].flip.basis_points = 10000; p[k].flip.salt = 11;
    p[k].flip.locator = (const uint8_t *)"feed-2"; p[k++].flip.locator_len = 6;
    p[k].at_seq = AT(42); p[k].flip = fl(HZ_FLIP_ANNOUNCE, 1, 7);
    p[k++].flip.expected_in_ns = 1000000;
    p[k].at_seq = AT(45); p[k].flip = fl(HZ_FLIP_SWITCH, 1, 8);              /* 2 -> 1 at cut-over */
    p[k++].cutover_after = 100;
    p[k].at_seq = AT(55); p[k++].flip = fl(HZ_FLIP_SWITCHBACK, 0, 9);        /* 1 -> 2 */
    p[k].at_seq = AT(60); p[k++].flip = fl(HZ_FLIP_ANNOUNCE, 0, 10);
    p[k].at_seq = AT(62); p[k++].flip = fl(HZ_FLIP_CANCEL, 0, 11);
    p[k].at_seq = AT(70); p[k].flip = fl(HZ_FLIP_SWITCH, 0, 12);             /* 2 -> 0 resume_pos */
    p[k++].resume_next = true;
    p[k].at_seq = AT(80); p[k++].flip = fl(HZ_FLIP_SWITCH, 0, 13);           /* rejected: active */
    p[k].at_seq = AT(85); p[k].flip = fl(HZ_FLIP_SWITCH, 1, 14);             /* ids: us; cold */
    p[k].flip.selector = HZ_SELECTOR_IDS; p[k].flip.ids = ids_with_us; p[k++].flip.ids_len = 4;
    p[k].at_seq = AT(90); p[k].flip = fl(HZ_FLIP_SWITCH, 2, 16);             /* malformed */
    p[k++].corrupt = true;
    p[k].at_seq = AT(95); p[k++].flip = fl(HZ_FLIP_SWITCHBACK, 0, 15);       /* 1 -> 0 */
#undef AT
    return k;
}

static void build_feed(feed *f, uint64_t n) {
    planned_flip plan[20];
    size_t nf = make_plan(n, plan);
    uint64_t cap = n + nf + n / 997 + 8;
    f->n = n;
    f->hdr = (hz_event_header *)calloc(cap + 1, sizeof *f->hdr);
    f->data = (const uint8_t **)calloc(cap + 1, sizeof *f->data);
    f->len = (size_t *)calloc(cap + 1, sizeof *f->len);
    f->seq_bytes = (uint64_t *)calloc(cap + 1, sizeof *f->seq_bytes);
    f->flip_bytes = (uint8_t *)calloc(nf, HZ_MAX_FLIP_LEN);
    CHECK(f->hdr && f->data && f->len && f->seq_bytes && f->flip_bytes);
    uint64_t pos = 0;
    size_t next_flip = 0;
    for (uint64_t seq = 1; seq <= n; seq++) {
        while (next_flip < nf && plan[next_flip].at_seq == seq) {
            planned_flip *pf = &plan[next_flip];
            pos++;
            if (pf->cutover_after) pf->flip.cutover_pos = pos + pf->cutover_after;
            if (pf->resume_next) pf->flip.resume_pos = pos + 1;
            uint8_t *buf = f->flip_bytes + next_flip * HZ_MAX_FLIP_LEN;
            size_t w = 0;
            CHECK_OK(hz_flip_encode(&pf->flip, buf, HZ_MAX_FLIP_LEN, &w));
            if (pf->corrupt) buf[w - 1] ^= 0x5a;
            f->hdr[pos] = (hz_event_header){.pos = pos, .seq = 0, .ts_ns = pos * 1000, .origin = 0,
                                            .kind = HZ_KIND_FLIP, .flags = 0};
            f->data[pos] = buf;
            f->len[pos] = w;
            next_flip++;
        }
        if (seq % 997 == 0) {
            pos++;
            f->hdr[pos] = (hz_event_header){.pos = pos, .seq = 0, .ts_ns = pos * 1000, .origin = 0,
                                            .kind = HZ_KIND_HEARTBEAT, .flags = 0};
        }
        pos++;
        f->hdr[pos] = (hz_event_header){.pos = pos, .seq = seq, .ts_ns = pos * 1000, .origin = 0,
                                        .kind = HZ_KIND_DATA, .flags = 0};
        f->seq_bytes[pos] = seq;
        f->data[pos] = (const uint8_t *)&f->seq_bytes[pos];
        f->len[pos] = sizeof(uint64_t);
    }
    CHECK(next_flip == nf);
    CHECK(pos <= cap);
    f->records = pos;
}

static void free_feed(feed *f) {
    free(f->hdr);
    free(f->data);
    free(f->len);
    free(f->seq_bytes);
    free(f->flip_bytes);
}

/* ------------------------------------------------------------------------------------------ */
/* Shared state between the consumer and the producers.                                      */

static feed F;
static atomic_uint_fast64_t frontier_pos;          /* position of the last delivered event */
static atomic_uint_fast64_t rewind_to[STREAMS];    /* 0: none; else re-send from this position */
static atomic_bool stop;

static void backoff(unsigned *spins) {
    if (++*spins < 64) {
        sched_yield();
    } else {
        struct timespec ts = {0, 20000}; /* 20 us */
        nanosleep(&ts, NULL);
    }
}

typedef struct {
    hz_producer *p;
    uint32_t stream;
    uint64_t pushed, full, not_subscribed, shed, rewinds, lost;
    uint64_t high; /* highest position sent so far */
} producer_ctx;

static void *producer_main(void *arg) {
    producer_ctx *c = (producer_ctx *)arg;
    CHECK(hz_producer_stream(c->p) == c->stream);
    uint64_t cur = 1;
    unsigned spins = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = atomic_exchange_explicit(&rewind_to[c->stream], 0, memory_order_acq_rel);
        if (r != 0) {
            cur = r;
            c->rewinds++;
        }
        uint64_t limit = atomic_load_explicit(&frontier_pos, memory_order_relaxed) + LEAD;
        if (limit > F.records) limit = F.records;
        if (cur > limit) {
            backoff(&spins);
            continue;
        }
        size_t n = (size_t)(limit - cur + 1);
        if (n > BATCH) n = BATCH;
        if (c->stream == LOSSY_STREAM) {
            /* Stop the batch before a record lost on its first sending; skip that record. */
            size_t k = 0;
            while (k < n && !(cur + k > c->high && (cur + k) % LOSS_EVERY == 0 &&
                              F.hdr[cur + k].kind == HZ_KIND_DATA))
                k++;
            if (k == 0) {
                c->high = cur;
                c->lost++;
                cur++;
                continue;
            }
            n = k;
        }
        if (cur + n - 1 > c->high) c->high = cur + n - 1;
        size_t pushed = SIZE_MAX;
        uint32_t st = hz_producer_push_batch(c->p, &F.hdr[cur], &F.data[cur], &F.len[cur], n, &pushed);
        switch (st) {
        case HZ_OK:
            CHECK(pushed == n);
            cur += n;
            c->pushed += n;
            spins = 0;
            break;
        case HZ_FULL:
            CHECK(pushed < n);
            cur += pushed;
            c->pushed += pushed;
            c->full++;
            backoff(&spins);
            break;
        case HZ_NOT_SUBSCRIBED:
            CHECK(pushed < n);
            cur += pushed + 1; /* discarded: gone for this stream */
            c->pushed += pushed;
            c->not_subscribed++;
            break;
        case HZ_SHED:
            CHECK(pushed < n);
            cur += pushed + 1;
            c->pushed += pushed;
            c->shed++;
            break;
        default:
            fprintf(stderr, "stream %u: push_batch returned %u (%s): %s\n", c->stream, st,
                    hz_status_str(st), hz_producer_last_error(c->p));
            exit(1);
        }
    }
    CHECK(hz_producer_error_count(c->p) == 0);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The consumer.                                                                             */

typedef struct {
    uint64_t last_seq;
    uint64_t switched;
    uint64_t subscribes[STREAMS], unsubscribes[STREAMS];
    uint64_t gaps, rejected_active, rejected_malformed, rejected_other;
    uint32_t active; /* per the SWITCHED notices */
} consumer_ctx;

static void on_event(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *payload,
                     size_t len) {
    consumer_ctx *c = (consumer_ctx *)user;
    CHECK(stream < STREAMS);
    if (h->origin != 0 || h->kind != HZ_KIND_DATA || h->seq != c->last_seq + 1) {
        fprintf(stderr, "delivery out of order: got origin %u kind %u seq %llu (pos %llu, stream %u),"
                " expected seq %llu\n", h->origin, h->kind, (unsigned long long)h->seq,
                (unsigned long long)h->pos, stream, (unsigned long long)(c->last_seq + 1));
        exit(1);
    }
    CHECK(h->pos >= 1 && h->pos <= F.records && F.hdr[h->pos].seq == h->seq);
    CHECK(len == sizeof(uint64_t));
    uint64_t v;
    memcpy(&v, payload, sizeof v);
    CHECK(v == h->seq);
    c->last_seq = h->seq;
    atomic_store_explicit(&frontier_pos, h->pos, memory_order_relaxed);
}

static void on_notice(void *user, const hz_notice *n) {
    consumer_ctx *c = (consumer_ctx *)user;
    switch (n->kind) {
    case HZ_NOTICE_SUBSCRIBE: {
        CHECK(n->stream < STREAMS);
        if (n->purpose == HZ_PURPOSE_INITIAL) break;
        c->subscribes[n->stream]++;
        uint64_t from = n->start_pos;
        if (n->start != HZ_START_POS) from = atomic_load_explicit(&frontier_pos, memory_order_relaxed) + 1;
        atomic_store_explicit(&rewind_to[n->stream], from, memory_order_release);
        break;
    }
    case HZ_NOTICE_UNSUBSCRIBE:
        CHECK(n->stream < STREAMS);
        c->unsubscribes[n->stream]++;
        break;
    case HZ_NOTICE_SWITCHED:
        if (c->switched >= N_SWITCHES) {
            fprintf(stderr, "unexpected switch %u -> %u (flip %llu)\n", n->stream, n->to_stream,
                    (unsigned long long)n->flip_id);
            exit(1);
        }
        if (n->stream != expected_switches[c->switched].from ||
            n->to_stream != expected_switches[c->switched].to ||
            n->flip_id != expected_switches[c->switched].flip_id) {
            fprintf(stderr, "switch #%llu: %u -> %u (flip %llu), expected %u -> %u (flip %llu)\n",
                    (unsigned long long)c->switched, n->stream, n->to_stream,
                    (unsigned long long)n->flip_id, expected_switches[c->switched].from,
                    expected_switches[c->switched].to,
                    (unsigned long long)expected_switches[c->switched].flip_id);
            exit(1);
        }
        CHECK(n->stream == c->active);
        c->active = n->to_stream;
        c->switched++;
        break;
    case HZ_NOTICE_GAP:
        CHECK(n->origin == 0);
        c->gaps++;
        break;
    case HZ_NOTICE_FLIP_REJECTED:
        if (n->reason == HZ_REJECT_ALREADY_ACTIVE) c->rejected_active++;
        else if (n->reason == HZ_REJECT_MALFORMED) c->rejected_malformed++;
        else c->rejected_other++;
        break;
    case HZ_NOTICE_LOST:
        fprintf(stderr, "LOST %llu..%llu\n", (unsigned long long)n->first_seq, (unsigned long long)n->last_seq);
        exit(1);
    case HZ_NOTICE_BAD_EVENT:
        fprintf(stderr, "BAD_EVENT at pos %llu\n", (unsigned long long)n->pos);
        exit(1);
    default:
        fprintf(stderr, "unknown notice kind %u\n", n->kind);
        exit(1);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t n = 500000;
    const char *env = getenv("HZ_THREADS_N");
    if (env != NULL && *env) n = strtoull(env, NULL, 10);
    if (argc > 1) n = strtoull(argv[1], NULL, 10);
    if (n < 20000) n = 20000; /* the flips are spaced in percent of N: keep them far apart */
    build_feed(&F, n);

    hz_config *cfg = NULL;
    CHECK_OK(hz_config_new(RECIPIENT, STREAMS, 1 << 18, 256, &cfg));
    CHECK_OK(hz_config_set_default_window(cfg, WINDOW));
    hz_engine *e = NULL;
    CHECK_OK(hz_engine_new(cfg, &e));
    hz_config_free(cfg);

    producer_ctx pc[STREAMS];
    pthread_t th[STREAMS];
    memset(pc, 0, sizeof pc);
    for (uint32_t s = 0; s < STREAMS; s++) {
        pc[s].stream = s;
        CHECK_OK(hz_engine_take_producer(e, s, &pc[s].p));
    }
    for (uint32_t s = 0; s < STREAMS; s++) CHECK(pthread_create(&th[s], NULL, producer_main, &pc[s]) == 0);

    consumer_ctx cc;
    memset(&cc, 0, sizeof cc);
    double t0 = now_s();
    uint64_t polls = 0, waits = 0;
    while (cc.last_seq < n) {
        size_t got = SIZE_MAX;
        CHECK_OK(hz_engine_poll(e, POLL_MAX, on_event, on_notice, &cc, &got));
        CHECK(got <= POLL_MAX);
        polls++;
        if (got == 0) {
            /* Nothing to deliver: sleep until a producer publishes on the active stream (or
             * 1 ms passes), instead of spinning. */
            uint32_t ready = 2;
            CHECK_OK(hz_engine_wait(e, 1000000, &ready));
            CHECK(ready <= 1);
            waits++;
            if ((polls & 1023) == 0 && now_s() - t0 > DEADLINE_S) {
                fprintf(stderr, "deadline: stuck at seq %llu of %llu (frontier pos %llu)\n",
                        (unsigned long long)cc.last_seq, (unsigned long long)n,
                        (unsigned long long)atomic_load(&frontier_pos));
                exit(1);
            }
        }
    }
    double dt = now_s() - t0;
    printf("threads: the consumer waited %llu times (hz_engine_wait)\n", (unsigned long long)waits);
    atomic_store(&stop, true);
    for (uint32_t s = 0; s < STREAMS; s++) CHECK(pthread_join(th[s], NULL) == 0);

    hz_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_OK(hz_engine_stats(e, &st));
    uint32_t active = 99;
    CHECK_OK(hz_engine_active_stream(e, &active));
    printf("threads: N=%llu records=%llu in %.2fs; switches %llu (seamless %llu, cold %llu);"
           " gaps %llu, gap_filled %llu, rereads %llu, duplicates %llu, flips applied %llu"
           " ignored %llu repeated %llu stale %llu rejected %llu\n",
           (unsigned long long)n, (unsigned long long)F.records, dt, (unsigned long long)cc.switched,
           (unsigned long long)st.switches_seamless, (unsigned long long)st.switches_cold,
           (unsigned long long)st.gaps, (unsigned long long)st.gap_filled,
           (unsigned long long)st.rereads, (unsigned long long)st.duplicates_dropped,
           (unsigned long long)st.flips_applied, (unsigned long long)st.flips_ignored,
           (unsigned long long)st.flips_repeated, (unsigned long long)st.flips_stale,
           (unsigned long long)st.flips_rejected);
    for (uint32_t s = 0; s < STREAMS; s++) {
        printf("  stream %u: pushed %llu, full %llu, not subscribed %llu, shed %llu, re-sends %llu,"
               " lost on first sending %llu\n", s,
               (unsigned long long)pc[s].pushed, (unsigned long long)pc[s].full,
               (unsigned long long)pc[s].not_subscribed, (unsigned long long)pc[s].shed,
               (unsigned long long)pc[s].rewinds, (unsigned long long)pc[s].lost);
    }

    /* Every seq exactly once, in order (checked per event), and all of them. */
    CHECK(cc.last_seq == n);
    CHECK(st.delivered == n);
    CHECK(st.lost == 0 && st.bad_events == 0);
    /* The switches: exactly the expected SWITCHED notices, and the engine agrees. */
    CHECK(cc.switched == N_SWITCHES);
    CHECK(st.switches_seamless + st.switches_cold == N_SWITCHES);
    CHECK(active == 0 && cc.active == 0);
    /* Flips: 8 switches, 3 announces, 1 cancel applied (ALREADY_ACTIVE is counted as rejected);
       the two for other recipients ignored; the rejections seen. */
    CHECK(st.flips_applied == N_SWITCHES + 3 + 1);
    CHECK(st.flips_ignored == 2);
    CHECK(cc.rejected_active == 1 && cc.rejected_malformed >= 1 && cc.rejected_other == 0);
    CHECK(st.flips_rejected == cc.rejected_active + cc.rejected_malformed);
    CHECK(st.unknown_kinds == 0);
    CHECK(st.api_errors == 0);

    for (uint32_t s = 0; s < STREAMS; s++) hz_producer_free(pc[s].p);
    hz_engine_free(e);
    free_feed(&F);
    printf("threads: all checks passed\n");
    return 0;
}
