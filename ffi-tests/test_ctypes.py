#!/usr/bin/env python3
"""The C API through ctypes (Python 3 standard library only).

Loads libharmonizer.so, declares argtypes/restype for the functions it uses, mirrors
hz_event_header / hz_notice / hz_stats / hz_flip as ctypes Structures and the callbacks as
CFUNCTYPE, then drives a scenario: two streams carrying the same events, an ANNOUNCE, a SWITCH
and a SWITCHBACK (flips encoded by hz_flip_encode, on both streams), a cold switch to a third
stream, and checks every seq is delivered exactly once, in order, with the SWITCHED notices
expected. Exits non-zero on failure.

Usage: python3 test_ctypes.py [PATH/TO/libharmonizer.so]
"""

import ctypes as C
import os
import sys

HZ_OK = 0
HZ_ERR_NULL = 1
HZ_ERR_INVALID = 2
HZ_ERR_FULL = 4
HZ_ERR_NOT_SUBSCRIBED = 6
HZ_ERR_STATE = 8
HZ_ERR_MALFORMED = 9
HZ_KIND_DATA = 0
HZ_KIND_FLIP = 1
HZ_MAX_FLIP_LEN = 1335
HZ_NOTICE_SUBSCRIBE = 1
HZ_START_POS = 1
HZ_START_LIVE = 2
HZ_PURPOSE_INITIAL = 1
HZ_NOTICE_UNSUBSCRIBE = 2
HZ_NOTICE_SWITCHED = 3
HZ_NOTICE_GAP = 4
HZ_NOTICE_LOST = 5
HZ_FLIP_SWITCH = 1
HZ_FLIP_ANNOUNCE = 2
HZ_FLIP_SWITCHBACK = 4
HZ_SELECTOR_ALL = 0
HZ_SELECTOR_COHORT = 2


class EventHeader(C.Structure):
    _fields_ = [
        ("pos", C.c_uint64),
        ("seq", C.c_uint64),
        ("ts_ns", C.c_uint64),
        ("origin", C.c_uint32),
        ("kind", C.c_uint16),
        ("flags", C.c_uint16),
    ]


class Notice(C.Structure):
    _fields_ = [
        ("kind", C.c_uint32),
        ("stream", C.c_uint32),
        ("to_stream", C.c_uint32),
        ("origin", C.c_uint32),
        ("seamless", C.c_uint32),
        ("reason", C.c_uint32),
        ("flip_id", C.c_uint64),
        ("pos", C.c_uint64),
        ("from_pos", C.c_uint64),
        ("from_seq", C.c_uint64),
        ("to_seq", C.c_uint64),
        ("stall_ns", C.c_uint64),
        ("from_kind", C.c_uint32),
        ("purpose", C.c_uint32),
        ("after_seq", C.c_uint64),
        ("switch_ns", C.c_uint64),
        ("silent_ns", C.c_uint64),
        ("count", C.c_uint64),
        ("lead_ns", C.c_uint64),
        ("locator", C.POINTER(C.c_uint8)),
        ("locator_len", C.c_size_t),
    ]


STATS_FIELDS = [
    "delivered", "duplicates_dropped", "gap_filled", "gaps", "lost", "rereads",
    "skipped_for_reread", "before_resume_pos", "flips_applied", "flips_ignored",
    "flips_repeated", "flips_stale", "flips_rejected", "bad_events", "unknown_kinds",
    "switches_seamless", "switches_cold", "stall_last_ns", "stall_max_ns", "stall_total_ns",
    "staged_bytes", "peak_staged_bytes", "staged_ns", "observed_ns", "api_errors",
    "fill_requests", "stuck", "silences", "failovers", "switch_last_ns", "switch_max_ns",
]


class Stats(C.Structure):
    _fields_ = [(name, C.c_uint64) for name in STATS_FIELDS]


