//! The predictor's logistic model: scoring, validation, and its JSON file.
//!
//! A [`Model`] turns one feature vector (see [`crate::predict::features`]) into a logit:
//!
//! ```text
//! z[i]  = clamp((x[i] - mean[i]) / scale[i], -clip, clip)
//! logit = bias + sum over i of weights[i] * z[i]
//! ```
//!
//! The probability of a switch within `horizon_ns` is `1 / (1 + exp(-logit))`; callers that only
//! compare against a threshold compare logits and never need the `exp`.
//!
//! # File format
//!
//! A model is stored as one UTF-8 JSON object, read by [`Model::from_json`] / [`Model::load`]
//! (and written by the offline work that trains it, `harmonizer_sim::json::model_to_json`):
//!
//! ```text
//! {
//!   "format": "harmonizer-predictor",
//!   "version": 1,
//!   "horizon_ns": 2000000000,
//!   "clip": 4.0,
//!   "features": ["load_burst", "load_sustained", ...],
//!   "mean": [0.25, 0.0, ...],
//!   "scale": [1.0, 0.5, ...],
//!   "weights": [0.8, -0.1, ...],
//!   "bias": -3.5,
//!   "meta": {
//!     "trained_on": "scenario mix A, seeds 1..=40",
//!     "snapshots": 12345,
//!     "l2": 1.0
//!   }
//! }
//! ```
//!
//! - `format` must be exactly `"harmonizer-predictor"` and `version` must be `1`
//!   ([`MODEL_VERSION`]); both are checked before anything else, so a file from a newer build is
//!   reported as such rather than as a list of unexpected keys.
//! - `horizon_ns`: the label horizon the model was trained for, in nanoseconds; a whole number
//!   from 1 to 2^53 - 1 (larger integers cannot be represented exactly by a JSON reader that uses
//!   doubles).
//! - `clip`: the standardised-feature clamp, a number greater than zero.
//! - `features`: the feature names in model order. They must equal this build's
//!   [`FEATURE_NAMES`], all [`N_FEATURES`] of them, in order: a model trained on other features
//!   is refused rather than silently misapplied.
//! - `mean`, `scale`, `weights`: one number per feature. Every `scale` is greater than zero.
//! - `bias`: a number.
//! - `meta`: provenance. `trained_on` is free text, `snapshots` is how many training rows were
//!   used (a whole number from 0 to 2^53 - 1), `l2` is the ridge penalty used in training.
//!
//! Every key is required and unknown keys (at the top level or in `meta`) are errors, so a typo
//! cannot be silently ignored. Key order and whitespace are free. Numbers must be finite: JSON
//! has no NaN or infinity, but a literal such as `1e999` overflows to infinity and is rejected,
//! naming the field and index. The JSON itself is read strictly: exactly one RFC 8259 value, the
//! number grammar exactly, numbers converted with Rust's correctly rounded `str::parse::<f64>`,
//! lone surrogates, raw control characters and repeated keys refused, nesting at most 32 deep.
//!
//! The writer prints every number in Rust's shortest round-trip form, so a model written and
//! read back is bit-for-bit identical. Every rejection is a [`ModelError`] with a one-line
//! message and a stable [`ModelError::code`]; nothing here panics, whatever the input.

use std::fmt;
use std::path::Path;

use crate::predict::features::{FEATURE_NAMES, N_FEATURES};
use crate::predict::json::{self, JsonError, Value};

/// The model file layout version this build reads and writes.
pub const MODEL_VERSION: u32 = 1;

/// The value of the `format` key that identifies a model file.
pub const MODEL_FORMAT: &str = "harmonizer-predictor";

/// The largest integer the file stores (`horizon_ns`, `meta.snapshots`): 2^53 - 1, the largest
/// such that every integer up to it, and no larger one, reads back exactly from a double.
const MAX_INTEGER: u64 = (1 << 53) - 1;

/// The top-level keys of a model file, in the order the writer writes them.
const KEYS: [&str; 10] =
    ["format", "version", "horizon_ns", "clip", "features", "mean", "scale", "weights", "bias", "meta"];

