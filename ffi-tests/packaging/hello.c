/* The smallest harmonizer program: built by run.sh against an installed prefix (pkg-config,
   static and shared; CMake find_package). Exit status 0 iff the 3 events pushed are delivered. */
#include <harmonizer.h>
#include <stdio.h>
#include <string.h>

static void on_event(void *user_data, uint32_t stream, const hz_event_header *header,
                     const uint8_t *payload, size_t payload_len) {
    (void)stream;
    (void)header;
    (void)payload;
    (void)payload_len;
    ++*(size_t *)user_data;
}

#define CHECK(call)                                                                        \
    do {                                                                                   \
        uint32_t st_ = (call);                                                             \
        if (st_ != HZ_OK) {                                                                \
            fprintf(stderr, "%s: %s\n", #call, hz_status_str(st_));                        \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

int main(void) {
    if (hz_version_number() != HZ_VERSION_NUMBER) {
        fprintf(stderr, "header/library mismatch: library %s\n", hz_version());
        return 1;
    }
    hz_config *config = NULL;
    hz_engine *engine = NULL;
    hz_producer *producer = NULL;
    CHECK(hz_config_new(/*recipient_id*/ 1, /*streams*/ 1, /*capacity_bytes*/ 1 << 12,
                        /*max_payload*/ 64, &config));
    CHECK(hz_engine_new(config, &engine));
    hz_config_free(config);
    CHECK(hz_engine_take_producer(engine, 0, &producer));

    const char *payload = "hello";
    for (uint64_t seq = 1; seq <= 3; seq++) {
        hz_event_header h = {.pos = seq, .seq = seq, .ts_ns = seq, .origin = 0,
                             .kind = HZ_KIND_DATA, .flags = 0};
        CHECK(hz_producer_push(producer, &h, (const uint8_t *)payload, strlen(payload)));
    }

    size_t count = 0, delivered = 0;
    CHECK(hz_engine_poll(engine, 16, on_event, NULL, &count, &delivered));
    printf("harmonizer %s: %zu events delivered\n", hz_version(), count);

    hz_producer_free(producer);
    hz_engine_free(engine);
    return (count == 3 && delivered == 3) ? 0 : 1;
}
