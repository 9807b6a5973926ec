//! The JSON writer: the predictor's model file, and the helpers it is written with (the CLI's
//! history format uses them too).
//!
//! The model file's format and its reader are the library's (`harmonizer_core::predict::model`,
//! [`Model::from_json`]): a service that loads a model links the reader only. Models are
//! written here, by the offline work that trains them.
//!
//! [`write_number`] prints an `f64` in Rust's shortest round-trip form (`1.0`, `1e-7`, `-0.0`),
//! which parses back to the identical bits, and [`write_string`] escapes a string; so a model
//! written by [`model_to_json`] and read back with [`Model::from_json`] is bit-for-bit identical.

use std::fmt::Write as _;

use harmonizer_core::predict::model::{Model, MODEL_FORMAT, MODEL_VERSION};
use harmonizer_core::predict::FEATURE_NAMES;

/// The model as pretty-printed JSON: one key per line, arrays on one line, a final newline.
/// Reading it back with [`Model::from_json`] gives a bit-identical model.
///
/// This does not validate: an invalid model (see [`Model::validate`]) is written as faithfully
/// as JSON allows (NaN as `null`, infinities as `±1e999`) and is refused when read back.
pub fn model_to_json(m: &Model) -> String {
    let mut s = String::with_capacity(1536 + m.meta.trained_on.len());
    s.push_str("{\n  \"format\": ");
    write_string(&mut s, MODEL_FORMAT);
    // Writing to a String cannot fail.
    let _ =
        write!(s, ",\n  \"version\": {MODEL_VERSION},\n  \"horizon_ns\": {},\n  \"clip\": ", m.horizon_ns);
    write_number(&mut s, m.clip);
    s.push_str(",\n  \"features\": ");
    write_string_array(&mut s, &FEATURE_NAMES);
    for (key, values) in [("mean", &m.mean), ("scale", &m.scale), ("weights", &m.weights)] {
        let _ = write!(s, ",\n  \"{key}\": ");
        write_number_array(&mut s, values);
    }
    s.push_str(",\n  \"bias\": ");
    write_number(&mut s, m.bias);
    s.push_str(",\n  \"meta\": {\n    \"trained_on\": ");
    write_string(&mut s, &m.meta.trained_on);
    let _ = write!(s, ",\n    \"snapshots\": {},\n    \"l2\": ", m.meta.snapshots);
    write_number(&mut s, m.meta.l2);
    s.push_str("\n  }\n}\n");
    s
}

/// Appends `v` in Rust's shortest round-trip form (`1.0`, `1e-7`, `-0.0`), which is valid JSON
/// and parses back to the same bits. JSON cannot express non-finite numbers: an infinity is
/// written as `1e999` or `-1e999` (which read back as infinities), and NaN as `null`.
pub fn write_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("null");
    } else if v == f64::INFINITY {
        out.push_str("1e999");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-1e999");
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{v:?}");
    }
}

/// Appends `s` as a quoted JSON string: `"` and `\` are escaped, control characters are written
/// as `\n`, `\t` etc. or `\u00XX`; everything else is copied as UTF-8.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `[a, b, c]` on one line, each element written by [`write_number`].
pub fn write_number_array(out: &mut String, values: &[f64]) {
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_number(out, *v);
    }
    out.push(']');
}

/// Appends `["a", "b"]` on one line, each element written by [`write_string`].
pub fn write_string_array(out: &mut String, values: &[&str]) {
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, v);
    }
    out.push(']');
}

#[cfg(test)]
mod tests;
