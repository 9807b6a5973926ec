"""Python bindings for libharmonizer: receiver-side stream switching.

The bindings are the C header itself: cffi reads ``harmonizer.h`` (the one the library's
``build.rs`` generates, copied into this package when it is built) in ABI mode, so every
``hz_*`` function, struct and ``HZ_*`` constant is available as ``harmonizer.lib`` and
``harmonizer.ffi`` with no hand-written mirror to drift. A few classes on top make the common
path Pythonic: :class:`Config`, :class:`Engine`, :class:`Producer`, :class:`Pool`,
:func:`encode_flip` and :class:`HarmonizerError`.

The shared library is found through ``HARMONIZER_LIB`` (a path), else the system's search
(``ctypes.util.find_library("harmonizer")``). The header is the package's copy, or
``HARMONIZER_HEADER`` when set. Import fails with a clear message when either is missing or
when their versions differ.

Threads: as in C, an engine is used by one thread at a time, and so is each producer.
Callbacks run on the polling thread during ``poll``; an exception raised in one is re-raised by
``poll`` after the call returns (it cannot cross the C boundary).
"""

import ctypes.util
import os
import re

import cffi

__all__ = ["ffi", "lib", "Config", "Engine", "Producer", "Pool", "HarmonizerError", "encode_flip"]


def _header_path():
    env = os.environ.get("HARMONIZER_HEADER")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        os.path.join(here, "harmonizer.h"),  # installed
        os.path.join(here, "..", "..", "include", "harmonizer.h"),  # the source tree
    ):
        if os.path.exists(candidate):
            return candidate
    raise ImportError("harmonizer: harmonizer.h not found (set HARMONIZER_HEADER)")


def _declarations(text):
    """The header as cffi's cdef takes it: no preprocessor lines but integer constants, no
    ``extern "C"`` wrapper. Comments are cffi's to strip."""
    out = []
    continued = False
    for line in text.splitlines():
        s = line.strip()
        if continued:  # the rest of a multi-line macro (HZ_HAS_FIELD)
            continued = s.endswith("\\")
            continue
        if s.startswith("#"):
            continued = s.endswith("\\")
            m = re.match(r"#define\s+(HZ_\w+)\s+(-?\d+)\s*$", s)
            if m:
                out.append("#define %s %s" % (m.group(1), m.group(2)))
            continue
        if s.startswith('extern "C"') or s.startswith("}  // extern"):
            continue
        out.append(line)
    return "\n".join(out)


def _library_path():
    path = os.environ.get("HARMONIZER_LIB") or ctypes.util.find_library("harmonizer")
    if not path:
        raise ImportError("harmonizer: libharmonizer not found (set HARMONIZER_LIB to its path)")
    return path


ffi = cffi.FFI()
with open(_header_path()) as _f:
    ffi.cdef(_declarations(_f.read()))
lib = ffi.dlopen(_library_path())

_header_version = lib.HZ_VERSION_MAJOR * 10000 + lib.HZ_VERSION_MINOR * 100 + lib.HZ_VERSION_PATCH
if lib.hz_version_number() != _header_version:
    raise ImportError(
        "harmonizer: the library is %s but the header is %d.%d.%d"
        % (ffi.string(lib.hz_version()).decode(), lib.HZ_VERSION_MAJOR, lib.HZ_VERSION_MINOR, lib.HZ_VERSION_PATCH)
    )

__version__ = ffi.string(lib.hz_version()).decode()


def _sized(ctype):
    """A new zeroed size-tagged struct (``"hz_stats *"``...) with ``struct_size`` set."""
    p = ffi.new(ctype)
    p.struct_size = ffi.sizeof(ctype[:-1].strip())
    return p


class HarmonizerError(Exception):
    """A call failed: ``status`` is the ``HZ_ERR_*`` value, the message the library's."""

    def __init__(self, status, message):
        self.status = status
        name = ffi.string(lib.hz_status_str(status)).decode()
        super().__init__("%s: %s" % (name, message) if message else name)


def _check(status, last_error, informational=False):
    """Returns ``HZ_OK``, and (when ``informational``) the results below ``HZ_ERR_FIRST`` that
    say what happened rather than a failure; raises :class:`HarmonizerError` for the rest."""
    if status == lib.HZ_OK or (informational and status < lib.HZ_ERR_FIRST):
        return status
    text = last_error()
    raise HarmonizerError(status, ffi.string(text).decode() if text != ffi.NULL else "")


def _struct_dict(p, ctype):
    """A size-tagged struct's fields as a dict, ``struct_size`` left out."""
    return {name: getattr(p, name) for name, _ in ffi.typeof(ctype).fields if name != "struct_size"}


