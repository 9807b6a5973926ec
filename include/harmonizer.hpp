/*
 * harmonizer: receiver-side stream switching. C++17 wrappers over the C API (harmonizer.h).
 *
 * Header-only, no dependency beyond the C library and the standard library. What it adds:
 * - RAII: harmonizer::config, engine and producer own their handles (move-only; the handle is
 *   freed by the destructor). A producer may outlive its engine, as in C.
 * - Errors as exceptions: harmonizer::error carries the HZ_ERR_* status and the library's
 *   message. Results that report what happened rather than a failure (HZ_ERR_FULL,
 *   HZ_ERR_NOT_SUBSCRIBED, HZ_ERR_SHED) are returned by producer::push, not thrown.
 * - Callbacks as any callable: engine::poll takes lambdas. An exception thrown by one is
 *   caught before it reaches the C library, and rethrown by poll after the call returns.
 *
 * Threads, ownership and every call's meaning are the C API's (harmonizer.h). get() hands out
 * the raw handle for any call the wrappers do not cover.
 */
#ifndef HARMONIZER_HPP
#define HARMONIZER_HPP

#include "harmonizer.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace harmonizer {

/* A failed call: status() is the HZ_ERR_* value, what() its name and the library's message. */
class error : public std::runtime_error {
public:
    error(std::uint32_t status, const char *message)
        : std::runtime_error(std::string(hz_status_str(status)) +
                             (message != nullptr && message[0] != '\0' ? std::string(": ") + message : std::string())),
          status_(status) {}
    std::uint32_t status() const noexcept { return status_; }

private:
    std::uint32_t status_;
};

namespace detail {

struct config_deleter {
    void operator()(hz_config *c) const noexcept { hz_config_free(c); }
};
struct engine_deleter {
    void operator()(hz_engine *e) const noexcept { hz_engine_free(e); }
};
struct producer_deleter {
    void operator()(hz_producer *p) const noexcept { hz_producer_free(p); }
};

/* Throws for a failed status. The message is read only then, after the call: reading it in
 * the same expression as the call would be unsequenced. */
template <class LastError>
void check(std::uint32_t status, LastError last_error) {
    if (status != HZ_OK) throw error(status, last_error());
}

}  // namespace detail

/* hz_config: what an engine is built from. */
class config {
public:
    config(std::uint64_t recipient_id, std::uint32_t streams, std::size_t capacity_bytes, std::size_t max_payload) {
        hz_config *raw = nullptr;
        const std::uint32_t st = hz_config_new(recipient_id, streams, capacity_bytes, max_payload, &raw);
        detail::check(st, [] { return hz_last_error(); });
        h_.reset(raw);
    }
    config &policy(std::uint32_t policy) { return done(hz_config_set_policy(get(), policy)); }
    config &preset(std::uint32_t preset) { return done(hz_config_set_preset(get(), preset)); }
    config &gap_policy(std::uint32_t policy) { return done(hz_config_set_gap_policy(get(), policy)); }
    config &silence(std::uint64_t silence_ns, bool failover) {
        return done(hz_config_set_silence(get(), silence_ns, failover ? 1u : 0u));
    }
    /* The application's clock (hz_config_set_clock): fn and user_data must outlive every
     * engine built from this configuration. */
    config &clock(hz_clock_fn fn, void *user_data) { return done(hz_config_set_clock(get(), fn, user_data)); }
    hz_config *get() const noexcept { return h_.get(); }

private:
    config &done(std::uint32_t status) {
        detail::check(status, [this] { return hz_config_last_error(get()); });
        return *this;
    }
    std::unique_ptr<hz_config, detail::config_deleter> h_;
};

/* hz_producer: feeds one stream, from one thread at a time. */
class producer {
public:
    explicit producer(hz_producer *raw) noexcept : h_(raw) {}
    /* HZ_OK, or what happened: HZ_ERR_FULL (backpressure: poll, then push again),
     * HZ_ERR_NOT_SUBSCRIBED (the stream is idle; discarded), HZ_ERR_SHED (a staged ring shed
     * it). Throws harmonizer::error on errors (e.g. HZ_ERR_TOO_LARGE). */
    std::uint32_t push(const hz_event_header &header, const void *payload, std::size_t len) {
        const std::uint32_t st = hz_producer_push(get(), &header, static_cast<const std::uint8_t *>(payload), len);
        if (st == HZ_OK || st == HZ_ERR_FULL || st == HZ_ERR_NOT_SUBSCRIBED || st == HZ_ERR_SHED) return st;
        throw error(st, hz_producer_last_error(get()));
    }
    std::uint32_t push(const hz_event_header &header, const std::vector<std::uint8_t> &payload) {
        return push(header, payload.data(), payload.size());
    }
    std::uint32_t stream() const noexcept { return hz_producer_stream(get()); }
    hz_producer *get() const noexcept { return h_.get(); }

private:
    std::unique_ptr<hz_producer, detail::producer_deleter> h_;
};

