//! The JSON writer: the predictor's model file, and the helpers it is written with (the CLI's
//! history format uses them too).
//!
//! The model file's format, its reader and its writer are the library's
//! (`harmonizer_core::predict::model`, `harmonizer_core::predict::json_write`); these are the
//! `String` forms the tools use.
//!
//! [`write_number`] prints an `f64` in Rust's shortest round-trip form (`1.0`, `1e-7`, `-0.0`),
//! which parses back to the identical bits, and [`write_string`] escapes a string; so a model
//! written by [`model_to_json`] and read back with [`Model::from_json`] is bit-for-bit identical.

use harmonizer_core::predict::json_write;
use harmonizer_core::predict::model::Model;

/// The model as pretty-printed JSON ([`Model::write_json`], the library's writer): reading it
/// back with [`Model::from_json`] gives a bit-identical model.
pub fn model_to_json(m: &Model) -> String {
    m.to_json()
}

/// Appends `v` in Rust's shortest round-trip form ([`json_write::write_number`]).
pub fn write_number(out: &mut String, v: f64) {
    // Writing to a String cannot fail.
    let _ = json_write::write_number(out, v);
}

/// Appends `s` as a quoted JSON string ([`json_write::write_string`]).
pub fn write_string(out: &mut String, s: &str) {
    let _ = json_write::write_string(out, s);
}

/// Appends `[a, b, c]` on one line ([`json_write::write_number_array`]).
pub fn write_number_array(out: &mut String, values: &[f64]) {
    let _ = json_write::write_number_array(out, values);
}

/// Appends `["a", "b"]` on one line ([`json_write::write_string_array`]).
pub fn write_string_array(out: &mut String, values: &[&str]) {
    let _ = json_write::write_string_array(out, values);
}

#[cfg(test)]
mod tests;
