// api.cpp: the C API from C++17 through include/harmonizer.hpp, the RAII wrappers users
// include: handles owned by harmonizer::config/engine/producer, errors as harmonizer::error,
// lambdas as callbacks (an exception thrown in one comes back out of poll). A short scenario
// pushes, polls, switches streams with a flip made by encode_flip, and checks the results; a
// few raw C calls beside it show the two mix. Exits non-zero on failure.
#include "harmonizer.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                             \
        }                                                                             \
    } while (0)

#define CHECK_ST(call, want)                                                          \
    do {                                                                              \
        const std::uint32_t got_ = (call);                                            \
        if (got_ != static_cast<std::uint32_t>(want)) {                               \
            std::fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                         #call, hz_status_str(got_), hz_status_str(want));            \
            std::exit(1);                                                             \
        }                                                                             \
    } while (0)

namespace {

struct Delivered {
    std::uint32_t stream;
    std::uint64_t seq;
    std::string payload;
};

// A deleter given as a function pointer works too, for code that keeps raw handles.
using ConfigFn = std::unique_ptr<hz_config, decltype(&hz_config_free)>;

}  // namespace

static_assert(std::is_standard_layout<hz_event_header>::value, "C layout");
static_assert(sizeof(hz_event_header) == 32, "32-byte header");
static_assert(std::is_trivially_copyable<hz_notice>::value, "C struct");
static_assert(HZ_VERSION_NUMBER == HZ_VERSION_MAJOR * 10000 + HZ_VERSION_MINOR * 100 + HZ_VERSION_PATCH,
              "version macro");