/* hz_engine: the consumer side of every stream, used from one thread at a time. */
class engine {
public:
    explicit engine(const config &c) {
        hz_engine *raw = nullptr;
        const std::uint32_t st = hz_engine_new(c.get(), &raw);
        detail::check(st, [&c] { return hz_config_last_error(c.get()); });
        h_.reset(raw);
    }
    producer take_producer(std::uint32_t stream) {
        hz_producer *raw = nullptr;
        done(hz_engine_take_producer(get(), stream, &raw));
        return producer(raw);
    }
    /* Delivers up to max events: on_event(stream, const hz_event_header &, const std::uint8_t *
     * payload, std::size_t len) per event, on_notice(const hz_notice &) per notice. Returns how
     * many events were delivered. */
    template <class OnEvent, class OnNotice>
    std::size_t poll(std::size_t max, OnEvent &&on_event, OnNotice &&on_notice) {
        calls<OnEvent, OnNotice> c{on_event, on_notice, nullptr};
        std::size_t n = 0;
        const std::uint32_t st =
            hz_engine_poll(get(), max, &calls<OnEvent, OnNotice>::event, &calls<OnEvent, OnNotice>::notice, &c, &n);
        if (c.thrown) std::rethrow_exception(c.thrown);
        done(st);
        return n;
    }
    template <class OnEvent>
    std::size_t poll(std::size_t max, OnEvent &&on_event) {
        return poll(max, std::forward<OnEvent>(on_event), [](const hz_notice &) {});
    }
    /* Sleeps until the active stream's producer publishes or timeout_ns passes; true when the
     * next poll has work. */
    bool wait(std::uint64_t timeout_ns) {
        std::uint32_t ready = 0;
        done(hz_engine_wait(get(), timeout_ns, &ready));
        return ready != 0;
    }
    std::uint32_t active_stream() const {
        std::uint32_t s = 0;
        done(hz_engine_active_stream(get(), &s));
        return s;
    }
    hz_stats stats() const {
        hz_stats s{};
        done(hz_engine_stats(get(), &s));
        return s;
    }
    hz_engine *get() const noexcept { return h_.get(); }

private:
    template <class OnEvent, class OnNotice>
    struct calls {
        OnEvent &on_event;
        OnNotice &on_notice;
        std::exception_ptr thrown;
        // noexcept: nothing may unwind through the C library. The first exception is kept and
        // rethrown by poll; later callbacks of the same call are skipped.
        static void event(void *user, std::uint32_t stream, const hz_event_header *h, const std::uint8_t *payload,
                          std::size_t len) noexcept {
            auto *c = static_cast<calls *>(user);
            if (c->thrown) return;
            try {
                c->on_event(stream, *h, payload, len);
            } catch (...) {
                c->thrown = std::current_exception();
            }
        }
        static void notice(void *user, const hz_notice *n) noexcept {
            auto *c = static_cast<calls *>(user);
            if (c->thrown) return;
            try {
                c->on_notice(*n);
            } catch (...) {
                c->thrown = std::current_exception();
            }
        }
    };
    void done(std::uint32_t status) const {
        detail::check(status, [this] { return hz_engine_last_error(get()); });
    }
    std::unique_ptr<hz_engine, detail::engine_deleter> h_;
};

/* A flip record's bytes (hz_flip_encode). */
inline std::vector<std::uint8_t> encode_flip(const hz_flip &flip) {
    std::size_t len = 0;
    detail::check(hz_flip_encoded_len(&flip, &len), [] { return hz_last_error(); });
    std::vector<std::uint8_t> out(len);
    std::size_t written = 0;
    const std::uint32_t st = hz_flip_encode(&flip, out.data(), out.size(), &written);
    detail::check(st, [] { return hz_last_error(); });
    out.resize(written);
    return out;
}

}  // namespace harmonizer

#endif /* HARMONIZER_HPP */