/// The keys of the `meta` object.
const META_KEYS: [&str; 3] = ["trained_on", "snapshots", "l2"];

/// A trained logistic model over the [`N_FEATURES`] predictor features.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The label horizon the model was trained for: it predicts a switch within this many ns.
    pub horizon_ns: u64,
    /// Per-feature standardisation offset.
    pub mean: [f64; N_FEATURES],
    /// Per-feature standardisation divisor; every entry is greater than zero.
    pub scale: [f64; N_FEATURES],
    /// Standardised features are clamped to `[-clip, clip]`; greater than zero.
    pub clip: f64,
    /// Per-feature coefficient on the standardised feature.
    pub weights: [f64; N_FEATURES],
    /// The intercept: the logit when every standardised feature is zero.
    pub bias: f64,
    /// Where the model came from.
    pub meta: ModelMeta,
}

/// Provenance of a [`Model`]: informational, not used in scoring.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// Free text describing the training data.
    pub trained_on: String,
    /// How many training rows (snapshots) the model was fitted on.
    pub snapshots: u64,
    /// The L2 (ridge) penalty used in training.
    pub l2: f64,
}

/// Why a model file or a [`Model`] was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// The file could not be read: the path and the operating system's message (or why it is
    /// not a file this reads: a directory, a device, a pipe).
    Io(String),
    /// The model is longer than [`MAX_MODEL_BYTES`]: refused before it is read in full.
    TooLarge {
        /// Its length, or as much of it as was read before stopping.
        len: u64,
        /// [`MAX_MODEL_BYTES`].
        limit: usize,
    },
    /// The file is not UTF-8.
    NotUtf8 {
        /// Byte offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
    /// The file is not valid JSON (see the module docs).
    Json {
        /// Byte offset at which the problem was found.
        offset: usize,
        /// What is wrong.
        msg: &'static str,
    },
    /// The `format` key is not `"harmonizer-predictor"`: this is not a model file.
    Format(String),
    /// The `version` key is not one this build reads.
    Version {
        /// The version in the file.
        found: f64,
        /// The version this build reads ([`MODEL_VERSION`]).
        supported: u32,
    },
    /// A required key is absent. Keys inside `meta` are named `meta.<key>`.
    MissingKey(&'static str),
    /// A key this format does not have (a typo, or a file for another build).
    UnknownKey(String),
    /// A value has the wrong JSON type. `key` is empty when the whole file is not an object.
    WrongType {
        /// The key whose value is wrong (`meta.<key>` inside `meta`).
        key: &'static str,
        /// What it must be, e.g. `"a number"`.
        expected: &'static str,
    },
    /// `features` has a different number of names than this build computes.
    FeatureCount {
        /// Names in the file.
        found: usize,
        /// [`N_FEATURES`].
        expected: usize,
    },
    /// `features[index]` is not this build's feature at that position.
    FeatureName {
        /// Position in `features`.
        index: usize,
        /// The name in the file.
        found: String,
        /// This build's name at that position.
        expected: &'static str,
    },
    /// A per-feature array (`mean`, `scale`, `weights`) has the wrong length.
    ArrayLength {
        /// Which array.
        key: &'static str,
        /// Its length in the file.
        found: usize,
        /// [`N_FEATURES`].
        expected: usize,
    },
    /// A number is NaN or infinite (e.g. the literal `1e999`).
    NotFinite {
        /// Which key.
        key: &'static str,
        /// The array index, for per-feature arrays.
        index: Option<usize>,
    },
    /// A number that must be greater than zero (`scale[i]`, `clip`, `horizon_ns`) is not.
    NonPositive {
        /// Which key.
        key: &'static str,
        /// The array index, for `scale`.
        index: Option<usize>,
    },
    /// An integer field (`horizon_ns`, `meta.snapshots`) is fractional or outside `min..=2^53 - 1`.
    IntegerRange {
        /// Which key.
        key: &'static str,
        /// The smallest value allowed.
        min: u64,
        /// The value found.
        found: f64,
    },
    /// The model is valid but the predictor's learner (`learn.rs`) cannot follow its horizon:
    /// the snapshots waiting for their labels over it would not fit its bounds, or their room
    /// could not be allocated. The reason; the current model stays.
    Learning(&'static str),
}

impl ModelError {
    /// A short stable name for the reason, for counters and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Io(_) => "io",
            ModelError::TooLarge { .. } => "too_large",
            ModelError::NotUtf8 { .. } => "not_utf8",
            ModelError::Json { .. } => "json",
            ModelError::Format(_) => "format",
            ModelError::Version { .. } => "version",
            ModelError::MissingKey(_) => "missing_key",
            ModelError::UnknownKey(_) => "unknown_key",
            ModelError::WrongType { .. } => "wrong_type",
            ModelError::FeatureCount { .. } => "feature_count",
            ModelError::FeatureName { .. } => "feature_name",
            ModelError::ArrayLength { .. } => "array_length",
            ModelError::NotFinite { .. } => "not_finite",
            ModelError::NonPositive { .. } => "non_positive",
            ModelError::IntegerRange { .. } => "integer_range",
            ModelError::Learning(_) => "learning",
        }
    }
}

