/* Ring files from C, across real processes (issue 7): the engine in this process, producers in
 * child processes (fork + exec of this binary with "produce ..." arguments).
 *
 *   shm DIR                       the test (the engine side); makes its files in DIR
 *   shm produce PATH FROM TO      a producer: pushes seqs FROM..TO-1, spinning on HZ_FULL
 *
 * Checks: every refusal has its status and message; a producer killed with SIGKILL at an
 * arbitrary point leaves no torn record (each payload is checked whole); the next producer
 * resumes (generation 2), re-sends a few events and the tracker drops them; the kill is a
 * PRODUCER_GONE notice (crashed), the clean exit one too (closed); a truncated file is a
 * RING_FILE_TRUNCATED notice and the process lives on. Nothing is timed. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "harmonizer.h"

#define CAPACITY (1u << 16)
#define MAX_PAYLOAD 256u

static const char *self_path;

/* Payload of `seq`: the seq, then bytes derived from it, of a length that varies. */
static size_t make_payload(uint64_t seq, uint8_t *buf) {
    size_t len = 8 + (size_t)(seq * 37 % 200);
    memcpy(buf, &seq, 8);
    for (size_t i = 8; i < len; i++) buf[i] = (uint8_t)(seq * 31 + i);
    return len;
}

static int produce(const char *path, uint64_t from, uint64_t to) {
    hz_producer *p = NULL;
    CHECK_OK(hz_producer_open_file(path, &p));
    uint8_t buf[MAX_PAYLOAD];
    for (uint64_t seq = from; seq < to; seq++) {
        hz_event_header h;
        memset(&h, 0, sizeof h);
        h.pos = 1000 + seq;
        h.seq = seq;
        h.kind = HZ_KIND_DATA;
        size_t len = make_payload(seq, buf);
        uint32_t st;
        while ((st = hz_producer_push(p, &h, buf, len)) == HZ_FULL) {
        }
        CHECK_OK(st);
    }
    hz_producer_free(p); /* a clean close */
    return 0;
}

typedef struct {
    uint64_t next; /* the seq expected next */
    uint64_t crashed_gen, closed_gen;
    uint64_t gone_pid; /* the pid of the last producer reported gone */
    int truncated;
    int corrupt;          /* RING_CORRUPT notices */
    uint32_t corrupt_reason;
    uint64_t corrupt_offset;
} ctx;

static void on_event(void *user, uint32_t stream, const hz_event_header *h, const uint8_t *payload,
                     size_t len) {
    ctx *c = (ctx *)user;
    uint8_t want[MAX_PAYLOAD];
    CHECK(stream == 0);
    CHECK(h->seq == c->next);
    CHECK(h->pos == 1000 + h->seq);
    CHECK(len == make_payload(h->seq, want));
    CHECK(memcmp(payload, want, len) == 0); /* never torn */
    c->next++;
}

static void on_notice(void *user, const hz_notice *n) {
    ctx *c = (ctx *)user;
    if (n->kind == HZ_NOTICE_PRODUCER_GONE) {
        CHECK(n->stream == 0 && n->pid != 0 && n->pos == 0);
        c->gone_pid = n->pid;
        if (n->reason == HZ_PRODUCER_CRASHED) c->crashed_gen = n->generation;
        else if (n->reason == HZ_PRODUCER_CLOSED) c->closed_gen = n->generation;
        else CHECK(!"unknown PRODUCER_GONE reason");
    } else if (n->kind == HZ_NOTICE_SUBSCRIBE && n->purpose == HZ_PURPOSE_INITIAL) {
        CHECK(n->stream == 0); /* the first poll's: the producer is the child process */
    } else if (n->kind == HZ_NOTICE_RING_CORRUPT) {
        CHECK(n->stream == 0 && HZ_HAS_FIELD(n, hz_notice, ring_offset));
        c->corrupt++;
        c->corrupt_reason = n->reason;
        c->corrupt_offset = n->ring_offset;
    } else if (n->kind == HZ_NOTICE_RING_FILE_TRUNCATED) {
        CHECK(n->stream == 0 && n->file_len == 100 && n->needed_len == 4096 + CAPACITY);
        c->truncated++;
    } else {
        fprintf(stderr, "unexpected notice %u\n", n->kind);
        exit(1);
    }
}

