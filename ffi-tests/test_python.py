#!/usr/bin/env python3
"""The C API from Python, through the package users install (python/, `pip install ./python`):
cffi over the generated header, so nothing here mirrors a struct or a constant by hand.

Drives a scenario: two streams carrying the same events, an ANNOUNCE, a SWITCH and a
SWITCHBACK (flips encoded by hz_flip_encode, on both streams), a cold switch to a third stream,
and checks every seq is delivered exactly once, in order, with the SWITCHED notices expected.
Then a staging pool shared by two engines (hz_pool_*, hz_engine_staging_demand), and the
README's Python example. Exits non-zero on failure.

Usage: HARMONIZER_LIB=PATH/TO/libharmonizer.so python3 test_python.py [README.md]
"""

import json
import os
import re
import sys

import harmonizer as hz
from harmonizer import ffi, lib


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run_readme_example(readme):
    """The README's Python example, run as written (with this library)."""
    text = open(readme).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    check(len(blocks) == 1, "the README has one Python example, found %d" % len(blocks))
    exec(compile(blocks[0], readme + " (python example)", "exec"), {"__name__": "readme_example"})


def main():
    def st(status, want=lib.HZ_OK, what=""):
        if status != want:
            raise Failure("%s: got %s, expected %s" % (
                what, ffi.string(lib.hz_status_str(status)).decode(),
                ffi.string(lib.hz_status_str(want)).decode()))

    check(ffi.sizeof("hz_event_header") == 32, "hz_event_header is 32 bytes")
    check(hz.__version__.count(".") == 2, "version text")
    major, minor, patch = (int(x) for x in hz.__version__.split("."))
    check(lib.hz_version_number() == major * 10000 + minor * 100 + patch, "version number")
    check(ffi.string(lib.hz_status_str(lib.HZ_OK)) == b"ok", "status ok")
    check(ffi.string(lib.hz_status_str(12345)) == b"unknown status", "unknown status")

    cfg = hz.Config(99, 3, 1 << 16, lib.HZ_MAX_FLIP_LEN)
    try:
        cfg.set("policy", 42)
        raise Failure("set_policy(42) accepted")
    except hz.HarmonizerError as e:
        check(e.status == lib.HZ_ERR_INVALID and "policy" in str(e), "set_policy(42): %s" % e)
    eng = hz.Engine(cfg)
    cfg.close()
    prods = []
    for s in range(3):
        p = eng.take_producer(s)
        check(p.stream == s, "producer stream")
        prods.append(p)
    again = ffi.new("hz_producer **", ffi.cast("hz_producer *", 0x1234))
    st(lib.hz_engine_take_producer(eng._h, 0, again), lib.HZ_ERR_STATE, "take twice")
    check(int(ffi.cast("uintptr_t", again[0])) == 0x1234, "out-parameter untouched on error")
    check(b"already taken" in ffi.string(lib.hz_engine_last_error(eng._h)), "engine last error")

    delivered = []  # (stream, seq)
    notices = []
    initial = []

    def on_event(stream, h, payload):
        if payload != b"seq=%d" % h.seq or h.kind != lib.HZ_KIND_DATA or h.origin != 0:
            raise Failure("event %r: payload %r" % ((h.pos, h.seq, h.kind), payload))
        delivered.append((stream, h.seq))

    def on_notice(n):
        if n["kind"] == lib.HZ_NOTICE_SUBSCRIBE and n["purpose"] == lib.HZ_PURPOSE_INITIAL:
            initial.append((n["stream"], n["start"]))  # the first poll's, checked apart
            return
        # A typed start (not HZ_START_POS) reads, for this one-origin feed, as "after the frontier".
        from_pos = n["start_pos"] if n["start"] == lib.HZ_START_POS else 0
        notices.append((n["kind"], n["stream"], n["to_stream"], n["flip_id"], n["seamless"], from_pos,
                        n["locator"]))

    def poll_all():
        total = 0
        for _ in range(1000):
            got = eng.poll(64, on_event, on_notice)
            total += got
            if got == 0:
                break
        return total

    # Every stream carries the same records at the same positions.
    records = []  # (kind, seq, payload bytes)

    def data(seq):
        records.append((lib.HZ_KIND_DATA, seq, b"seq=%d" % seq))

    def flip(action, target, flip_id, **kw):
        kw.setdefault("selector", lib.HZ_SELECTOR_ALL)
        records.append((lib.HZ_KIND_FLIP, 0, hz.encode_flip(action, target, flip_id, **kw)))

    n_seq = 3000
    for seq in range(1, n_seq + 1):
        if seq == 500:
            flip(lib.HZ_FLIP_ANNOUNCE, 1, 1)
        if seq == 1000:
            flip(lib.HZ_FLIP_SWITCH, 1, 2)
        if seq == 1500:
            flip(lib.HZ_FLIP_SWITCHBACK, 0, 3)
        if seq == 2000:  # a cohort that excludes everyone: ignored
            flip(lib.HZ_FLIP_SWITCH, 2, 4, selector=lib.HZ_SELECTOR_COHORT, basis_points=0, salt=5)
        if seq == 2500:  # cold switch to idle stream 2, with a locator
            flip(lib.HZ_FLIP_SWITCH, 2, 5, locator=b"feed-c")
        data(seq)

    # A decode round trip and a malformed record.
    buf = next(r[2] for r in records if r[0] == lib.HZ_KIND_FLIP)
    out = ffi.new("hz_flip *")
    st(lib.hz_flip_decode(buf, len(buf), out, ffi.NULL, 0), lib.HZ_ERR_INVALID, "decode without struct_size")
    check(b"struct_size" in ffi.string(lib.hz_last_error()), "last error names struct_size")
    out.struct_size = ffi.sizeof("hz_flip")
    st(lib.hz_flip_decode(buf, len(buf), out, ffi.NULL, 0), what="decode")
    check(out.action == lib.HZ_FLIP_ANNOUNCE and out.target == 1 and out.flip_id == 1, "decoded flip")
    bad = bytearray(buf)
    bad[-1] ^= 0xFF
    st(lib.hz_flip_decode(ffi.from_buffer(bad), len(bad), out, ffi.NULL, 0), lib.HZ_ERR_MALFORMED,
       "decode bad CRC")
    check(b"CRC" in ffi.string(lib.hz_last_error()), "last error names the CRC")

    # Feed: the producers push in lock-step (one record per stream per step, then a poll every
    # 50 steps). An idle stream discards (HZ_NOT_SUBSCRIBED); on SUBSCRIBE a producer
    # re-sends from from_pos (0: a typed start, from just after the last delivered position); a
    # full active ring is retried after a poll.
    cursor = [1, 1, 1]
    last_pos = [0]

    def on_subscribe_requests(start):
        for kind, stream, _, _, _, from_pos, _ in notices[start:]:
            if kind == lib.HZ_NOTICE_SUBSCRIBE:
                cursor[stream] = from_pos if from_pos else last_pos[0] + 1

    pos_of_seq = {}
    for i, (kind, seq, _) in enumerate(records, start=1):
        if kind == lib.HZ_KIND_DATA:
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
            r = prods[s].push(i, seq, payload, ts_ns=i * 1000, kind=kind)
            if r == lib.HZ_FULL:
                full += 1
                continue
            check(r in (lib.HZ_OK, lib.HZ_NOT_SUBSCRIBED), "push: %s" % r)
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
    switched = [(n[1], n[2], n[3]) for n in notices if n[0] == lib.HZ_NOTICE_SWITCHED]
    check(switched == [(0, 1, 2), (1, 0, 3), (0, 2, 5)], "SWITCHED notices: %r" % switched)
    check(not any(n[0] == lib.HZ_NOTICE_LOST for n in notices), "nothing lost")
    check(initial == [(0, lib.HZ_START_LIVE)], "the initial stream's SUBSCRIBE, live: %r" % initial)
    subs = [n for n in notices if n[0] == lib.HZ_NOTICE_SUBSCRIBE and n[1] == 2]
    check(subs and subs[0][6] == b"feed-c", "SUBSCRIBE of stream 2 carries the locator")
    check(eng.active_stream == 2, "active stream 2")
    stats = eng.stats()
    check(stats["delivered"] == n_seq and stats["lost"] == 0, "stats delivered")
    check(stats["switches_seamless"] + stats["switches_cold"] == 3, "stats switches")
    check(stats["flips_ignored"] == 1 and stats["flips_repeated"] >= 1, "stats flips")
    check(stats["api_errors"] == 1, "api_errors")
    check("gaps_filled_by_wait" in stats, "a counter appended to hz_stats is read (issue 19, defect 7)")

    # An exception in a callback is re-raised by poll, after the call.
    prods[2].push(len(records) + 1, n_seq + 1, b"seq=%d" % (n_seq + 1), kind=lib.HZ_KIND_DATA)

    def boom(stream, h, payload):
        raise KeyError("from a callback")

    try:
        eng.poll(64, boom)
        raise Failure("the callback's exception was lost")
    except KeyError:
        pass

    st(lib.hz_engine_poll(ffi.NULL, 1, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL), lib.HZ_ERR_NULL, "poll(NULL)")

    # Pull mode without a callback, and a record made in place (reserve, fill, commit).
    made = b"seq=%d" % (n_seq + 2)
    status, buf = prods[2].reserve(len(made))
    check(status == lib.HZ_OK and len(buf) == len(made), "reserve")
    buf[:] = made
    try:
        prods[2].push(len(records) + 3, n_seq + 9, b"x")
        raise Failure("a push while a reservation is open was taken")
    except hz.HarmonizerError as e:
        check(e.status == lib.HZ_ERR_STATE, "push during a reservation: HZ_ERR_STATE")
    prods[2].commit(len(records) + 2, n_seq + 2)
    items = []
    for _ in range(10):
        item = eng.next()
        if item is None:
            break
        items.append(item)
    events = [(i[1], i[2].seq, i[3]) for i in items if i[0] == "event"]
    check(events == [(2, n_seq + 2, b"seq=%d" % (n_seq + 2))], "next hands out the committed record: %r" % events)
    check(eng.next() is None, "next: nothing more")
    for p in prods:
        p.close()
    eng.close()
    lib.hz_engine_free(ffi.NULL)
    lib.hz_producer_free(ffi.NULL)
    lib.hz_config_free(ffi.NULL)

    # A staging pool shared by two engines, sized for one window (100 records of 8 + 32 + 64
    # bytes before any delivery): the first armed stages, the second is refused and says so.
    try:
        hz.Pool(0)
        raise Failure("a pool of 0 bytes was made")
    except hz.HarmonizerError as e:
        check(e.status == lib.HZ_ERR_CONFIG and "HZ_MAX_POOL_BYTES" in str(e), "Pool(0): %s" % e)
    check(lib.HZ_MAX_POOL_BYTES == 1 << 50, "HZ_MAX_POOL_BYTES")
    window = 100 * (8 + 32 + 64)
    pool = hz.Pool(window)
    check(pool.stats()["per_engine_max_bytes"] == window and pool.stats()["bid_ttl_ns"] == 100_000_000,
          "pool defaults: %r" % pool.stats())
    pooled = []
    for rid in (1, 2):
        with hz.Config(rid, 2, 1 << 16, 64) as c:
            try:
                c.set("spread", 0, 1001)
                raise Failure("spread 1001 permille accepted")
            except hz.HarmonizerError as e:
                check(e.status == lib.HZ_ERR_INVALID and "fraction_permille" in str(e), "spread: %s" % e)
            try:
                c.set("identity_records", lib.HZ_MAX_IDENTITIES + 1)
                raise Failure("an identity log above HZ_MAX_IDENTITIES accepted")
            except hz.HarmonizerError as e:
                check(e.status == lib.HZ_ERR_INVALID and "HZ_MAX_IDENTITIES" in str(e), "identities: %s" % e)
            c.set("pool", pool).set("cold_switch_cost", 100_000_000).set("spread", 0, 500)
            c.set("identity_records", 16).set("conflation", 8, 32)
            check(lib.HZ_FLAG_CONFLATABLE == 2 and lib.HZ_NOTICE_CONFLATED == 13, "conflation constants")
            pooled.append(hz.Engine(c))
    pool_a, pool_b = pooled
    check(pool_a.stats()["identity_starts"] == 0, "identity_starts in hz_stats: %r" % pool_a.stats())
    # hz_engine_metrics: the counters as a versioned JSON document, read as JSON.
    n = ffi.new("size_t *")
    st(lib.hz_engine_metrics(pool_a._h, lib.HZ_METRICS_JSON, ffi.NULL, 0, n), lib.HZ_ERR_BUFFER_TOO_SMALL, "metrics length")
    buf = ffi.new("char[]", n[0] + 1)
    st(lib.hz_engine_metrics(pool_a._h, lib.HZ_METRICS_JSON, buf, n[0] + 1, n), lib.HZ_OK, "metrics")
    doc = json.loads(ffi.string(buf).decode())
    check(doc["version"] == 1 and doc["recipient"] == 1 and doc["stats"]["delivered"] == pool_a.stats()["delivered"],
          "metrics JSON: %r" % doc)
    # Verification, probation and the dry run (issue 17, docs/verify.md) from Python.
    with hz.Config(9, 2, 1 << 16, 64) as c:
        try:
            c.set("verify", 64, 16, 9, 10)
            raise Failure("an unknown mismatch policy accepted")
        except hz.HarmonizerError as e:
            check(e.status == lib.HZ_ERR_INVALID and "HZ_MISMATCH_BLOCK_SWITCH" in str(e), "verify: %s" % e)
        c.set("verify", 64, 16, lib.HZ_MISMATCH_BLOCK_SWITCH, 10).set("probation", 10**9, 0, 0, 0, 0, 1)
        ve = hz.Engine(c)
    d = ffi.new("hz_dry_run *")
    d.struct_size = ffi.sizeof("hz_dry_run")
    st(lib.hz_engine_evaluate_switch(ve._h, lib.HZ_FLIP_SWITCH, 1, d), lib.HZ_OK, "dry run")
    check((d.to_stream, d.refusal, d.staged, d.seamless, d.stall_estimate_ns) == (1, 0, 0, 0, 100_000_000),
          "dry run of a cold switch: %r" % ((d.to_stream, d.refusal, d.staged, d.seamless),))
    vs = ve.stats()
    check(vs["verified"] == 0 and vs["rollbacks"] == 0 and "map_runs_dropped" in vs, "verification counters: %r" % vs)
    check(lib.HZ_NOTICE_MISMATCH == 14 and lib.HZ_NOTICE_PROBATION_FAILED == 16, "notice kinds")
    ve.close()
    for e in pooled:
        st(lib.hz_engine_arm(e._h, 1), lib.HZ_OK, "arm")
        e.poll(64, lambda s, h, p: None)
    da, db = pool_a.staging_demand(), pool_b.staging_demand()
    check((da["staged_streams"], da["pool_bytes"], da["urgency"]) == (1, window, 1e8), "A stages: %r" % da)
    check((db["staged_streams"], db["refused_streams"], db["pool_bytes"]) == (0, 1, 0), "B refused: %r" % db)
    ps = pool.stats()
    check(ps["used_bytes"] == window <= ps["capacity_bytes"] and ps["refusals"] >= 1, "pool: %r" % ps)
    pool.close()  # the engines keep the pool
    with hz.Config(3, 2, 1 << 16, 64) as c:
        try:
            c.set("pool", pool)
            raise Failure("a closed pool was passed as no pool")
        except ValueError as e:
            check("closed" in str(e), "closed pool: %s" % e)
    pool_a.close()
    pool_b.poll(64, lambda s, h, p: None)
    check(pool_b.staging_demand()["pool_bytes"] == window, "B takes what A gave back")
    pool_b.close()

    readme = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "README.md")
    run_readme_example(readme)
    print("test_python: all checks passed (%d events, %d switches, %d duplicates dropped, %d full; README example)"
          % (stats["delivered"], len(switched), stats["duplicates_dropped"], full))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print("test_python: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