int main() {
    CHECK(hz_version_number() == HZ_VERSION_NUMBER);
    CHECK(std::string(hz_version()) == std::to_string(HZ_VERSION_MAJOR) + "." +
                                           std::to_string(HZ_VERSION_MINOR) + "." +
                                           std::to_string(HZ_VERSION_PATCH));

    // Errors come back as harmonizer::error with the status and the library's message.
    try {
        harmonizer::config bad(7, 0, 1 << 16, 64);
        CHECK(false);
    } catch (const harmonizer::error &e) {
        CHECK(e.status() == HZ_ERR_INVALID && std::string(e.what()).find("streams") != std::string::npos);
    }
    auto cfg = std::make_unique<harmonizer::config>(7, 2, 1 << 16, HZ_MAX_FLIP_LEN);
    try {
        cfg->policy(99);
        CHECK(false);
    } catch (const harmonizer::error &e) {
        CHECK(e.status() == HZ_ERR_INVALID && std::string(e.what()).find("policy") != std::string::npos);
    }
    harmonizer::engine engine(*cfg);
    cfg.reset();  // the engine does not need it
    {
        hz_config *raw = nullptr;
        CHECK_ST(hz_config_new(1, 1, 4096, 64, &raw), HZ_OK);
        ConfigFn scoped(raw, &hz_config_free);
        CHECK_ST(hz_config_set_policy(scoped.get(), 99), HZ_ERR_INVALID);
        CHECK(std::string(hz_config_last_error(scoped.get())).find("policy") != std::string::npos);
    }

    harmonizer::producer p0 = engine.take_producer(0);
    auto p1 = std::make_unique<harmonizer::producer>(engine.take_producer(1));
    CHECK(p0.stream() == 0 && p1->stream() == 1);
    try {
        engine.take_producer(1);
        CHECK(false);
    } catch (const harmonizer::error &e) {
        CHECK(e.status() == HZ_ERR_STATE);
    }

    std::vector<Delivered> got;
    std::vector<hz_notice> notices;
    std::vector<hz_notice> initial;
    auto on_event = [&](std::uint32_t stream, const hz_event_header &h, const std::uint8_t *p, std::size_t n) {
        got.push_back({stream, h.seq, std::string(reinterpret_cast<const char *>(p), n)});
    };
    auto on_notice = [&](const hz_notice &n) {
        // The first poll's SUBSCRIBE of the initial stream is checked below, apart.
        if (n.kind == HZ_NOTICE_SUBSCRIBE && n.purpose == HZ_PURPOSE_INITIAL) {
            initial.push_back(n);
            return;
        }
        notices.push_back(n);
    };
    auto poll = [&]() { return engine.poll(64, on_event, on_notice); };

    auto push = [](harmonizer::producer &p, std::uint64_t pos, std::uint64_t seq, const std::string &s) {
        hz_event_header h{};
        h.pos = pos;
        h.seq = seq;
        h.ts_ns = pos;
        h.kind = HZ_KIND_DATA;
        return p.push(h, s.data(), s.size());
    };

    for (std::uint64_t i = 1; i <= 3; ++i) CHECK_ST(push(p0, i, i, "a" + std::to_string(i)), HZ_OK);
    CHECK_ST(push(*p1, 1, 1, "idle"), HZ_NOT_SUBSCRIBED);  // returned, not thrown
    CHECK(poll() == 3);
    CHECK(got.size() == 3 && got[2].payload == "a3" && got[2].stream == 0);

    // Announce stream 1 (staged), feed it, then switch: seamless, every seq once.
    hz_flip f = harmonizer::sized<hz_flip>();
    f.action = HZ_FLIP_ANNOUNCE;
    f.target = 1;
    f.flip_id = 1;
    f.selector = HZ_SELECTOR_ALL;
    std::vector<std::uint8_t> announce = harmonizer::encode_flip(f);
    hz_event_header fh{};
    fh.pos = 4;
    fh.kind = HZ_KIND_FLIP;
    CHECK_ST(p0.push(fh, announce), HZ_OK);
    CHECK(poll() == 0);
    CHECK(notices.size() == 1 && notices[0].kind == HZ_NOTICE_SUBSCRIBE && notices[0].stream == 1);
    CHECK(notices[0].purpose == HZ_PURPOSE_STAGE && notices[0].start == HZ_START_LIVE);
    CHECK(initial.size() == 1 && initial[0].stream == 0 && initial[0].start == HZ_START_LIVE);

    for (std::uint64_t i = 4; i <= 6; ++i) {
        CHECK_ST(push(p0, i + 1, i, "a" + std::to_string(i)), HZ_OK);
        CHECK_ST(push(*p1, i + 1, i, "b" + std::to_string(i)), HZ_OK);
    }
    f.action = HZ_FLIP_SWITCH;
    f.flip_id = 2;
    std::vector<std::uint8_t> sw = harmonizer::encode_flip(f);
    fh.pos = 8;
    CHECK_ST(p0.push(fh, sw), HZ_OK);
    CHECK_ST(p1->push(fh, sw), HZ_OK);
    for (std::uint64_t i = 7; i <= 9; ++i) CHECK_ST(push(*p1, i + 2, i, "b" + std::to_string(i)), HZ_OK);
    std::size_t total = 0;
    for (int i = 0; i < 10; ++i) total += poll();
    CHECK(total == 6);
    CHECK(got.size() == 9);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].seq == i + 1);
    CHECK(got[5].payload == "a6" && got[5].stream == 0);
    CHECK(got[6].payload == "b7" && got[6].stream == 1);

    const hz_notice *switched = nullptr;
    for (const hz_notice &n : notices)
        if (n.kind == HZ_NOTICE_SWITCHED) switched = &n;
    CHECK(switched != nullptr && switched->stream == 0 && switched->to_stream == 1);
    CHECK(switched->flip_id == 2 && switched->seamless == 1);

    CHECK(engine.active_stream() == 1);
    hz_stats st = engine.stats();
    CHECK(st.delivered == 9 && st.switches_seamless == 1 && st.flips_repeated == 1 && st.api_errors == 1);

    // An exception thrown in a callback does not cross the C library: poll rethrows it.
    CHECK_ST(push(*p1, 12, 10, "b10"), HZ_OK);
    CHECK_ST(push(*p1, 13, 11, "b11"), HZ_OK);
    int calls = 0;
    try {
        engine.poll(64, [&](std::uint32_t, const hz_event_header &, const std::uint8_t *, std::size_t) {
            ++calls;
            throw std::runtime_error("from a callback");
        });
        CHECK(false);
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "from a callback");
    }
    CHECK(calls == 1);  // the rest of that call's events were skipped, not re-entered

    // Decode the switch back into a struct.
    hz_flip d = harmonizer::sized<hz_flip>();
    CHECK_ST(hz_flip_decode(sw.data(), sw.size(), &d, nullptr, 0), HZ_OK);
    CHECK(d.action == HZ_FLIP_SWITCH && d.target == 1 && d.flip_id == 2);
    sw.back() ^= 1;
    CHECK_ST(hz_flip_decode(sw.data(), sw.size(), &d, nullptr, 0), HZ_ERR_MALFORMED);
    CHECK(std::string(hz_last_error()).find("CRC") != std::string::npos);

    // Pull mode: next() hands out events and notices one at a time, without a callback; a
    // record made in place with reserve/commit comes out whole.
    {
        std::uint8_t *buf = nullptr;
        CHECK_ST(p1->reserve(3, buf), HZ_OK);
        std::memcpy(buf, "z12", 3);
        bool refused = false;
        try {
            push(*p1, 99, 99, "x");  // another write while a reservation is open
        } catch (const harmonizer::error &e) {
            refused = e.status() == HZ_ERR_STATE;
        }
        CHECK(refused);
        hz_event_header h{};
        h.pos = 14;
        h.seq = 12;
        p1->commit(h);
        std::vector<std::uint64_t> seqs;
        for (int i = 0; i < 8; ++i) {
            harmonizer::engine::item it = engine.next();
            if (it.status == HZ_EMPTY) break;
            if (it.status == HZ_OK) {
                seqs.push_back(it.event.header->seq);
                if (it.event.header->seq == 12)
                    CHECK(std::string(reinterpret_cast<const char *>(it.event.payload), it.event.payload_len) == "z12");
            }
        }
        // 10 and 11 were handed out before the exception above; 12 is the reserved one.
        CHECK(seqs.size() == 1 && seqs[0] == 12);
        std::vector<hz_event_view> views(4);
        hz_notice n{};
        bool got_notice = true;
        CHECK(engine.poll_views(views, n, got_notice) == 0 && !got_notice);
    }

    // Producers may outlive the engine; destruction order does not matter.
    {
        harmonizer::engine gone = std::move(engine);
    }
    const std::uint32_t after = push(p0, 100, 100, "late");
    CHECK(after == HZ_OK || after == HZ_FULL || after == HZ_NOT_SUBSCRIBED);
    std::printf("api.cpp: all checks passed\n");
    return 0;
}
