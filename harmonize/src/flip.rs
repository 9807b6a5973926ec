//! `harmonize flip encode` and `harmonize flip decode`: craft and read flip records
//! (docs/flip-format.md), with the library's encoder and decoder.
//!
//! `encode` takes one flag per field and prints the record in hex (default) or base64.
//! `decode` prints the fields one per line as `key: value`, with the keys named like
//! `encode`'s flags; a malformed record is reported with the library's `FlipError` code and
//! message, and a non-zero exit.

use std::fmt::Write as _;
use std::io::{Read, Write};

use clap::{Args, Subcommand, ValueEnum};
use harmonizer_core::flip::{Flip, FlipAction, IdList, Selector, FLIP_VERSION, MAX_IDS};

use crate::codec::{base64_decode, base64_encode, hex_decode, hex_encode};
use crate::predictor::parse_u64;

/// `harmonize flip ...`.
#[derive(Subcommand)]
pub enum FlipCmd {
    /// Encode a flip record from its fields.
    #[command(after_help = ENCODE_EXAMPLES)]
    Encode(EncodeArgs),
    /// Decode a flip record and print its fields, or why it is malformed.
    #[command(after_help = DECODE_EXAMPLES)]
    Decode(DecodeArgs),
    /// Write a flip record into real streams (Redis Streams keys or JetStream subjects), as an
    /// entry of kind 1.
    #[command(after_help = SEND_EXAMPLES)]
    Send(crate::connect::SendArgs),
}

const SEND_EXAMPLES: &str = "\
Example:
  harmonize flip send --redis redis://127.0.0.1:6379/ --stream feed-a --stream feed-b --action switch --id 7 --target 1
  harmonize flip send --nats nats://127.0.0.1:4222 --stream feed-a --action announce --id 8 --target 1 --cohort 2500 --salt 9";

const ENCODE_EXAMPLES: &str = "\
Example:
  harmonize flip encode --action switch --id 0x0102030405060708 --target 2 --cutover-pos 1000 --locator kafka://b/orders
  harmonize flip encode --action announce --id 7 --target 1 --expected-in-ns 5000000000 --ids 42,18446744073709551615
  harmonize flip encode --action switchback --id 99 --cohort 1000 --salt 0xdeadbeef --base64";

const DECODE_EXAMPLES: &str = "\
Example:
  harmonize flip decode 01010000020000000807060504030201e80300000000000000000000000000000000000000000000000000000000000010006b61666b613a2f2f622f6f7264657273bfc0590f
  harmonize flip decode --base64 AQIBAAEAAAAHAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADyBSoBAAAAAioAAAAAAAAA//////////8AAEN5L+8=
  harmonize flip encode --action switch --id 1 --target 2 | harmonize flip decode -";

/// The action, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Switch to the target.
    Switch,
    /// A switch to the target is expected in --expected-in-ns: stage it.
    Announce,
    /// Withdraw an announce of the target.
    Cancel,
    /// Return to the stream active before the last switch.
    Switchback,
}

impl Action {
    fn to_lib(self) -> FlipAction {
        match self {
            Action::Switch => FlipAction::Switch,
            Action::Announce => FlipAction::Announce,
            Action::Cancel => FlipAction::Cancel,
            Action::Switchback => FlipAction::Switchback,
        }
    }
}

/// `harmonize flip encode`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct EncodeArgs {
    #[command(flatten)]
    fields: FlipFields,
    /// Print the record in hex (the default).
    #[arg(long, conflicts_with = "base64")]
    hex: bool,
    /// Print the record in base64.
    #[arg(long)]
    base64: bool,
}

/// A flip's fields, one flag each (`flip encode`, `flip send`).
#[derive(Args)]
pub struct FlipFields {
    /// What the flip asks for.
    #[arg(long, value_enum)]
    action: Action,
    /// flip_id: unique per flip (decimal or 0x hex).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    id: u64,
    /// The stream to switch to, announce or cancel (u32). Required except for switchback,
    /// where it defaults to 0.
    #[arg(long, value_name = "STREAM", value_parser = parse_u32)]
    target: Option<u32>,
    /// Position in the current stream up to which it is still delivered; 0: at the flip.
    #[arg(long, value_name = "POS", default_value = "0", value_parser = parse_u64)]
    cutover_pos: u64,
    /// Position in the target stream to read from; 0: the tracker decides.
    #[arg(long, value_name = "POS", default_value = "0", value_parser = parse_u64)]
    resume_pos: u64,
    /// Switch at the first event with ts_ns >= this; 0: no time condition.
    #[arg(long, value_name = "NS", default_value = "0", value_parser = parse_u64)]
    not_before_ns: u64,
    /// ANNOUNCE: when the switch is expected, in ns after the flip's ts_ns.
    #[arg(long, value_name = "NS", default_value = "0", value_parser = parse_u64)]
    expected_in_ns: u64,
    /// Selector IDS: the recipient ids, comma-separated (1 to 32). Default selector: ALL.
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = parse_u64, conflicts_with = "cohort")]
    ids: Vec<u64>,
    /// Selector COHORT: basis points 0..=10000 (10000 = every recipient). Needs --salt.
    #[arg(long, value_name = "BP", value_parser = parse_u16, requires = "salt")]
    cohort: Option<u16>,
    /// The COHORT selector's salt (decimal or 0x hex).
    #[arg(long, value_name = "N", value_parser = parse_u64, requires = "cohort")]
    salt: Option<u64>,
    /// Locator, as UTF-8 text (at most 1024 bytes).
    #[arg(long, value_name = "TEXT", conflicts_with = "locator_hex")]
    locator: Option<String>,
    /// Locator, as hex bytes (at most 1024 bytes).
    #[arg(long, value_name = "HEX")]
    locator_hex: Option<String>,
}

