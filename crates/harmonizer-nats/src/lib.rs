//! # harmonizer-nats
//!
//! NATS JetStream as a harmonizer upstream: one JetStream stream per engine stream, read by an
//! ordered pull consumer (`async-nats`) that each reader keeps for as long as it reads on from
//! where it is, and replaces only when told to start somewhere else.
//!
//! # Positions
//!
//! The position is the JetStream stream sequence: dense, 64-bit, from 1, so every message has
//! one and no mapping can fail. A stream whose limits (`max_msgs`, `max_age`, ...) or a purge
//! removed old messages has a first sequence above 1: a start below it is reported as trimmed,
//! and reading goes on from the first message left.
//!
//! # Messages
//!
//! The event's values are message headers in the [`Layout`] (default [`Layout::headers`]:
//! `Hz-Seq`, `Hz-Origin`, `Hz-Ts`, `Hz-Kind`, `Hz-Flags`); the payload is the message body.
//! Writing: [`NatsPublisher`].
//!
//! # Threads
//!
//! The connector owns one small Tokio runtime (one worker thread) shared by its readers and
//! publishers: each reader thread blocks on its own calls, with its own client connection.

#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use harmonizer_connect::upstream::{
    describe_name, name_of, Reader, Seeked, Skipped, Start, Upstream, UpstreamError,
};
use harmonizer_connect::{Entry, Layout};
use harmonizer_core::event::EventHeader;
use tokio::runtime::Runtime;

fn conn<E: std::fmt::Display>(e: E) -> UpstreamError {
    UpstreamError::Connection(e.to_string())
}

fn runtime() -> Result<Arc<Runtime>, UpstreamError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hz-nats")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| UpstreamError::Refused(format!("cannot start the NATS runtime: {e}")))
}

async fn connect(url: &str) -> Result<jetstream::Context, UpstreamError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(conn)?;
    Ok(jetstream::new(client))
}

/// A NATS server and the JetStream streams that are the engine's streams (`streams[i]` is
/// stream `i`).
pub struct NatsUpstream {
    url: String,
    streams: Vec<String>,
    layout: Layout,
    rt: Arc<Runtime>,
}

impl NatsUpstream {
    /// An upstream on the server at `url` (`nats://host:port`), stream `i` read from the
    /// JetStream stream named `streams[i]`, headers in [`Layout::headers`].
    pub fn new(url: &str, streams: Vec<String>) -> Result<NatsUpstream, UpstreamError> {
        Ok(NatsUpstream { url: url.to_string(), streams, layout: Layout::headers(), rt: runtime()? })
    }

    /// Reads headers in `layout` instead.
    pub fn with_layout(mut self, layout: Layout) -> NatsUpstream {
        self.layout = layout;
        self
    }
}

impl Upstream for NatsUpstream {
    type Reader = NatsReader;

    fn describe(&self, stream: u32) -> String {
        describe_name(&self.streams, stream, "JetStream stream")
    }

    fn open(&self, stream: u32) -> Result<NatsReader, UpstreamError> {
        let name = name_of(&self.streams, stream, "JetStream stream")?.to_string();
        let js_stream = self.rt.block_on(async {
            let js = connect(&self.url).await?;
            js.get_stream(&name).await.map_err(|e| UpstreamError::Refused(format!("stream {name}: {e}")))
        })?;
        Ok(NatsReader {
            rt: Arc::clone(&self.rt),
            stream: js_stream,
            layout: self.layout.clone(),
            messages: None,
            next: 1,
            last: None,
            consumers_made: 0,
        })
    }
}

/// A reader of one JetStream stream.
pub struct NatsReader {
    rt: Arc<Runtime>,
    stream: stream::Stream,
    layout: Layout,
    /// The ordered consumer's messages, from `next` on.
    messages: Option<consumer::pull::Ordered>,
    /// The sequence the next message read will have (at least).
    next: u64,
    last: Option<u64>,
    consumers_made: u64,
}

impl NatsReader {
    /// Ordered consumers this reader has made (one per start that is not where it already is).
    pub fn consumers_made(&self) -> u64 {
        self.consumers_made
    }

    /// The first and last sequence of the stream, and whether it holds messages.
    async fn bounds(&mut self) -> Result<(u64, u64), UpstreamError> {
        let info = self.stream.info().await.map_err(conn)?;
        Ok((info.state.first_sequence, info.state.last_sequence))
    }

    /// The sequence and seq of the first message of `origin` at or after `seq_no`, looking
    /// ahead a bounded number of sequences (deleted ones are skipped).
    async fn probe(&self, from: u64, last: u64, origin: u32) -> Result<Option<(u64, u64)>, UpstreamError> {
        let mut s = from;
        let mut looked = 0;
        while s <= last && looked < 512 {
            match self.stream.get_raw_message(s).await {
                Ok(m) => {
                    if let Ok(e) = self.layout.decode(s, header_pairs(&m.headers)) {
                        if e.header.origin == origin {
                            return Ok(Some((s, e.header.seq)));
                        }
                    }
                }
                // A deleted or purged sequence: look at the next.
                Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {}
                Err(e) => return Err(conn(e)),
            }
            s += 1;
            looked += 1;
        }
        Ok(None)
    }

