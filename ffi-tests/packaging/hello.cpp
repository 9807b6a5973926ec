// hello.c in C++17 through the installed harmonizer.hpp: built by run.sh against an installed
// prefix with pkg-config. Exit status 0 iff the 3 events pushed are delivered.
#include <harmonizer.hpp>

#include <cstdio>
#include <exception>

int main() {
    try {
        harmonizer::config config(1, 1, 1 << 16, 64);
        harmonizer::engine engine(config);
        harmonizer::producer producer = engine.take_producer(0);
        engine.poll(8, [](std::uint32_t, const hz_event_header &, const std::uint8_t *, std::size_t) {});
        for (std::uint64_t seq = 1; seq <= 3; ++seq) {
            hz_event_header h{};
            h.pos = seq;
            h.seq = seq;
            h.kind = HZ_KIND_DATA;
            if (producer.push(h, "hi", 2) != HZ_OK) return 1;
        }
        std::size_t got = 0;
        engine.poll(8, [&](std::uint32_t, const hz_event_header &, const std::uint8_t *, std::size_t) { ++got; });
        std::printf("harmonizer %s (C++): %zu events delivered\n", hz_version(), got);
        return got == 3 ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hello.cpp: %s\n", e.what());
        return 1;
    }
}