/// Formats a number for a message: whole numbers without a fraction, others in shortest form.
fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:?}")
    }
}

/// `key` or `key[index]`.
struct Place(&'static str, Option<usize>);

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(i) => write!(f, "{}[{i}]", self.0),
            None => f.write_str(self.0),
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Io(msg) => write!(f, "cannot read model file: {msg}"),
            ModelError::TooLarge { len, limit } => {
                write!(f, "model of {len} bytes or more is above the limit of {limit} bytes")
            }
            ModelError::NotUtf8 { offset } => {
                write!(f, "model file is not UTF-8 (invalid byte at offset {offset})")
            }
            ModelError::Json { offset, msg } => {
                write!(f, "model file is not valid JSON: {msg} at byte {offset}")
            }
            ModelError::Format(found) => {
                write!(f, "not a predictor model: format is {found:?}, expected {MODEL_FORMAT:?}")
            }
            ModelError::Version { found, supported } => write!(
                f,
                "model version {} is not supported (this build reads version {supported})",
                show(*found)
            ),
            ModelError::MissingKey(key) => write!(f, "model is missing the required key \"{key}\""),
            ModelError::UnknownKey(key) => write!(f, "model has an unknown key {key:?}"),
            ModelError::WrongType { key: "", expected } => write!(f, "a model file must be {expected}"),
            ModelError::WrongType { key, expected } => write!(f, "{key} must be {expected}"),
            ModelError::FeatureCount { found, expected } => {
                write!(f, "model has {found} features, this build computes {expected}")
            }
            ModelError::FeatureName { index, found, expected } => {
                write!(f, "features[{index}] is {found:?}, this build computes {expected:?} there")
            }
            ModelError::ArrayLength { key, found, expected } => {
                write!(f, "{key} has {found} entries, expected {expected} (one per feature)")
            }
            ModelError::NotFinite { key, index } => {
                write!(f, "{} is not a finite number", Place(key, *index))
            }
            ModelError::NonPositive { key, index } => {
                write!(f, "{} must be greater than zero", Place(key, *index))
            }
            ModelError::IntegerRange { key, min, found } => write!(
                f,
                "{key} must be a whole number from {min} to {MAX_INTEGER} (2^53 - 1), found {}",
                show(*found)
            ),
            ModelError::Learning(why) => write!(f, "the predictor's learning cannot take this model: {why}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<JsonError> for ModelError {
    fn from(e: JsonError) -> Self {
        ModelError::Json { offset: e.offset, msg: e.msg }
    }
}

/// One standardised, clipped feature. NaN propagates (no comparison holds for it), and an
/// invalid `clip` cannot panic, unlike `f64::clamp`.
#[inline(always)]
fn standard(x: f64, mean: f64, scale: f64, clip: f64) -> f64 {
    let z = (x - mean) / scale;
    if z > clip {
        clip
    } else if z < -clip {
        -clip
    } else {
        z
    }
}

impl Model {
    /// The model's logit for feature vector `x`: `bias + Σ weights[i] * z[i]` with
    /// `z[i] = clamp((x[i] - mean[i]) / scale[i], -clip, clip)`. No allocation, no `exp`.
    ///
    /// A NaN feature makes the logit NaN, which compares false against any threshold.
    #[inline]
    pub fn logit(&self, x: &[f64; N_FEATURES]) -> f64 {
        let clip = self.clip;
        let mut acc = self.bias;
        for (((&x, &m), &s), &w) in x.iter().zip(&self.mean).zip(&self.scale).zip(&self.weights) {
            acc += w * standard(x, m, s, clip);
        }
        acc
    }

    /// Writes the model as pretty-printed JSON: one key per line, arrays on one line, a final
    /// newline. Reading it back with [`Model::from_json`] gives a bit-identical model. Writes to
    /// any [`fmt::Write`] (count first, then write into a buffer: no allocation needed).
    ///
    /// This does not validate: an invalid model (see [`Model::validate`]) is written as
    /// faithfully as JSON allows (NaN as `null`, infinities as `±1e999`) and is refused when
    /// read back.
    pub fn write_json(&self, s: &mut dyn fmt::Write) -> fmt::Result {
        use super::json_write::{write_number, write_number_array, write_string, write_string_array};
        s.write_str("{\n  \"format\": ")?;
        write_string(s, MODEL_FORMAT)?;
        write!(
            s,
            ",\n  \"version\": {MODEL_VERSION},\n  \"horizon_ns\": {},\n  \"clip\": ",
            self.horizon_ns
        )?;
        write_number(s, self.clip)?;
        s.write_str(",\n  \"features\": ")?;
        write_string_array(s, &FEATURE_NAMES)?;
        for (key, values) in [("mean", &self.mean), ("scale", &self.scale), ("weights", &self.weights)] {
            write!(s, ",\n  \"{key}\": ")?;
            write_number_array(s, values)?;
        }
        s.write_str(",\n  \"bias\": ")?;
        write_number(s, self.bias)?;
        s.write_str(",\n  \"meta\": {\n    \"trained_on\": ")?;
        write_string(s, &self.meta.trained_on)?;
        write!(s, ",\n    \"snapshots\": {},\n    \"l2\": ", self.meta.snapshots)?;
        write_number(s, self.meta.l2)?;
        s.write_str("\n  }\n}\n")
    }

    /// [`write_json`](Self::write_json) into a new `String`.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(1536 + self.meta.trained_on.len());
        // Writing to a String cannot fail.
        let _ = self.write_json(&mut s);
        s
    }

    /// Writes the standardised, clipped features `z[i]` of `x` into `out` (what [`Model::logit`]
    /// weighs; what training sees).
    #[inline]
    pub fn standardise(&self, x: &[f64; N_FEATURES], out: &mut [f64; N_FEATURES]) {
        for (((o, &x), &m), &s) in out.iter_mut().zip(x).zip(&self.mean).zip(&self.scale) {
            *o = standard(x, m, s, self.clip);
        }
    }

    /// Checks every invariant of the file format: `horizon_ns` in `1..=2^53 - 1`, `clip` and
    /// every `scale` finite and greater than zero, every other number finite, `meta.snapshots`
    /// at most 2^53 - 1. [`Model::from_json`] calls it; call it on models built by hand.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.horizon_ns == 0 {
            return Err(ModelError::NonPositive { key: "horizon_ns", index: None });
        }
        if self.horizon_ns > MAX_INTEGER {
            return Err(ModelError::IntegerRange {
                key: "horizon_ns",
                min: 1,
                found: self.horizon_ns as f64,
            });
        }
        positive("clip", None, self.clip)?;
        for (i, &v) in self.mean.iter().enumerate() {
            finite("mean", Some(i), v)?;
        }
        for (i, &v) in self.scale.iter().enumerate() {
            positive("scale", Some(i), v)?;
        }
        for (i, &v) in self.weights.iter().enumerate() {
            finite("weights", Some(i), v)?;
        }
        finite("bias", None, self.bias)?;
        if self.meta.snapshots > MAX_INTEGER {
            let found = self.meta.snapshots as f64;
            return Err(ModelError::IntegerRange { key: "meta.snapshots", min: 0, found });
        }
        finite("meta.l2", None, self.meta.l2)
    }

    /// Reads a model from JSON text and [validates](Model::validate) it. See the module docs for
    /// the format.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        if text.len() > MAX_MODEL_BYTES {
            return Err(ModelError::TooLarge { len: text.len() as u64, limit: MAX_MODEL_BYTES });
        }
        let value = json::parse(text)?;
        let model = from_value(&value)?;
        model.validate()?;
        Ok(model)
    }

    /// Like [`Model::from_json`], for raw file bytes: rejects bytes that are not UTF-8 first.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(ModelError::TooLarge { len: bytes.len() as u64, limit: MAX_MODEL_BYTES });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ModelError::NotUtf8 { offset: e.valid_up_to() })?;
        Model::from_json(text)
    }

    /// Reads and validates the model file at `path` ([`read_model_file`]). I/O failures are
    /// [`ModelError::Io`], with the path in the message.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        Model::from_json_bytes(&read_model_file(path)?)
    }
}