class Pool:
    """``hz_pool``: one staging budget shared by the engines whose configurations are given it
    (``cfg.set("pool", pool)``; docs/staging.md). Engines built with it keep it alive after
    ``close``. ``per_engine_max_bytes`` 0 is the capacity, ``bid_ttl_ns`` 0 is 100 ms."""

    def __init__(self, capacity_bytes, per_engine_max_bytes=0, bid_ttl_ns=0):
        out = ffi.new("hz_pool **")
        _check(lib.hz_pool_new(capacity_bytes, per_engine_max_bytes, bid_ttl_ns, out), lib.hz_last_error)
        self._h = out[0]

    def stats(self):
        """``hz_pool_counters`` as a dict."""
        out = _sized("hz_pool_counters *")
        _check(lib.hz_pool_stats(self._h, out), lambda: lib.hz_pool_last_error(self._h))
        return _struct_dict(out, "hz_pool_counters")

    def close(self):
        lib.hz_pool_free(self._h)
        self._h = ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Config:
    """``hz_config``: what an engine is built from. ``set(name, *args)`` calls
    ``hz_config_set_<name>`` (e.g. ``cfg.set("policy", lib.HZ_POLICY_ALWAYS)``); a :class:`Pool`
    passes as its handle (``cfg.set("pool", pool)``, ``None`` for no pool)."""

    def __init__(self, recipient_id, streams, capacity_bytes, max_payload):
        out = ffi.new("hz_config **")
        _check(lib.hz_config_new(recipient_id, streams, capacity_bytes, max_payload, out), lib.hz_last_error)
        self._h = out[0]

    def set(self, name, *args):
        fn = getattr(lib, "hz_config_set_" + name)
        if any(isinstance(a, Pool) and a._h == ffi.NULL for a in args):
            # A closed pool's handle is NULL, which the C call reads as "no pool": say so
            # instead of silently leaving the engines without one.
            raise ValueError("hz_config_set_%s: the pool is closed" % name)
        args = [a._h if isinstance(a, Pool) else ffi.NULL if a is None else a for a in args]
        _check(fn(self._h, *args), lambda: lib.hz_config_last_error(self._h))
        return self

    def close(self):
        lib.hz_config_free(self._h)
        self._h = ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Producer:
    """``hz_producer``: feeds one stream."""

    def __init__(self, handle):
        self._h = handle
        self._header = ffi.new("hz_event_header *")

    @property
    def stream(self):
        return lib.hz_producer_stream(self._h)

    def push(self, pos, seq, payload=b"", ts_ns=0, origin=0, kind=None, flags=0):
        """Pushes one event. Returns ``HZ_OK``, or an informational status: ``HZ_FULL``
        (backpressure: poll, then push again), ``HZ_NOT_SUBSCRIBED`` (the stream is idle;
        discarded) or ``HZ_SHED`` (a staged ring shed it). Raises on errors."""
        h = self._header
        h.pos, h.seq, h.ts_ns, h.origin = pos, seq, ts_ns, origin
        h.kind = lib.HZ_KIND_DATA if kind is None else kind
        h.flags = flags
        status = lib.hz_producer_push(self._h, h, ffi.from_buffer(payload), len(payload))
        return _check(status, lambda: lib.hz_producer_last_error(self._h), informational=True)

    def reserve(self, length):
        """Zero-copy produce (``hz_producer_reserve``): returns ``(HZ_OK, buffer)`` with a
        writable buffer of ``length`` bytes in the ring, to fill (``buffer[:] = ...``) and then
        :meth:`commit` (or :meth:`cancel`); or ``(status, None)`` for an informational status
        (``HZ_FULL``...), nothing reserved. No other write on this producer until then."""
        out = ffi.new("uint8_t **")
        status = _check(
            lib.hz_producer_reserve(self._h, length, out), lambda: lib.hz_producer_last_error(self._h), informational=True
        )
        if status != lib.HZ_OK:
            return status, None
        return status, (ffi.buffer(out[0], length) if length else bytearray())

    def commit(self, pos, seq, ts_ns=0, origin=0, kind=None, flags=0):
        """Publishes the reserved record with this header."""
        h = self._header
        h.pos, h.seq, h.ts_ns, h.origin = pos, seq, ts_ns, origin
        h.kind = lib.HZ_KIND_DATA if kind is None else kind
        h.flags = flags
        _check(lib.hz_producer_commit(self._h, h), lambda: lib.hz_producer_last_error(self._h))

    def cancel(self):
        """Drops the reserved record: nothing is published."""
        _check(lib.hz_producer_cancel(self._h), lambda: lib.hz_producer_last_error(self._h))

    def close(self):
        lib.hz_producer_free(self._h)
        self._h = ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _notice_dict(n):
    skip = ("locator", "struct_size")
    d = {name: getattr(n, name) for name, _ in ffi.typeof("hz_notice").fields if name not in skip}
    d["locator"] = bytes(ffi.buffer(n.locator, n.locator_len)) if n.locator_len else b""
    return d


