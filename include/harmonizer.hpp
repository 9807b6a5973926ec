/*
 * harmonizer: receiver-side stream switching. C++17 wrappers over the C API (harmonizer.h).
 *
 * Header-only, no dependency beyond the C library and the standard library. What it adds:
 * - RAII: harmonizer::config, engine and producer own their handles (move-only; the handle is
 *   freed by the destructor). A producer may outlive its engine, as in C.
 * - Errors as exceptions: harmonizer::error carries the HZ_ERR_* status and the library's
 *   message. Informational results (below HZ_ERR_FIRST: HZ_FULL, HZ_SHED, HZ_NOT_SUBSCRIBED,
 *   HZ_EMPTY, HZ_GOT_NOTICE) say what happened; they are returned, never thrown.
 * - Size-tagged structs: harmonizer::sized<T>() is a zeroed T with struct_size set; the
 *   wrappers set it wherever they hand a struct to the library.
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
    error(hz_status status, const char *message)
        : std::runtime_error(std::string(hz_status_str(status)) +
                             (message != nullptr && message[0] != '\0' ? std::string(": ") + message : std::string())),
          status_(status) {}
    hz_status status() const noexcept { return status_; }

private:
    hz_status status_;
};

/* A zeroed T with struct_size = sizeof(T): how every size-tagged struct handed to the library
 * starts (hz_stats, hz_event_view, hz_notice, hz_flip). */
template <class T>
T sized() noexcept {
    T v{};
    v.struct_size = sizeof(T);
    return v;
}

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

/* Throws for an error status (at or above HZ_ERR_FIRST) and returns the others. The message
 * is read only then, after the call: reading it in the same expression as the call would be
 * unsequenced. */
template <class LastError>
hz_status check(hz_status status, LastError last_error) {
    if (status >= HZ_ERR_FIRST) throw error(status, last_error());
    return status;
}

}  // namespace detail

/* hz_config: what an engine is built from. */
class config {
public:
    config(std::uint64_t recipient_id, std::uint32_t streams, std::size_t capacity_bytes, std::size_t max_payload) {
        hz_config *raw = nullptr;
        const hz_status st = hz_config_new(recipient_id, streams, capacity_bytes, max_payload, &raw);
        detail::check(st, [] { return hz_last_error(); });
        h_.reset(raw);
    }
    config &policy(std::uint32_t policy) { return done(hz_config_set_policy(get(), policy)); }
    config &preset(std::uint32_t preset) { return done(hz_config_set_preset(get(), preset)); }
    config &gap_policy(std::uint32_t policy) { return done(hz_config_set_gap_policy(get(), policy)); }
    config &silence(std::uint64_t silence_ns, bool failover) {
        return done(hz_config_set_silence(get(), silence_ns, failover ? 1u : 0u));
    }
    config &gap_wait(std::uint64_t gap_wait_ns) { return done(hz_config_set_gap_wait(get(), gap_wait_ns)); }
    /* The application's clock (hz_config_set_clock): fn and user_data must outlive every
     * engine built from this configuration. */
    config &clock(hz_clock_fn fn, void *user_data) { return done(hz_config_set_clock(get(), fn, user_data)); }
    hz_config *get() const noexcept { return h_.get(); }

private:
    config &done(hz_status status) {
        detail::check(status, [this] { return hz_config_last_error(get()); });
        return *this;
    }
    std::unique_ptr<hz_config, detail::config_deleter> h_;
};

/* hz_producer: feeds one stream, from one thread at a time. */
class producer {
public:
    explicit producer(hz_producer *raw) noexcept : h_(raw) {}
    /* HZ_OK, or what happened: HZ_FULL (backpressure: poll, then push again),
     * HZ_NOT_SUBSCRIBED (the stream is idle; discarded), HZ_SHED (a staged ring shed
     * it). Throws harmonizer::error on errors (e.g. HZ_ERR_TOO_LARGE). */
    hz_status push(const hz_event_header &header, const void *payload, std::size_t len) {
        return done(hz_producer_push(get(), &header, static_cast<const std::uint8_t *>(payload), len));
    }
    hz_status push(const hz_event_header &header, const std::vector<std::uint8_t> &payload) {
        return push(header, payload.data(), payload.size());
    }
    /* Zero-copy produce (hz_producer_reserve): on HZ_OK, payload points to len bytes in the
     * ring, to fill and then commit() (or cancel()); other results as push, with nothing
     * reserved. No other write on this producer until then. */
    hz_status reserve(std::size_t len, std::uint8_t *&payload) {
        return done(hz_producer_reserve(get(), len, &payload));
    }
    /* Publishes the reserved record with this header. */
    void commit(const hz_event_header &header) { done(hz_producer_commit(get(), &header)); }
    /* Drops the reserved record: nothing is published. */
    void cancel() { done(hz_producer_cancel(get())); }
    std::uint32_t stream() const noexcept { return hz_producer_stream(get()); }
    hz_producer *get() const noexcept { return h_.get(); }

private:
    hz_status done(hz_status status) {
        return detail::check(status, [this] { return hz_producer_last_error(get()); });
    }
    std::unique_ptr<hz_producer, detail::producer_deleter> h_;
};

/* hz_engine: the consumer side of every stream, used from one thread at a time. */
class engine {
public:
    explicit engine(const config &c) {
        hz_engine *raw = nullptr;
        const hz_status st = hz_engine_new(c.get(), &raw);
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
        const hz_status st =
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
        hz_stats s = sized<hz_stats>();
        done(hz_engine_stats(get(), &s));
        return s;
    }
    /* What next() pulled: status HZ_OK (event), HZ_GOT_NOTICE (notice) or HZ_EMPTY. The event's
     * memory and the notice's locator are valid until the next call on the engine. */
    struct item {
        hz_status status;
        hz_event_view event;
        hz_notice notice;
    };
    /* Pulls the next event or notice, in order, without a callback (hz_engine_next). */
    item next() {
        item it{HZ_EMPTY, sized<hz_event_view>(), sized<hz_notice>()};
        it.status = done(hz_engine_next(get(), &it.event, &it.notice));
        return it;
    }
    /* Pulls up to views.size() events into views (hz_engine_poll_views); returns how many. When
     * a notice comes right after them, it is written to notice and got_notice is set: handle the
     * events, then the notice. Valid until the next call on the engine. */
    std::size_t poll_views(std::vector<hz_event_view> &views, hz_notice &notice, bool &got_notice) {
        if (!views.empty()) views[0].struct_size = sizeof(hz_event_view);
        notice.struct_size = sizeof(hz_notice);
        std::size_t n = 0;
        got_notice = done(hz_engine_poll_views(get(), views.data(), views.size(), &n, &notice)) == HZ_GOT_NOTICE;
        return n;
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
    hz_status done(hz_status status) const {
        return detail::check(status, [this] { return hz_engine_last_error(get()); });
    }
    std::unique_ptr<hz_engine, detail::engine_deleter> h_;
};

/* A flip record's bytes (hz_flip_encode). Start the flip from sized<hz_flip>(). */
inline std::vector<std::uint8_t> encode_flip(const hz_flip &flip) {
    std::size_t len = 0;
    detail::check(hz_flip_encoded_len(&flip, &len), [] { return hz_last_error(); });
    std::vector<std::uint8_t> out(len);
    std::size_t written = 0;
    const hz_status st = hz_flip_encode(&flip, out.data(), out.size(), &written);
    detail::check(st, [] { return hz_last_error(); });
    out.resize(written);
    return out;
}

}  // namespace harmonizer

#endif /* HARMONIZER_HPP */