/// The largest model this build reads, bytes: about a thousand times the shipped model, so a
/// device or a runaway file is refused before it is read (issue 19).
pub const MAX_MODEL_BYTES: usize = 1 << 20;

/// A model file's bytes: a regular file (not a directory, a device such as `/dev/zero`, or a
/// pipe) of at most [`MAX_MODEL_BYTES`], read no further than one byte past the limit (a file
/// growing while it is read is caught too).
pub fn read_model_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let io = |e: std::io::Error| ModelError::Io(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ModelError::Io(format!("{}: not a regular file", path.display())));
    }
    if meta.len() > MAX_MODEL_BYTES as u64 {
        return Err(ModelError::TooLarge { len: meta.len(), limit: MAX_MODEL_BYTES });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODEL_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge { len: bytes.len() as u64, limit: MAX_MODEL_BYTES });
    }
    Ok(bytes)
}

fn finite(key: &'static str, index: Option<usize>, v: f64) -> Result<(), ModelError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ModelError::NotFinite { key, index })
    }
}

fn positive(key: &'static str, index: Option<usize>, v: f64) -> Result<(), ModelError> {
    finite(key, index, v)?;
    if v > 0.0 {
        Ok(())
    } else {
        Err(ModelError::NonPositive { key, index })
    }
}

