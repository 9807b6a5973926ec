//! File-backed streams: attaching a stream to a ring file, and watching the file (its length,
//! its producer's liveness) at the start of a poll. Design notes: `docs/shm.md`.

use std::path::Path;
use std::sync::Arc;

use super::{Engine, FileOptions, FileWatch, Handler, Notice, StreamStorage};
use crate::ring::Role;
use crate::shm::{ProducerStatus, ShmError};

impl Engine {
    /// Moves `stream` onto the ring file at `path`, created or re-attached per `options.mode`,
    /// for a producer in another process ([`StreamProducer::open_file`]). The file's ring takes
    /// the stream's current role, capacity and window; the stream's in-process ring is kept
    /// aside, idle (its `StreamProducer`, if still used, gets `NotSubscribed`), and comes back
    /// if the file is truncated (`Notice::RingFileTruncated`).
    ///
    /// **Resume** (a restarted engine): reading goes on from the file's last released
    /// position; records the previous engine had read but not released come again. Restore the
    /// tracker from your checkpoint first ([`Tracker::resume_at`]) and they are dropped as
    /// duplicates (`docs/shm.md`, consumer restart).
    ///
    /// Errors ([`ShmError`]): unknown stream; I/O; `Exists` (mode `Create`); a header this build
    /// does not accept; a file made for another capacity, `max_payload` or stream; another
    /// live engine attached to it (`ConsumerBusy`). On error the stream is unchanged.
    ///
    /// [`StreamProducer::open_file`]: super::StreamProducer::open_file
    /// [`Tracker::resume_at`]: crate::tracker::Tracker::resume_at
    pub fn attach_file(&mut self, stream: u32, path: &Path, options: FileOptions) -> Result<(), ShmError> {
        let i = self.index_of(stream).ok_or(ShmError::UnknownStream(stream))?;
        let config = self.ring_config(i);
        let rf = Arc::new(crate::shm::open_for_engine(path, options.mode, config, stream)?);
        let mut consumer =
            crate::ring::resume_consumer(StreamStorage::file(Arc::clone(&rf)), rf.max_payload());
        // The engine's view of the stream wins over what the file last held. (Going idle
        // discards the file's records: nobody wants them.)
        consumer.set_role(config.role);
        consumer.set_window(config.window);
        let s = &mut self.streams[i];
        let mut replaced = core::mem::replace(&mut s.consumer, consumer);
        if let Some(store) = s.conflation.as_deref_mut() {
            store.forget(); // its cursor is a position on the ring just replaced
        }
        // Records lent from it in the last call stay valid: it is kept, not freed. Idle, its
        // producer's pushes are discarded (`NotSubscribed`).
        replaced.set_role(Role::Idle);
        if s.file.is_none() {
            self.file_streams += 1;
        }
        let fallback = match s.file.take() {
            // Re-attached while on a file: keep the original in-process ring as the fallback.
            Some(old) => {
                // Keep the ring that was active at the last poll: records may be lent from it.
                // A ring attached since then and replaced again was never polled: it drops.
                if s.retired.is_none() {
                    s.retired = Some(replaced);
                    self.retired_pending = true;
                }
                old.fallback
            }
            None => replaced,
        };
        s.file = Some(FileWatch {
            file: rf,
            fallback,
            interval_ns: options.check_interval_ns,
            last_check_ns: None,
            reported_gone: 0,
        });
        Ok(())
    }

    /// The producer side of a file-backed stream, as the engine sees it now (asks the kernel).
    /// `None` for an in-process stream or an unknown one.
    pub fn producer_status(&self, stream: u32) -> Option<Result<ProducerStatus, ShmError>> {
        let s = &self.streams[self.index_of(stream)?];
        Some(s.file.as_ref()?.file.producer_status())
    }

    /// At the start of a poll: a file-backed stream whose ring was found corrupt in the last
    /// call is detached at once; every other one whose check is due gets one `fstat`
    /// (truncated? then back to the in-process ring) and one lock probe (producer gone?).
    pub(super) fn watch_files<H: Handler>(&mut self, h: &mut H) {
        let now = self.now_ns;
        self.retired_pending = false;
        for i in 0..self.streams.len() {
            let s = &mut self.streams[i];
            // Anything retired in an earlier call is no longer lent out: free it now.
            s.retired = None;
            let Some(w) = s.file.as_mut() else { continue };
            // A fault, or a truncation the SIGBUS guard caught, is looked into at once.
            let corrupt = s.consumer.corruption();
            let urgent = corrupt.is_some() || w.file.truncation_seen();
            if !urgent && w.last_check_ns.is_some_and(|t| now.saturating_sub(t) < w.interval_ns) {
                continue;
            }
            w.last_check_ns = Some(now);
            let needed = w.file.needed_len();
            // A fault on a file that shrank is the shrinking's doing: report that.
            let len = w.file.len_now().ok();
            if let Some(len) = len.filter(|&len| len < needed) {
                // Its pages may be gone: the mapping is touched only if the SIGBUS guard covers
                // it, to set the ring idle for a producer that still has the file's first page.
                let guarded = w.file.is_guarded();
                self.detach_file(i, guarded);
                let id = self.streams[i].id;
                h.notice(&Notice::RingFileTruncated { stream: id, len, needed });
                continue;
            }
            if let Some((offset, what)) = corrupt {
                self.detach_file(i, true);
                self.stats.rings_corrupt += 1;
                let id = self.streams[i].id;
                h.notice(&Notice::RingCorrupt { stream: id, offset, what });
                continue;
            }
            let gone = match w.file.producer_status() {
                Ok(ProducerStatus::Dead { generation, pid }) => Some((generation, pid, true)),
                Ok(ProducerStatus::Closed { generation, pid }) => Some((generation, pid, false)),
                _ => None,
            };
            if let Some((generation, pid, crashed)) = gone {
                if generation != w.reported_gone {
                    w.reported_gone = generation;
                    h.notice(&Notice::ProducerGone { stream: s.id, generation, pid, crashed });
                }
            }
        }
    }

    /// Stops reading stream `i`'s ring file and puts the stream back on its in-process ring,
    /// empty, in the same role. With `idle_file`, the file's ring is first set idle, so an
    /// honest producer on it is told `NotSubscribed` rather than filling a ring nobody reads
    /// (not for a truncated file without the SIGBUS guard: its pages may be gone).
    fn detach_file(&mut self, i: usize, idle_file: bool) {
        let window = self.default_window;
        let s = &mut self.streams[i];
        let Some(w) = s.file.take() else { return };
        let role = s.consumer.role();
        if idle_file {
            s.consumer.set_role(Role::Idle);
        }
        let mut heap = w.fallback;
        // Empty it: whatever it held before the attach is long stale.
        heap.set_role(Role::Idle);
        heap.set_role(role);
        heap.set_window(window);
        // The file's ring is not read again; it is freed at the next poll, since records of
        // this call's predecessor may still be lent from it.
        s.retired = Some(core::mem::replace(&mut s.consumer, heap));
        if let Some(store) = s.conflation.as_deref_mut() {
            store.forget(); // its cursor is a position on the file's ring
        }
        self.retired_pending = true;
        s.retained_bytes = 0;
        self.file_streams -= 1;
    }
}