class Flip(C.Structure):
    _fields_ = [
        ("action", C.c_uint32),
        ("target", C.c_uint32),
        ("flip_id", C.c_uint64),
        ("cutover_pos", C.c_uint64),
        ("resume_pos", C.c_uint64),
        ("not_before_ns", C.c_uint64),
        ("expected_in_ns", C.c_uint64),
        ("selector", C.c_uint32),
        ("basis_points", C.c_uint32),
        ("salt", C.c_uint64),
        ("ids", C.POINTER(C.c_uint64)),
        ("ids_len", C.c_size_t),
        ("locator", C.POINTER(C.c_uint8)),
        ("locator_len", C.c_size_t),
    ]


EVENT_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_uint32, C.POINTER(EventHeader),
                       C.POINTER(C.c_uint8), C.c_size_t)
NOTICE_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Notice))

u32, u64, sz, vp = C.c_uint32, C.c_uint64, C.c_size_t, C.c_void_p
PROTOTYPES = {
    "hz_version": (C.c_char_p, []),
    "hz_version_number": (u32, []),
    "hz_status_str": (C.c_char_p, [u32]),
    "hz_last_error": (C.c_char_p, []),
    "hz_config_new": (u32, [u64, u32, sz, sz, C.POINTER(vp)]),
    "hz_config_free": (None, [vp]),
    "hz_config_set_policy": (u32, [vp, u32]),
    "hz_config_last_error": (C.c_char_p, [vp]),
    "hz_engine_new": (u32, [vp, C.POINTER(vp)]),
    "hz_engine_free": (None, [vp]),
    "hz_engine_take_producer": (u32, [vp, u32, C.POINTER(vp)]),
    "hz_engine_poll": (u32, [vp, sz, EVENT_FN, NOTICE_FN, vp, C.POINTER(sz)]),
    "hz_engine_stats": (u32, [vp, C.POINTER(Stats)]),
    "hz_engine_active_stream": (u32, [vp, C.POINTER(u32)]),
    "hz_engine_last_error": (C.c_char_p, [vp]),
    "hz_producer_free": (None, [vp]),
    "hz_producer_push": (u32, [vp, C.POINTER(EventHeader), C.POINTER(C.c_uint8), sz]),
    "hz_producer_stream": (u32, [vp]),
    "hz_flip_encoded_len": (u32, [C.POINTER(Flip), C.POINTER(sz)]),
    "hz_flip_encode": (u32, [C.POINTER(Flip), C.POINTER(C.c_uint8), sz, C.POINTER(sz)]),
    "hz_flip_decode": (u32, [C.POINTER(C.c_uint8), sz, C.POINTER(Flip), C.POINTER(C.c_uint64), sz]),
}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def load(path):
    lib = C.CDLL(path)
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "target", "release", "libharmonizer.so")
    lib = load(path)

    def st(status, want=HZ_OK, what=""):
        if status != want:
            raise Failure("%s: got %s, expected %s" % (
                what, lib.hz_status_str(status).decode(), lib.hz_status_str(want).decode()))

    check(C.sizeof(EventHeader) == 32, "hz_event_header is 32 bytes")
    check(lib.hz_version().decode().count(".") == 2, "version text")
    major, minor, patch = (int(x) for x in lib.hz_version().decode().split("."))
    check(lib.hz_version_number() == major * 10000 + minor * 100 + patch, "version number")
    check(lib.hz_status_str(HZ_OK) == b"ok", "status ok")
    check(lib.hz_status_str(12345) == b"unknown status", "unknown status")

    cfg = vp()
    st(lib.hz_config_new(99, 3, 1 << 16, HZ_MAX_FLIP_LEN, C.byref(cfg)), what="config_new")
    st(lib.hz_config_set_policy(cfg, 42), HZ_ERR_INVALID, "set_policy(42)")
    check(b"policy" in lib.hz_config_last_error(cfg), "config last error")
    eng = vp()
    st(lib.hz_engine_new(cfg, C.byref(eng)), what="engine_new")
    lib.hz_config_free(cfg)
    prods = []
    for s in range(3):
        p = vp()
        st(lib.hz_engine_take_producer(eng, s, C.byref(p)), what="take_producer")
        check(lib.hz_producer_stream(p) == s, "producer stream")
        prods.append(p)
    again = vp(0x1234)
    st(lib.hz_engine_take_producer(eng, 0, C.byref(again)), HZ_ERR_STATE, "take twice")
    check(again.value == 0x1234, "out-parameter untouched on error")
    check(b"already taken" in lib.hz_engine_last_error(eng), "engine last error")

    delivered = []  # (stream, seq)
    notices = []
    initial = []
    callback_errors = []  # an exception cannot cross a ctypes callback: collect, check after


    @EVENT_FN
    def on_event(user, stream, hdr, payload, length):
        h = hdr.contents
        data = C.string_at(payload, length)
        if data != b"seq=%d" % h.seq or h.kind != HZ_KIND_DATA or h.origin != 0:
            callback_errors.append("event %r: payload %r" % ((h.pos, h.seq, h.kind), data))
        delivered.append((stream, h.seq))

    @NOTICE_FN
    def on_notice(user, n):
        n = n.contents
        loc = C.string_at(n.locator, n.locator_len) if n.locator_len else b""
        if n.kind == HZ_NOTICE_SUBSCRIBE and n.purpose == HZ_PURPOSE_INITIAL:
            initial.append((n.stream, n.from_kind))  # the first poll's, checked apart
            return
        # A typed start (not HZ_START_POS) reads, for this one-origin feed, as "after the frontier".
        from_pos = n.from_pos if n.from_kind == HZ_START_POS else 0
        notices.append((n.kind, n.stream, n.to_stream, n.flip_id, n.seamless, from_pos, loc))

    def poll_all():
        total = 0
        for _ in range(1000):
            got = sz(0)
            st(lib.hz_engine_poll(eng, 64, on_event, on_notice, None, C.byref(got)), what="poll")
            total += got.value
            if got.value == 0:
                break
        check(not callback_errors, "in callbacks: %s" % callback_errors[:3])
        return total

    def encode(flip):
        n = sz(0)
        st(lib.hz_flip_encoded_len(C.byref(flip), C.byref(n)), what="encoded_len")
        buf = (C.c_uint8 * n.value)()
        written = sz(0)
        st(lib.hz_flip_encode(C.byref(flip), buf, n.value, C.byref(written)), what="encode")
        check(written.value == n.value, "encoded length")
        return buf

    # Every stream carries the same records at the same positions.
    records = []  # (kind, seq, payload bytes as a ctypes array)
    def data(seq):
        raw = b"seq=%d" % seq
        records.append((HZ_KIND_DATA, seq, (C.c_uint8 * len(raw)).from_buffer_copy(raw)))

    def flip(action, target, flip_id, **kw):
        f = Flip(action=action, target=target, flip_id=flip_id, selector=HZ_SELECTOR_ALL)
        for k, v in kw.items():
            setattr(f, k, v)
        records.append((HZ_KIND_FLIP, 0, encode(f)))

    loc = (C.c_uint8 * 6).from_buffer_copy(b"feed-c")
    n_seq = 3000
    for seq in range(1, n_seq + 1):
        if seq == 500:
            flip(HZ_FLIP_ANNOUNCE, 1, 1)
        if seq == 1000:
            flip(HZ_FLIP_SWITCH, 1, 2)
        if seq == 1500:
            flip(HZ_FLIP_SWITCHBACK, 0, 3)
        if seq == 2000:  # a cohort that excludes everyone: ignored
            flip(HZ_FLIP_SWITCH, 2, 4, selector=HZ_SELECTOR_COHORT, basis_points=0, salt=5)
        if seq == 2500:  # cold switch to idle stream 2, with a locator
            flip(HZ_FLIP_SWITCH, 2, 5, locator=C.cast(loc, C.POINTER(C.c_uint8)), locator_len=6)
        data(seq)

    # A decode round trip and a malformed record.
    kind, _, buf = records[[r[0] for r in records].index(HZ_KIND_FLIP)]
    out = Flip()
    st(lib.hz_flip_decode(buf, len(buf), C.byref(out), None, 0), what="decode")
    check(out.action == HZ_FLIP_ANNOUNCE and out.target == 1 and out.flip_id == 1, "decoded flip")
    bad = (C.c_uint8 * len(buf)).from_buffer_copy(bytes(buf))
    bad[len(bad) - 1] ^= 0xFF
    st(lib.hz_flip_decode(bad, len(bad), C.byref(out), None, 0), HZ_ERR_MALFORMED, "decode bad CRC")
    check(b"CRC" in lib.hz_last_error(), "last error names the CRC")

    # Feed: the producers push in lock-step (one record per stream per step, then a poll every
    # 50 steps). An idle stream discards (HZ_ERR_NOT_SUBSCRIBED); on SUBSCRIBE a producer
    # re-sends from from_pos (0: a typed start, from just after the last delivered position); a full active
    # ring is retried after a poll.
    cursor = [1, 1, 1]
    last_pos = [0]

    def on_subscribe_requests(start):
        for kind, stream, _, _, _, from_pos, _ in notices[start:]:
            if kind == HZ_NOTICE_SUBSCRIBE:
                cursor[stream] = from_pos if from_pos else last_pos[0] + 1

    pos_of_seq = {}
    for i, (kind, seq, _) in enumerate(records, start=1):
        if kind == HZ_KIND_DATA:
            pos_of_seq[seq] = i

    full = 0
    steps = 0
    while len(delivered) < n_seq:
        steps += 1
        check(steps < 100000, "no progress: delivered %d" % len(delivered))
        for s in range(3):
            i = cursor[s]
            if i > len(records):
                continue
            kind, seq, payload = records[i - 1]
            h = EventHeader(pos=i, seq=seq, ts_ns=i * 1000, origin=0, kind=kind, flags=0)
            r = lib.hz_producer_push(prods[s], C.byref(h), payload, len(payload))
            if r == HZ_ERR_FULL:
                full += 1
                continue
            check(r in (HZ_OK, HZ_ERR_NOT_SUBSCRIBED), "push: %s" % lib.hz_status_str(r).decode())
            cursor[s] = i + 1
        if steps % 50 == 0 or all(c > len(records) for c in cursor):
            before = len(notices)
            poll_all()
            if delivered:
                last_pos[0] = pos_of_seq[delivered[-1][1]]
            on_subscribe_requests(before)

    # Exactly once, in order.
    seqs = [s for _, s in delivered]
    check(seqs == list(range(1, n_seq + 1)), "every seq exactly once, in order")
    switched = [(n[1], n[2], n[3]) for n in notices if n[0] == HZ_NOTICE_SWITCHED]
    check(switched == [(0, 1, 2), (1, 0, 3), (0, 2, 5)], "SWITCHED notices: %r" % switched)
    check(not any(n[0] == HZ_NOTICE_LOST for n in notices), "nothing lost")
    check(initial == [(0, HZ_START_LIVE)], "the initial stream's SUBSCRIBE, live: %r" % initial)
    subs = [n for n in notices if n[0] == HZ_NOTICE_SUBSCRIBE and n[1] == 2]
    check(subs and subs[0][6] == b"feed-c", "SUBSCRIBE of stream 2 carries the locator")
    active = u32(99)
    st(lib.hz_engine_active_stream(eng, C.byref(active)), what="active_stream")
    check(active.value == 2, "active stream 2")
    stats = Stats()
    st(lib.hz_engine_stats(eng, C.byref(stats)), what="stats")
    check(stats.delivered == n_seq and stats.lost == 0, "stats delivered")
    check(stats.switches_seamless + stats.switches_cold == 3, "stats switches")
    check(stats.flips_ignored == 1 and stats.flips_repeated >= 1, "stats flips")
    check(stats.api_errors == 1, "api_errors")

    st(lib.hz_engine_poll(None, 1, on_event, on_notice, None, None), HZ_ERR_NULL, "poll(NULL)")
    for p in prods:
        lib.hz_producer_free(p)
    lib.hz_engine_free(eng)
    lib.hz_engine_free(None)
    lib.hz_producer_free(None)
    lib.hz_config_free(None)
    print("test_ctypes: all checks passed (%d events, %d switches, %d duplicates dropped, %d full)"
          % (stats.delivered, len(switched), stats.duplicates_dropped, full))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print("test_ctypes: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