/// The members of a JSON object, looked up by key.
struct Members<'v>(&'v [(String, Value)]);

impl<'v> Members<'v> {
    /// The value of `key`; if absent, [`ModelError::MissingKey`] names it `full_name`.
    fn get(&self, key: &'static str, full_name: &'static str) -> Result<&'v Value, ModelError> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v).ok_or(ModelError::MissingKey(full_name))
    }

    /// The first key not in `known`, prefixed with `prefix`.
    fn reject_unknown(&self, known: &[&str], prefix: &str) -> Result<(), ModelError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(ModelError::UnknownKey(format!("{prefix}{k}"))),
            None => Ok(()),
        }
    }
}

fn number(v: &Value, key: &'static str) -> Result<f64, ModelError> {
    v.as_f64().ok_or(ModelError::WrongType { key, expected: "a number" })
}

fn string<'v>(v: &'v Value, key: &'static str) -> Result<&'v str, ModelError> {
    v.as_str().ok_or(ModelError::WrongType { key, expected: "a string" })
}

/// A whole number in `min..=MAX_INTEGER`; `min == 1` reports zero and negatives as
/// [`ModelError::NonPositive`].
fn integer(v: &Value, key: &'static str, min: u64) -> Result<u64, ModelError> {
    let found = v.as_f64().ok_or(ModelError::WrongType { key, expected: "a whole number" })?;
    finite(key, None, found)?;
    if min == 1 && found <= 0.0 {
        return Err(ModelError::NonPositive { key, index: None });
    }
    if found.fract() != 0.0 || found < min as f64 || found > MAX_INTEGER as f64 {
        return Err(ModelError::IntegerRange { key, min, found });
    }
    // Exact: a whole number within 0..=2^53 - 1.
    Ok(found as u64)
}

