//! The audit record (issue 17, docs/verify.md, "The audit record"): one structured record per
//! switch, built from its `Switched` notice, as a JSON line. The notice is the callback: a
//! handler that keeps an audit trail formats each `Switched` it receives
//! ([`SwitchRecord::from_notice`], [`SwitchRecord::write_json`]); C:
//! `hz_switch_record_json` on a `HZ_NOTICE_SWITCHED` notice.

use core::fmt;

use super::verify::PositionPair;
use super::{Notice, SwitchCause};

/// The JSON line's version: a reader checks it; fields are only ever added.
pub const SWITCH_RECORD_VERSION: u32 = 1;

/// One switch, as the audit trail keeps it: the fields of its `Switched` notice and the
/// recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchRecord {
    /// The recipient.
    pub recipient: u64,
    /// The stream left.
    pub from: u32,
    /// The stream delivering now.
    pub to: u32,
    /// The flip that made it (0 for a failover or a rollback).
    pub flip_id: u64,
    /// What made it.
    pub cause: SwitchCause,
    /// No fetch or re-read was needed.
    pub seamless: bool,
    /// Clock ns from the cut-over until delivery was contiguous again.
    pub stall_ns: u64,
    /// The engine's own cost of the switch, clock ns.
    pub switch_ns: u64,
    /// Events of the overlap verified.
    pub verified: u64,
    /// Events of the overlap whose copies differed.
    pub mismatched: u64,
    /// The cut-over pair: the last event verified before the switch.
    pub matched: Option<PositionPair>,
    /// Position of the last record consumed from `from`.
    pub cut_pos: u64,
    /// Position on `to` of the first event it delivered in order (0: unknown).
    pub first_pos: u64,
}

impl SwitchRecord {
    /// The record of a `Switched` notice; `None` for any other notice.
    pub fn from_notice(recipient: u64, n: &Notice<'_>) -> Option<SwitchRecord> {
        match *n {
            Notice::Switched {
                from,
                to,
                flip_id,
                cause,
                seamless,
                stall_ns,
                switch_ns,
                verified,
                mismatched,
                matched,
                cut_pos,
                first_pos,
            } => Some(SwitchRecord {
                recipient,
                from,
                to,
                flip_id,
                cause,
                seamless,
                stall_ns,
                switch_ns,
                verified,
                mismatched,
                matched,
                cut_pos,
                first_pos,
            }),
            _ => None,
        }
    }

    /// The record as one line of JSON, newline included:
    /// `{"version":1,"recipient":..,"from":..,"to":..,"flip_id":..,"cause":"flip",
    /// "seamless":true,"stall_ns":..,"switch_ns":..,"verified":..,"mismatched":..,
    /// "matched":{"origin":..,"seq":..,"from_pos":..,"to_pos":..},"cut_pos":..,
    /// "first_pos":..,"rollback":false}` (`matched` is `null` when nothing was verified).
    /// Allocates nothing itself.
    pub fn write_json<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        let cause = match self.cause {
            SwitchCause::Flip => "flip",
            SwitchCause::Silence => "silence",
            SwitchCause::Rollback => "rollback",
        };
        write!(
            w,
            "{{\"version\":{SWITCH_RECORD_VERSION},\"recipient\":{},\"from\":{},\"to\":{},\"flip_id\":{},\
             \"cause\":\"{cause}\",\"seamless\":{},\"stall_ns\":{},\"switch_ns\":{},\"verified\":{},\
             \"mismatched\":{},\"matched\":",
            self.recipient,
            self.from,
            self.to,
            self.flip_id,
            self.seamless,
            self.stall_ns,
            self.switch_ns,
            self.verified,
            self.mismatched
        )?;
        match self.matched {
            Some(m) => write!(
                w,
                "{{\"origin\":{},\"seq\":{},\"from_pos\":{},\"to_pos\":{}}}",
                m.origin, m.seq, m.from_pos, m.to_pos
            )?,
            None => w.write_str("null")?,
        }
        writeln!(
            w,
            ",\"cut_pos\":{},\"first_pos\":{},\"rollback\":{}}}",
            self.cut_pos,
            self.first_pos,
            self.cause == SwitchCause::Rollback
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_record_is_one_line_of_json() {
        let n = Notice::Switched {
            from: 0,
            to: 1,
            flip_id: 9,
            cause: SwitchCause::Flip,
            seamless: true,
            stall_ns: 5,
            switch_ns: 2,
            verified: 40,
            mismatched: 1,
            matched: Some(PositionPair { origin: 0, seq: 40, from_pos: 1080, to_pos: 2120 }),
            cut_pos: 1081,
            first_pos: 2123,
        };
        let r = SwitchRecord::from_notice(7, &n).unwrap();
        let mut s = String::new();
        r.write_json(&mut s).unwrap();
        assert_eq!(
            s,
            "{\"version\":1,\"recipient\":7,\"from\":0,\"to\":1,\"flip_id\":9,\"cause\":\"flip\",\
             \"seamless\":true,\"stall_ns\":5,\"switch_ns\":2,\"verified\":40,\"mismatched\":1,\
             \"matched\":{\"origin\":0,\"seq\":40,\"from_pos\":1080,\"to_pos\":2120},\"cut_pos\":1081,\
             \"first_pos\":2123,\"rollback\":false}\n"
        );
        let back = SwitchRecord { cause: SwitchCause::Rollback, matched: None, ..r };
        let mut s = String::new();
        back.write_json(&mut s).unwrap();
        assert!(
            s.contains("\"cause\":\"rollback\"")
                && s.contains("\"matched\":null")
                && s.ends_with("\"rollback\":true}\n")
        );
        assert_eq!(SwitchRecord::from_notice(7, &Notice::Unsubscribe { stream: 1 }), None);
    }
}
