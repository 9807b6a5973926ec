//! Writing JSON: the model file ([`Model::write_json`](super::Model::write_json)) and the
//! helpers it is written with (the offline tools and the CLI's history format use them too).
//!
//! [`write_number`] prints an `f64` in Rust's shortest round-trip form (`1.0`, `1e-7`, `-0.0`),
//! which parses back to the identical bits, and [`write_string`] escapes a string; so a model
//! written and read back is bit-for-bit identical. Every function writes to any
//! [`fmt::Write`], so a caller can count the length first and write into a buffer of its own
//! without allocating (the C API's `hz_engine_model_json`).

use core::fmt;

/// Writes `v` in Rust's shortest round-trip form (`1.0`, `1e-7`, `-0.0`), which is valid JSON
/// and parses back to the same bits. JSON cannot express non-finite numbers: an infinity is
/// written as `1e999` or `-1e999` (which read back as infinities), and NaN as `null`.
pub fn write_number(out: &mut dyn fmt::Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        out.write_str("null")
    } else if v == f64::INFINITY {
        out.write_str("1e999")
    } else if v == f64::NEG_INFINITY {
        out.write_str("-1e999")
    } else {
        write!(out, "{v:?}")
    }
}

/// Writes `s` as a quoted JSON string: `"` and `\` are escaped, control characters are written
/// as `\n`, `\t` etc. or `\u00XX`; everything else is copied as UTF-8.
pub fn write_string(out: &mut dyn fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Writes `[a, b, c]` on one line, each element written by [`write_number`].
pub fn write_number_array(out: &mut dyn fmt::Write, values: &[f64]) -> fmt::Result {
    out.write_char('[')?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write_number(out, *v)?;
    }
    out.write_char(']')
}

/// Writes `["a", "b"]` on one line, each element written by [`write_string`].
pub fn write_string_array(out: &mut dyn fmt::Write, values: &[&str]) -> fmt::Result {
    out.write_char('[')?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write_string(out, v)?;
    }
    out.write_char(']')
}