/// A per-feature array of numbers; finiteness is left to [`Model::validate`].
fn per_feature(v: &Value, key: &'static str) -> Result<[f64; N_FEATURES], ModelError> {
    let wrong = ModelError::WrongType { key, expected: "an array of numbers" };
    let items = v.as_array().ok_or_else(|| wrong.clone())?;
    if items.len() != N_FEATURES {
        return Err(ModelError::ArrayLength { key, found: items.len(), expected: N_FEATURES });
    }
    let mut out = [0.0; N_FEATURES];
    for (o, item) in out.iter_mut().zip(items) {
        *o = item.as_f64().ok_or_else(|| wrong.clone())?;
    }
    Ok(out)
}

fn check_features(v: &Value) -> Result<(), ModelError> {
    let wrong = ModelError::WrongType { key: "features", expected: "an array of strings" };
    let items = v.as_array().ok_or_else(|| wrong.clone())?;
    if items.len() != N_FEATURES {
        return Err(ModelError::FeatureCount { found: items.len(), expected: N_FEATURES });
    }
    for (index, (item, &expected)) in items.iter().zip(FEATURE_NAMES.iter()).enumerate() {
        let found = item.as_str().ok_or_else(|| wrong.clone())?;
        if found != expected {
            return Err(ModelError::FeatureName { index, found: found.to_string(), expected });
        }
    }
    Ok(())
}

/// Builds a model from parsed JSON: structure, types, lengths and names. Value checks are
/// [`Model::validate`]'s.
fn from_value(value: &Value) -> Result<Model, ModelError> {
    let top = Members(value.as_object().ok_or(ModelError::WrongType { key: "", expected: "a JSON object" })?);
    let format = string(top.get("format", "format")?, "format")?;
    if format != MODEL_FORMAT {
        return Err(ModelError::Format(format.to_string()));
    }
    let version = number(top.get("version", "version")?, "version")?;
    if version != f64::from(MODEL_VERSION) {
        return Err(ModelError::Version { found: version, supported: MODEL_VERSION });
    }
    top.reject_unknown(&KEYS, "")?;

    let horizon_ns = integer(top.get("horizon_ns", "horizon_ns")?, "horizon_ns", 1)?;
    let clip = number(top.get("clip", "clip")?, "clip")?;
    check_features(top.get("features", "features")?)?;
    let mean = per_feature(top.get("mean", "mean")?, "mean")?;
    let scale = per_feature(top.get("scale", "scale")?, "scale")?;
    let weights = per_feature(top.get("weights", "weights")?, "weights")?;
    let bias = number(top.get("bias", "bias")?, "bias")?;

    let meta = top.get("meta", "meta")?;
    let meta = Members(meta.as_object().ok_or(ModelError::WrongType { key: "meta", expected: "an object" })?);
    meta.reject_unknown(&META_KEYS, "meta.")?;
    let trained_on = string(meta.get("trained_on", "meta.trained_on")?, "meta.trained_on")?.to_string();
    let snapshots = integer(meta.get("snapshots", "meta.snapshots")?, "meta.snapshots", 0)?;
    let l2 = number(meta.get("l2", "meta.l2")?, "meta.l2")?;

    Ok(Model { horizon_ns, mean, scale, clip, weights, bias, meta: ModelMeta { trained_on, snapshots, l2 } })
}

#[cfg(test)]
mod tests;