class Engine:
    """``hz_engine``: built from a :class:`Config` (which may be closed afterwards)."""

    def __init__(self, config):
        out = ffi.new("hz_engine **")
        _check(lib.hz_engine_new(config._h, out), lambda: lib.hz_config_last_error(config._h))
        self._h = out[0]
        self._pull = (_sized("hz_event_view *"), _sized("hz_notice *"))

    def _last_error(self):
        return lib.hz_engine_last_error(self._h)

    def take_producer(self, stream):
        out = ffi.new("hz_producer **")
        _check(lib.hz_engine_take_producer(self._h, stream, out), self._last_error)
        return Producer(out[0])

    def poll(self, max_events, on_event, on_notice=None):
        """Delivers up to ``max_events``: ``on_event(stream, header, payload)`` per event
        (``header`` a cffi ``hz_event_header``, ``payload`` bytes) and ``on_notice(notice)``
        per notice (a dict of ``hz_notice``'s fields, ``locator`` as bytes). Returns how many
        events were delivered."""
        raised = []

        def keep(exc_type, exc, tb):
            raised.append(exc)

        @ffi.callback("hz_event_fn", onerror=keep)
        def event_cb(user, stream, header, payload, length):
            on_event(stream, header, bytes(ffi.buffer(payload, length)))

        @ffi.callback("hz_notice_fn", onerror=keep)
        def notice_cb(user, notice):
            if on_notice is not None:
                on_notice(_notice_dict(notice))

        got = ffi.new("size_t *")
        _check(lib.hz_engine_poll(self._h, max_events, event_cb, notice_cb, ffi.NULL, got), self._last_error)
        if raised:
            raise raised[0]
        return got[0]

    def next(self):
        """Pulls the next item, in order, without a callback (``hz_engine_next``):
        ``("event", stream, header, payload)`` (``header`` a copy, ``payload`` bytes),
        ``("notice", notice)`` (a dict, as ``poll`` gives), or ``None`` when nothing is there."""
        view, notice = self._pull
        status = _check(lib.hz_engine_next(self._h, view, notice), self._last_error, informational=True)
        if status == lib.HZ_OK:
            header = ffi.new("hz_event_header *", view.header[0])
            return ("event", view.stream, header, bytes(ffi.buffer(view.payload, view.payload_len)))
        if status == lib.HZ_GOT_NOTICE:
            return ("notice", _notice_dict(notice))
        return None

    def wait(self, timeout_ns):
        """Sleeps until the active stream's producer publishes or ``timeout_ns`` passes; True
        when the next ``poll`` has work."""
        ready = ffi.new("uint32_t *")
        _check(lib.hz_engine_wait(self._h, timeout_ns, ready), self._last_error)
        return bool(ready[0])

    @property
    def active_stream(self):
        out = ffi.new("uint32_t *")
        _check(lib.hz_engine_active_stream(self._h, out), self._last_error)
        return out[0]

    def stats(self):
        """``hz_stats`` as a dict."""
        out = _sized("hz_stats *")
        _check(lib.hz_engine_stats(self._h, out), self._last_error)
        return _struct_dict(out, "hz_stats")

    def staging_demand(self):
        """``hz_staging_demand`` as a dict: what the engine wants staged and holds, as of its
        last poll."""
        out = _sized("hz_staging_demand *")
        _check(lib.hz_engine_staging_demand(self._h, out), self._last_error)
        return _struct_dict(out, "hz_staging_demand")

    def close(self):
        lib.hz_engine_free(self._h)
        self._h = ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def encode_flip(action, target, flip_id, locator=b"", ids=(), **fields):
    """A flip record's bytes (``hz_flip_encode``): ``action`` an ``HZ_FLIP_*``, the other
    ``hz_flip`` fields by name (``selector``, ``basis_points``, ``salt``, ``cutover_pos``...)."""
    f = _sized("hz_flip *")
    f.action, f.target, f.flip_id = action, target, flip_id
    for name, value in fields.items():
        setattr(f, name, value)
    keep = []
    if locator:
        keep.append(ffi.from_buffer(locator))
        f.locator, f.locator_len = keep[-1], len(locator)
    if ids:
        keep.append(ffi.new("uint64_t[]", list(ids)))
        f.ids, f.ids_len = keep[-1], len(ids)
    n = ffi.new("size_t *")
    _check(lib.hz_flip_encoded_len(f, n), lib.hz_last_error)
    buf = ffi.new("uint8_t[]", n[0])
    _check(lib.hz_flip_encode(f, buf, n[0], n), lib.hz_last_error)
    return bytes(ffi.buffer(buf, n[0]))