    /// The first message of `origin` with a seq above `seq`, by bisection over sequences.
    async fn find_after(
        &self,
        origin: u32,
        seq: u64,
        first: u64,
        last: u64,
    ) -> Result<Option<(u64, u64)>, UpstreamError> {
        if last < first {
            return Ok(None);
        }
        let (mut lo, mut hi) = (first, last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.probe(mid, last, origin).await? {
                Some((_, s)) if s <= seq => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(self.probe(lo, last, origin).await?.filter(|&(_, s)| s > seq))
    }

    async fn seek_async(&mut self, start: &Start) -> Result<Seeked, UpstreamError> {
        let (first, last) = self.bounds().await?;
        let live = last + 1;
        // Sequences are dense: one below the first left existed and was removed.
        let removed_before = |p: u64| p < first && first > 1;
        let seeked = match start {
            Start::Pos(p) => {
                let p = (*p).max(1);
                if p > 1 && last < p - 1 {
                    // Sequences restart at 1 in a stream deleted and made again: reading on from
                    // here would wait for ever. Refused, so the driver reports it.
                    return Err(UpstreamError::Refused(format!(
                        "stream {} went backwards: its last sequence is {last}, below the {} already read (deleted and made again?)",
                        self.stream.cached_info().config.name,
                        p - 1
                    )));
                }
                if removed_before(p) {
                    Seeked { pos: first, trimmed: true }
                } else {
                    Seeked { pos: p, trimmed: false }
                }
            }
            Start::Live => Seeked { pos: live, trimmed: false },
            Start::AfterSeq { origin, seq } => match self.find_after(*origin, *seq, first, last).await? {
                Some((pos, found)) => Seeked { pos, trimmed: pos == first && first > 1 && found > seq + 1 },
                None => Seeked { pos: live, trimmed: false },
            },
            Start::AfterFrontier(frontier) if frontier.is_empty() => {
                Seeked { pos: first.min(live), trimmed: first > 1 }
            }
            Start::AfterFrontier(frontier) => {
                let mut best = Seeked { pos: live, trimmed: false };
                for &(origin, seq) in frontier {
                    if let Some((pos, found)) = self.find_after(origin, seq, first, last).await? {
                        if pos < best.pos {
                            best = Seeked { pos, trimmed: pos == first && first > 1 && found > seq + 1 };
                        }
                    }
                }
                best
            }
        };
        // The consumer is kept when it reads on from exactly there; replaced otherwise.
        if self.messages.is_none() || self.next != seeked.pos {
            self.messages = None;
            let config = consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: seeked.pos },
                ..Default::default()
            };
            let c = self.stream.create_consumer(config).await.map_err(conn)?;
            self.messages = Some(c.messages().await.map_err(conn)?);
            self.consumers_made += 1;
        }
        self.next = seeked.pos;
        self.last = None;
        Ok(seeked)
    }

    async fn read_async(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Entry>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<(), UpstreamError> {
        let Some(messages) = self.messages.as_mut() else {
            return Err(UpstreamError::Refused("read before a seek".into()));
        };
        let mut wait = timeout;
        for _ in 0..max.max(1) {
            // The first message waits up to the timeout; the rest only if already there.
            let next = match tokio::time::timeout(wait, messages.next()).await {
                Err(_) => break,
                Ok(None) => return Err(UpstreamError::Connection("the consumer ended".into())),
                Ok(Some(Err(e))) => return Err(conn(e)),
                Ok(Some(Ok(m))) => m,
            };
            wait = Duration::ZERO;
            let pos = match next.info() {
                Ok(i) => i.stream_sequence,
                Err(e) => return Err(conn(e)),
            };
            if let Some(prev) = self.last.filter(|&prev| pos <= prev) {
                skipped.push(Skipped::NotMonotonic { prev, pos });
                continue;
            }
            self.last = Some(pos);
            self.next = pos + 1;
            let empty = HeaderMap::new();
            let headers = next.message.headers.as_ref().unwrap_or(&empty);
            match self.layout.decode(pos, header_pairs(headers)) {
                Ok(mut e) => {
                    e.payload = next.message.payload.to_vec();
                    out.push(e);
                }
                Err(why) => skipped.push(Skipped::Malformed { pos, why: why.to_string() }),
            }
        }
        Ok(())
    }
}

/// A message's headers as name-value pairs (a header with several values gives several pairs,
/// which the layout refuses as repeated).
fn header_pairs(h: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    h.iter().flat_map(|(name, values)| {
        let name: &str = name.as_ref();
        values.iter().map(move |v| (name.as_bytes(), v.as_str().as_bytes()))
    })
}

impl Drop for NatsReader {
    /// The consumer's subscription unsubscribes on drop by spawning a task: drop it inside the
    /// runtime (a reader thread is not in it).
    fn drop(&mut self) {
        let _in_runtime = self.rt.enter();
        self.messages = None;
    }
}

impl Reader for NatsReader {
    fn seek(&mut self, start: &Start) -> Result<Seeked, UpstreamError> {
        let rt = Arc::clone(&self.rt);
        rt.block_on(self.seek_async(start))
    }