static pid_t spawn_producer(const char *path, uint64_t from, uint64_t to) {
    char a[32], b[32];
    snprintf(a, sizeof a, "%" PRIu64, from);
    snprintf(b, sizeof b, "%" PRIu64, to);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* A producer that pushes without end must not outlive a test that failed before
         * killing it (it would spin for ever, as orphans once did for an hour). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char *argv[] = {(char *)self_path, (char *)"produce", (char *)path, a, b, NULL};
        execv(self_path, argv);
        _exit(127);
    }
    return pid;
}

static size_t poll_once(hz_engine *e, ctx *c) {
    size_t got = 0;
    CHECK_OK(hz_engine_poll(e, 64, on_event, on_notice, c, &got));
    return got;
}

/* Polls until `cond` holds. Not a speed check: the bound (2 minutes, where a healthy run needs
 * milliseconds) only turns a hang into a failure that names what it waited for. */
#define POLL_UNTIL(e, c, cond)                                                                   \
    do {                                                                                         \
        time_t give_up_ = time(NULL) + 120;                                                      \
        while (!(cond)) {                                                                        \
            poll_once((e), (c));                                                                 \
            if (time(NULL) > give_up_) {                                                         \
                fprintf(stderr, "FAIL %s:%d: still waiting for %s after 2 minutes\n", __FILE__,  \
                        __LINE__, #cond);                                                        \
                exit(1);                                                                         \
            }                                                                                    \
        }                                                                                        \
    } while (0)

/* Polls until several polls in a row deliver nothing. */
static void drain(hz_engine *e, ctx *c) {
    for (int idle = 0; idle < 4;) idle = poll_once(e, c) == 0 ? idle + 1 : 0;
}

static hz_engine *new_engine(void) {
    hz_config *cfg = NULL;
    hz_engine *e = NULL;
    CHECK_OK(hz_config_new(7, 1, CAPACITY, MAX_PAYLOAD, &cfg));
    CHECK_OK(hz_engine_new(cfg, &e));
    hz_config_free(cfg);
    return e;
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 5 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
    CHECK(argc == 2);
    char path[4096], junk[4096];
    snprintf(path, sizeof path, "%s/shm-c-%ld.ring", argv[1], (long)getpid());
    snprintf(junk, sizeof junk, "%s/shm-c-%ld.junk", argv[1], (long)getpid());
    unlink(path);

    hz_engine *e = new_engine();
    CHECK_OK(hz_engine_attach_file(e, 0, path, HZ_ATTACH_CREATE, 0));

    /* Refusals, each with a status and a message. */
    CHECK_ST(hz_engine_attach_file(e, 0, NULL, HZ_ATTACH_CREATE, 0), HZ_ERR_NULL);
    CHECK_ST(hz_engine_attach_file(e, 0, path, 99, 0), HZ_ERR_INVALID);
    CHECK_CONTAINS(hz_engine_last_error(e), "mode");
    CHECK_ST(hz_engine_attach_file(e, 5, path, HZ_ATTACH_RESUME, 0), HZ_ERR_INVALID);
    hz_engine *e2 = new_engine();
    CHECK_ST(hz_engine_attach_file(e2, 0, path, HZ_ATTACH_CREATE, 0), HZ_ERR_RING_FILE);
    CHECK_CONTAINS(hz_engine_last_error(e2), "exists");
    CHECK_ST(hz_engine_attach_file(e2, 0, path, HZ_ATTACH_RESUME, 0), HZ_ERR_BUSY);
    hz_engine_free(e2);
    hz_producer *p = NULL;
    CHECK_ST(hz_producer_open_file(NULL, &p), HZ_ERR_NULL);
    CHECK_ST(hz_producer_open_file(path, NULL), HZ_ERR_NULL);
    CHECK_ST(hz_producer_open_file("/nonexistent/hz.ring", &p), HZ_ERR_IO);
    CHECK_CONTAINS(hz_last_error(), "/nonexistent/hz.ring");
    FILE *f = fopen(junk, "wb");
    CHECK(f != NULL);
    for (int i = 0; i < 8192; i++) fputc('j', f);
    fclose(f);
    CHECK_ST(hz_producer_open_file(junk, &p), HZ_ERR_RING_FILE);
    CHECK_CONTAINS(hz_last_error(), "magic");
    unlink(junk);
    CHECK(p == NULL);
    CHECK_ST(hz_engine_resume_at(e, 1000, 5), HZ_ERR_INVALID);

    /* Generation 1 pushes without end and is killed once some of its events arrived: at an
     * arbitrary point, most likely inside a push. */
    ctx c;
    memset(&c, 0, sizeof c);
    pid_t pid = spawn_producer(path, 0, UINT64_MAX / 2);
    POLL_UNTIL(e, &c, c.next >= 3000);
    CHECK(kill(pid, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    drain(e, &c);
    /* The kernel may drop a dead process's lock a moment after waitpid returns: the notice
     * comes with the first check after that. */
    POLL_UNTIL(e, &c, c.crashed_gen == 1);
    CHECK(c.gone_pid == (uint64_t)pid); /* the producer's own pid, in its own field */
    CHECK(c.closed_gen == 0);

    /* Generation 2 resumes from the published tail; it re-sends the last 3 events, which the
     * tracker drops (on_event insists on the next seq, so a duplicate would fail there). */
    uint64_t resume = c.next - 3, end = c.next + 5000;
    pid = spawn_producer(path, resume, end);
    POLL_UNTIL(e, &c, c.next >= end);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    drain(e, &c);
    CHECK(c.next == end);
    POLL_UNTIL(e, &c, c.closed_gen == 2);
    CHECK(c.crashed_gen == 1);
    hz_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_OK(hz_engine_stats(e, &st));
    CHECK(st.duplicates_dropped == 3);

    /* Truncated under the live mapping: a notice, not a SIGBUS. */
    CHECK(truncate(path, 100) == 0);
    drain(e, &c);
    CHECK(c.truncated == 1);
    hz_engine_free(e);
    unlink(path);

    /* Another process scribbles a pad frame of 0 bytes over the first unread record (issue 19,
     * defect 1: the poll never returned): a RING_CORRUPT notice naming the offset, everything
     * before it delivered, the file's producer told HZ_NOT_SUBSCRIBED from then on. */
    CHECK_OK(hz_set_sigbus_guard(1));
    e = new_engine();
    CHECK_OK(hz_engine_attach_file(e, 0, path, HZ_ATTACH_CREATE, 0));
    CHECK_OK(hz_producer_open_file(path, &p));
    uint64_t offset = 0, bad = 0;
    for (uint64_t seq = 0; seq < 20; seq++) {
        hz_event_header h;
        memset(&h, 0, sizeof h);
        h.pos = 1000 + seq;
        h.seq = seq;
        h.kind = HZ_KIND_DATA;
        uint8_t buf[MAX_PAYLOAD];
        size_t len = make_payload(seq, buf);
        if (seq == 10) bad = offset;
        offset += (8 + 32 + len + 7) / 8 * 8; /* the frame: its header, the event's, the payload, padded */
        CHECK_OK(hz_producer_push(p, &h, buf, len));
    }
    memset(&c, 0, sizeof c);
    size_t got = 0;
    CHECK_OK(hz_engine_poll(e, 5, on_event, on_notice, &c, &got));
    CHECK(got == 5);
    FILE *rf = fopen(path, "r+b");
    CHECK(rf != NULL);
    uint64_t pad0 = 0x80000000u;
    CHECK(fseek(rf, (long)(4096 + bad), SEEK_SET) == 0);
    CHECK(fwrite(&pad0, sizeof pad0, 1, rf) == 1);
    fclose(rf);
    drain(e, &c);
    CHECK(c.next == 10);
    CHECK(c.corrupt == 1 && c.corrupt_reason == HZ_CORRUPT_BAD_PAD && c.corrupt_offset == bad);
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_OK(hz_engine_stats(e, &st));
    CHECK(HZ_HAS_FIELD(&st, hz_stats, rings_corrupt) && st.rings_corrupt == 1);
    hz_event_header later;
    memset(&later, 0, sizeof later);
    later.pos = 2000;
    later.seq = 20;
    CHECK_ST(hz_producer_push(p, &later, NULL, 0), HZ_NOT_SUBSCRIBED);
    hz_producer_free(p);
    hz_engine_free(e);
    unlink(path);
    printf("shm: %" PRIu64 " events across 2 producer processes, one killed; truncation survived; "
           "a scribbled frame reported\n", c.next);
    return 0;
}