/// `harmonize flip decode`.
#[derive(Args)]
pub struct DecodeArgs {
    /// The record in hex (whitespace and a leading 0x ignored, so several arguments are
    /// joined); `-` reads it from standard input.
    #[arg(required = true, value_name = "HEX")]
    input: Vec<String>,
    /// The input is base64 instead of hex.
    #[arg(long)]
    base64: bool,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    u32::try_from(v).map_err(|_| format!("{s} is larger than a u32 (4294967295)"))
}

fn parse_u16(s: &str) -> Result<u16, String> {
    let v = parse_u64(s)?;
    u16::try_from(v).map_err(|_| format!("{s} is larger than a u16 (65535)"))
}

pub fn run(c: FlipCmd) -> Result<(), String> {
    let out = match c {
        FlipCmd::Encode(a) => encode(&a)?,
        FlipCmd::Decode(a) => decode(&a)?,
        FlipCmd::Send(a) => crate::connect::send_flip(&a, record(&a.fields)?)?,
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("standard output: {e}"))
}

/// The record as one line of hex or base64.
pub fn encode(a: &EncodeArgs) -> Result<String, String> {
    let bytes = record(&a.fields)?;
    let text = if a.base64 { base64_encode(&bytes) } else { hex_encode(&bytes) };
    Ok(text + "\n")
}

/// The record's bytes.
pub fn record(a: &FlipFields) -> Result<Vec<u8>, String> {
    let target = match (a.target, a.action) {
        (Some(t), _) => t,
        (None, Action::Switchback) => 0,
        (None, other) => return Err(format!("--target is required for {}", other.to_lib().name())),
    };
    let selector = if !a.ids.is_empty() {
        let ids = IdList::new(&a.ids)
            .ok_or_else(|| format!("--ids lists {} ids, at most {MAX_IDS} are allowed", a.ids.len()))?;
        Selector::Ids(ids)
    } else if let (Some(basis_points), Some(salt)) = (a.cohort, a.salt) {
        Selector::Cohort { basis_points, salt }
    } else {
        Selector::All
    };
    let locator = match (&a.locator, &a.locator_hex) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(hex)) => hex_decode(hex).map_err(|e| format!("--locator-hex: {e}"))?,
        (None, None) => Vec::new(),
    };
    let flip = Flip {
        cutover_pos: a.cutover_pos,
        resume_pos: a.resume_pos,
        not_before_ns: a.not_before_ns,
        expected_in_ns: a.expected_in_ns,
        selector,
        locator: &locator,
        ..Flip::new(a.action.to_lib(), a.id, target)
    };
    flip.to_vec().map_err(|e| format!("cannot encode ({}): {e}", e.code()))
}

/// The fields, one `key: value` per line.
pub fn decode(a: &DecodeArgs) -> Result<String, String> {
    let text = if a.input.len() == 1 && a.input[0] == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("standard input: {e}"))?;
        s
    } else {
        a.input.join(" ")
    };
    let bytes = if a.base64 { base64_decode(&text)? } else { hex_decode(&text)? };
    let f = Flip::decode(&bytes).map_err(|e| format!("invalid flip ({}): {e}", e.code()))?;
    Ok(describe(&f, &bytes))
}

fn describe(f: &Flip<'_>, bytes: &[u8]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "version: {FLIP_VERSION}");
    let _ = writeln!(s, "action: {}", f.action.name());
    let _ = writeln!(s, "id: {}", f.flip_id);
    let _ = writeln!(s, "target: {}", f.target);
    let _ = writeln!(s, "cutover_pos: {}", f.cutover_pos);
    let _ = writeln!(s, "resume_pos: {}", f.resume_pos);
    let _ = writeln!(s, "not_before_ns: {}", f.not_before_ns);
    let _ = writeln!(s, "expected_in_ns: {}", f.expected_in_ns);
    match f.selector {
        Selector::All => {
            let _ = writeln!(s, "selector: all");
        }
        Selector::Ids(ids) => {
            let list: Vec<String> = ids.as_slice().iter().map(u64::to_string).collect();
            let _ = writeln!(s, "selector: ids");
            let _ = writeln!(s, "ids: {}", list.join(","));
        }
        Selector::Cohort { basis_points, salt } => {
            let _ = writeln!(s, "selector: cohort");
            let _ = writeln!(s, "cohort: {basis_points}");
            let _ = writeln!(s, "salt: {salt:#x}");
        }
    }
    match std::str::from_utf8(f.locator) {
        Ok(text) if !text.chars().any(char::is_control) => {
            let _ = writeln!(s, "locator: {text:?}");
        }
        _ => {
            let _ = writeln!(s, "locator_hex: {}", hex_encode(f.locator));
        }
    }
    let _ = writeln!(s, "locator_len: {}", f.locator.len());
    // A decoded record ends with its 4-byte CRC.
    let crc =
        bytes.len().checked_sub(4).and_then(|at| bytes.get(at..)).and_then(|b| <[u8; 4]>::try_from(b).ok());
    if let Some(crc) = crc {
        let _ = writeln!(s, "crc32c: {:#010x}", u32::from_le_bytes(crc));
    }
    let _ = writeln!(s, "length: {}", bytes.len());
    s
}