    fn read(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Entry>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<(), UpstreamError> {
        let rt = Arc::clone(&self.rt);
        rt.block_on(self.read_async(max, timeout, out, skipped))
    }
}

/// Writes events as JetStream messages in a [`Layout`]: for tests, the CLI's publisher, and
/// applications that produce into NATS for harmonizer to read.
pub struct NatsPublisher {
    js: jetstream::Context,
    layout: Layout,
    rt: Arc<Runtime>,
}

impl NatsPublisher {
    /// A publisher on the server at `url`, headers in [`Layout::headers`].
    pub fn new(url: &str) -> Result<NatsPublisher, UpstreamError> {
        let rt = runtime()?;
        let js = rt.block_on(connect(url))?;
        Ok(NatsPublisher { js, layout: Layout::headers(), rt })
    }

    /// Writes headers in `layout` instead.
    pub fn with_layout(mut self, layout: Layout) -> NatsPublisher {
        self.layout = layout;
        self
    }

    /// Makes a file-backed stream `name` on the subject `name`, if there is none.
    pub fn ensure_stream(&self, name: &str) -> Result<(), UpstreamError> {
        self.rt.block_on(async {
            let config = stream::Config {
                name: name.to_string(),
                subjects: vec![name.to_string()],
                storage: stream::StorageType::File,
                ..Default::default()
            };
            self.js.get_or_create_stream(config).await.map(|_| ()).map_err(conn)
        })
    }

    /// Publishes one event on `subject` and waits for JetStream's acknowledgement, returning the
    /// message's stream sequence (its position). `header.pos` is ignored.
    pub fn publish(&self, subject: &str, header: &EventHeader, payload: &[u8]) -> Result<u64, UpstreamError> {
        let mut headers = HeaderMap::new();
        for (k, v) in self.layout.encode(header, &[]) {
            let v = String::from_utf8(v).map_err(|e| UpstreamError::Refused(e.to_string()))?;
            headers.insert(k.as_str(), v.as_str());
        }
        let payload = bytes::Bytes::copy_from_slice(payload);
        self.rt.block_on(async {
            let ack =
                self.js.publish_with_headers(subject.to_string(), headers, payload).await.map_err(conn)?;
            ack.await.map(|a| a.sequence).map_err(conn)
        })
    }

    /// Publishes events on `subject`, all sent before the first acknowledgement is awaited,
    /// returning their stream sequences in order.
    pub fn publish_batch(
        &self,
        subject: &str,
        events: &[(EventHeader, Vec<u8>)],
    ) -> Result<Vec<u64>, UpstreamError> {
        let mut prepared = Vec::with_capacity(events.len());
        for (header, payload) in events {
            let mut headers = HeaderMap::new();
            for (k, v) in self.layout.encode(header, &[]) {
                let v = String::from_utf8(v).map_err(|e| UpstreamError::Refused(e.to_string()))?;
                headers.insert(k.as_str(), v.as_str());
            }
            prepared.push((headers, bytes::Bytes::copy_from_slice(payload)));
        }
        self.rt.block_on(async {
            let mut acks = Vec::with_capacity(prepared.len());
            for (headers, payload) in prepared {
                acks.push(
                    self.js
                        .publish_with_headers(subject.to_string(), headers, payload)
                        .await
                        .map_err(conn)?,
                );
            }
            let mut out = Vec::with_capacity(acks.len());
            for ack in acks {
                out.push(ack.await.map(|a| a.sequence).map_err(conn)?);
            }
            Ok(out)
        })
    }

    /// Removes the messages of stream `name` below sequence `seq` (a purge, as limits would).
    pub fn purge_below(&self, name: &str, seq: u64) -> Result<(), UpstreamError> {
        self.rt.block_on(async {
            let s = self.js.get_stream(name).await.map_err(conn)?;
            s.purge().sequence(seq).await.map(|_| ()).map_err(conn)
        })
    }

    /// The seq (`Hz-Seq`) of the last message of stream `name`, if any.
    pub fn last_seq(&self, name: &str) -> Result<Option<u64>, UpstreamError> {
        self.rt.block_on(async {
            let mut s = self.js.get_stream(name).await.map_err(conn)?;
            let last = s.info().await.map_err(conn)?.state.last_sequence;
            if last == 0 {
                return Ok(None);
            }
            let m = s.get_raw_message(last).await.map_err(conn)?;
            Ok(self.layout.decode(last, header_pairs(&m.headers)).ok().map(|e| e.header.seq))
        })
    }
}
