// api.cpp: the C API from C++17. Handles live in std::unique_ptr with the library's free
// functions as deleters; a short scenario pushes, polls (a capturing lambda through the
// user_data pointer), switches streams with a flip made by hz_flip_encode, and checks the
// results. Exits non-zero on failure.
#include "harmonizer.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
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

namespace hz {

struct ConfigDeleter {
    void operator()(hz_config *c) const noexcept { hz_config_free(c); }
};
struct EngineDeleter {
    void operator()(hz_engine *e) const noexcept { hz_engine_free(e); }
};
struct ProducerDeleter {
    void operator()(hz_producer *p) const noexcept { hz_producer_free(p); }
};
using Config = std::unique_ptr<hz_config, ConfigDeleter>;
using Engine = std::unique_ptr<hz_engine, EngineDeleter>;
using Producer = std::unique_ptr<hz_producer, ProducerDeleter>;

// A deleter given as a function pointer works too.
using ConfigFn = std::unique_ptr<hz_config, decltype(&hz_config_free)>;

Config make_config(std::uint64_t recipient, std::uint32_t streams) {
    hz_config *raw = nullptr;
    CHECK_ST(hz_config_new(recipient, streams, 1 << 16, HZ_MAX_FLIP_LEN, &raw), HZ_OK);
    return Config(raw);
}

Engine make_engine(const Config &c) {
    hz_engine *raw = nullptr;
    CHECK_ST(hz_engine_new(c.get(), &raw), HZ_OK);
    return Engine(raw);
}

Producer take_producer(const Engine &e, std::uint32_t stream) {
    hz_producer *raw = nullptr;
    CHECK_ST(hz_engine_take_producer(e.get(), stream, &raw), HZ_OK);
    return Producer(raw);
}

struct Delivered {
    std::uint32_t stream;
    std::uint64_t seq;
    std::string payload;
};

struct Callbacks {
    std::function<void(std::uint32_t, const hz_event_header &, const std::uint8_t *, std::size_t)> on_event;
    std::function<void(const hz_notice &)> on_notice;
};

// noexcept: a callback must return normally (an exception must not cross the library).
extern "C" void event_trampoline(void *user, std::uint32_t stream, const hz_event_header *h,
                                 const std::uint8_t *payload, std::size_t len) noexcept {
    static_cast<Callbacks *>(user)->on_event(stream, *h, payload, len);
}

extern "C" void notice_trampoline(void *user, const hz_notice *n) noexcept {
    static_cast<Callbacks *>(user)->on_notice(*n);
}

std::size_t poll(const Engine &e, Callbacks &cb, std::size_t max = 64) {
    std::size_t n = 0;
    CHECK_ST(hz_engine_poll(e.get(), max, event_trampoline, notice_trampoline, &cb, &n), HZ_OK);
    return n;
}

std::vector<std::uint8_t> encode(const hz_flip &f) {
    std::size_t len = 0;
    CHECK_ST(hz_flip_encoded_len(&f, &len), HZ_OK);
    std::vector<std::uint8_t> out(len);
    std::size_t written = 0;
    CHECK_ST(hz_flip_encode(&f, out.data(), out.size(), &written), HZ_OK);
    CHECK(written == len);
    return out;
}

}  // namespace hz

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

    hz::Config cfg = hz::make_config(7, 2);
    hz::Engine engine = hz::make_engine(cfg);
    cfg.reset();  // the engine does not need it
    {
        hz_config *raw = nullptr;
        CHECK_ST(hz_config_new(1, 1, 4096, 64, &raw), HZ_OK);
        hz::ConfigFn scoped(raw, &hz_config_free);
        CHECK_ST(hz_config_set_policy(scoped.get(), 99), HZ_ERR_INVALID);
        CHECK(std::string(hz_config_last_error(scoped.get())).find("policy") != std::string::npos);
    }

    hz::Producer p0 = hz::take_producer(engine, 0);
    hz::Producer p1 = hz::take_producer(engine, 1);
    {
        hz_producer *again = nullptr;
        CHECK_ST(hz_engine_take_producer(engine.get(), 1, &again), HZ_ERR_STATE);
        CHECK(again == nullptr);
    }

    std::vector<hz::Delivered> got;
    std::vector<hz_notice> notices;
    std::vector<hz_notice> initial;
    hz::Callbacks cb;
    cb.on_event = [&](std::uint32_t stream, const hz_event_header &h, const std::uint8_t *p, std::size_t n) {
        got.push_back({stream, h.seq, std::string(reinterpret_cast<const char *>(p), n)});
    };
    cb.on_notice = [&](const hz_notice &n) {
        // The first poll's SUBSCRIBE of the initial stream is checked below, apart.
        if (n.kind == HZ_NOTICE_SUBSCRIBE && n.purpose == HZ_PURPOSE_INITIAL) {
            initial.push_back(n);
            return;
        }
        notices.push_back(n);
    };

    auto push = [](const hz::Producer &p, std::uint64_t pos, std::uint64_t seq, const std::string &s) {
        hz_event_header h{};
        h.pos = pos;
        h.seq = seq;
        h.ts_ns = pos;
        h.kind = HZ_KIND_DATA;
        return hz_producer_push(p.get(), &h, reinterpret_cast<const std::uint8_t *>(s.data()), s.size());
    };

    for (std::uint64_t i = 1; i <= 3; ++i) CHECK_ST(push(p0, i, i, "a" + std::to_string(i)), HZ_OK);
    CHECK_ST(push(p1, 1, 1, "idle"), HZ_ERR_NOT_SUBSCRIBED);
    CHECK(hz::poll(engine, cb) == 3);
    CHECK(got.size() == 3 && got[2].payload == "a3" && got[2].stream == 0);

    // Announce stream 1 (staged), feed it, then switch: seamless, every seq once.
    hz_flip f{};
    f.action = HZ_FLIP_ANNOUNCE;
    f.target = 1;
    f.flip_id = 1;
    f.selector = HZ_SELECTOR_ALL;
    std::vector<std::uint8_t> announce = hz::encode(f);
    hz_event_header fh{};
    fh.pos = 4;
    fh.kind = HZ_KIND_FLIP;
    CHECK_ST(hz_producer_push(p0.get(), &fh, announce.data(), announce.size()), HZ_OK);
    CHECK(hz::poll(engine, cb) == 0);
    CHECK(notices.size() == 1 && notices[0].kind == HZ_NOTICE_SUBSCRIBE && notices[0].stream == 1);
    CHECK(notices[0].purpose == HZ_PURPOSE_STAGE && notices[0].from_kind == HZ_START_LIVE);
    CHECK(initial.size() == 1 && initial[0].stream == 0 && initial[0].from_kind == HZ_START_LIVE);

    for (std::uint64_t i = 4; i <= 6; ++i) {
        CHECK_ST(push(p0, i + 1, i, "a" + std::to_string(i)), HZ_OK);
        CHECK_ST(push(p1, i + 1, i, "b" + std::to_string(i)), HZ_OK);
    }
    f.action = HZ_FLIP_SWITCH;
    f.flip_id = 2;
    std::vector<std::uint8_t> sw = hz::encode(f);
    fh.pos = 8;
    CHECK_ST(hz_producer_push(p0.get(), &fh, sw.data(), sw.size()), HZ_OK);
    CHECK_ST(hz_producer_push(p1.get(), &fh, sw.data(), sw.size()), HZ_OK);
    for (std::uint64_t i = 7; i <= 9; ++i) CHECK_ST(push(p1, i + 2, i, "b" + std::to_string(i)), HZ_OK);
    std::size_t total = 0;
    for (int i = 0; i < 10; ++i) total += hz::poll(engine, cb);
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

    std::uint32_t active = 99;
    CHECK_ST(hz_engine_active_stream(engine.get(), &active), HZ_OK);
    CHECK(active == 1);
    hz_stats st{};
    CHECK_ST(hz_engine_stats(engine.get(), &st), HZ_OK);
    CHECK(st.delivered == 9 && st.switches_seamless == 1 && st.flips_repeated == 1 && st.api_errors == 1);

    // Decode the switch back into a struct.
    hz_flip d{};
    CHECK_ST(hz_flip_decode(sw.data(), sw.size(), &d, nullptr, 0), HZ_OK);
    CHECK(d.action == HZ_FLIP_SWITCH && d.target == 1 && d.flip_id == 2);
    sw.back() ^= 1;
    CHECK_ST(hz_flip_decode(sw.data(), sw.size(), &d, nullptr, 0), HZ_ERR_MALFORMED);
    CHECK(std::string(hz_last_error()).find("CRC") != std::string::npos);

    // Producers may outlive the engine; unique_ptr order does not matter.
    engine.reset();
    const std::uint32_t after = push(p0, 100, 100, "late");
    CHECK(after == HZ_OK || after == HZ_ERR_FULL || after == HZ_ERR_NOT_SUBSCRIBED);
    std::printf("api.cpp: all checks passed\n");
    return 0;
}
