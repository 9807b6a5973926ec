//! The writer, read back by the library's reader: bit-exact round trips, the file's layout, and
//! what an invalid model becomes. (The reader's own checks are the core's model tests.)

use super::*;
use harmonizer_core::predict::model::{ModelError, ModelMeta};
use harmonizer_core::predict::{FEATURE_NAMES, N_FEATURES};
use proptest::prelude::*;

/// The largest integer a model file stores: 2^53 - 1.
const MAX_INTEGER: u64 = (1 << 53) - 1;

/// Awkward but valid floats: extremes, subnormals, negative zero, values with no short decimal.
const AWKWARD: [f64; 8] = [1e-300, -0.0, 123456.789, 1.0 / 3.0, 5e-324, f64::MAX, -1e16, 0.1];

fn awkward() -> Model {
    let pick = |i: usize, k: usize| AWKWARD[(i + k) % AWKWARD.len()];
    Model {
        horizon_ns: MAX_INTEGER,
        mean: std::array::from_fn(|i| pick(i, 0)),
        scale: std::array::from_fn(|i| pick(i, 3).abs().max(5e-324)),
        clip: 1.0 / 3.0,
        weights: std::array::from_fn(|i| -pick(i, 5)),
        bias: -1e-300,
        meta: ModelMeta {
            trained_on: "mix \"A\"\n\tλ 😀 \\ \u{1} /".to_string(),
            snapshots: MAX_INTEGER,
            l2: -0.0,
        },
    }
}

fn simple() -> Model {
    Model {
        horizon_ns: 2_000_000_000,
        mean: [0.0; N_FEATURES],
        scale: [1.0; N_FEATURES],
        clip: 4.0,
        weights: [0.5; N_FEATURES],
        bias: -3.5,
        meta: ModelMeta { trained_on: "t".to_string(), snapshots: 10, l2: 1.0 },
    }
}

fn float_bits(m: &Model) -> Vec<u64> {
    let mut v: Vec<u64> = [m.clip, m.bias, m.meta.l2].iter().map(|f| f.to_bits()).collect();
    v.extend(m.mean.iter().chain(&m.scale).chain(&m.weights).map(|f| f.to_bits()));
    v
}

fn assert_bit_identical(a: &Model, b: &Model) {
    assert_eq!(float_bits(a), float_bits(b));
    assert_eq!(
        (a.horizon_ns, &a.meta.trained_on, a.meta.snapshots),
        (b.horizon_ns, &b.meta.trained_on, b.meta.snapshots)
    );
}

fn array(f: impl Fn(usize) -> String, n: usize) -> String {
    format!("[{}]", (0..n).map(f).collect::<Vec<_>>().join(", "))
}

#[test]
fn writer() {
    let mut s = String::new();
    write_number_array(&mut s, &[1.0, -0.0, 1e-7, 1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
    assert_eq!(s, "[1.0, -0.0, 1e-7, 1e300, 1e999, -1e999, null]");
    let strings = ["a\"b", "\\", "\n\u{1}é"];
    let mut s = String::new();
    write_string_array(&mut s, &strings);
    assert_eq!(s, r#"["a\"b", "\\", "\n\u0001é"]"#);
    // Each string reads back as itself (the library's reader, through a model).
    for text in strings {
        let mut m = simple();
        m.meta.trained_on = text.to_string();
        assert_eq!(Model::from_json(&model_to_json(&m)).unwrap().meta.trained_on, text);
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let m = awkward();
    m.validate().unwrap();
    let text = model_to_json(&m);
    let back = Model::from_json(&text).unwrap();
    assert_bit_identical(&m, &back);
    assert_eq!(model_to_json(&back), text);
    assert!(back.mean[1].is_sign_negative() && back.mean[1] == 0.0);
    assert!(text.contains("1e-300") && text.contains("123456.789") && text.contains("0.3333333333333333"));
    assert!(text.contains("5e-324") && text.contains("-0.0") && text.contains("1.7976931348623157e308"));
}

#[test]
fn golden_layout() {
    let zeros = array(|_| "0.0".into(), N_FEATURES);
    let ones = array(|_| "1.0".into(), N_FEATURES);
    let halves = array(|_| "0.5".into(), N_FEATURES);
    let features = array(|i| format!("\"{}\"", FEATURE_NAMES[i]), N_FEATURES);
    let expected = format!(
        "{{\n  \"format\": \"harmonizer-predictor\",\n  \"version\": 1,\n  \"horizon_ns\": 2000000000,\n  \
         \"clip\": 4.0,\n  \"features\": {features},\n  \"mean\": {zeros},\n  \"scale\": {ones},\n  \
         \"weights\": {halves},\n  \"bias\": -3.5,\n  \"meta\": {{\n    \"trained_on\": \"t\",\n    \
         \"snapshots\": 10,\n    \"l2\": 1.0\n  }}\n}}\n"
    );
    assert_eq!(model_to_json(&simple()), expected);
    assert_eq!(Model::from_json(&expected), Ok(simple()));
}

#[test]
fn trailing_text_after_a_written_model_is_refused() {
    let trailing = format!("{} x", model_to_json(&simple()));
    assert!(matches!(Model::from_json(&trailing), Err(ModelError::Json { .. })));
}

#[test]
fn invalid_models_are_written_as_json_and_refused_on_reading() {
    let check = |edit: fn(&mut Model), want: ModelError| {
        let mut m = simple();
        edit(&mut m);
        assert_eq!(m.validate(), Err(want.clone()));
        // What the writer writes for an invalid model is refused on reading, and is still JSON.
        let text = model_to_json(&m);
        assert!(!text.contains("inf") && !text.contains("NaN"), "{text}");
        let e = Model::from_json(&text).unwrap_err();
        assert!(e.code() != "json", "{e}");
    };
    check(|m| m.horizon_ns = 0, ModelError::NonPositive { key: "horizon_ns", index: None });
    check(
        |m| m.horizon_ns = u64::MAX,
        ModelError::IntegerRange { key: "horizon_ns", min: 1, found: u64::MAX as f64 },
    );
    check(|m| m.clip = f64::NAN, ModelError::NotFinite { key: "clip", index: None });
    check(|m| m.clip = 0.0, ModelError::NonPositive { key: "clip", index: None });
    check(|m| m.mean[7] = f64::INFINITY, ModelError::NotFinite { key: "mean", index: Some(7) });
    check(|m| m.scale[2] = -1.0, ModelError::NonPositive { key: "scale", index: Some(2) });
    check(|m| m.weights[9] = f64::NAN, ModelError::NotFinite { key: "weights", index: Some(9) });
    check(|m| m.bias = f64::NEG_INFINITY, ModelError::NotFinite { key: "bias", index: None });
    check(|m| m.meta.l2 = f64::NAN, ModelError::NotFinite { key: "meta.l2", index: None });
    check(
        |m| m.meta.snapshots = 1 << 60,
        ModelError::IntegerRange { key: "meta.snapshots", min: 0, found: 2f64.powi(60) },
    );
}

#[test]
fn load_from_disk() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("harmonizer-model-test-{}.json", std::process::id()));
    std::fs::write(&path, model_to_json(&awkward())).unwrap();
    let loaded = Model::load(&path);
    let _ = std::fs::remove_file(&path);
    assert_bit_identical(&loaded.unwrap(), &awkward());
}

#[test]
fn the_shipped_model_is_what_the_writer_writes() {
    // The default model file, read by the library and written again, is the same bytes.
    let text = harmonizer_core::predict::policy::DEFAULT_MODEL_JSON;
    assert_eq!(model_to_json(&Model::from_json(text).unwrap()), text);
}

/// Tokens that make mutations likely to stay near-valid and reach the model checks.
const TOKENS: [&str; 16] =
    ["1e999", "-", "0", "\"", "{", "}", "[", "]", ",", ":", "null", "\\u", "\\ud800", "é", "1.5", "\"x\": 1"];

/// Up to 5 edits: (operation, where, a byte, a token). Operations 4..8 insert a token.
fn edits() -> impl Strategy<Value = Vec<(u8, prop::sample::Index, u8, usize)>> {
    prop::collection::vec((0u8..8, any::<prop::sample::Index>(), any::<u8>(), 0..TOKENS.len()), 1..6)
}

fn finite_from_bits(bits: u64) -> f64 {
    let v = f64::from_bits(bits);
    if v.is_finite() {
        v
    } else {
        1.5
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence }, ..ProptestConfig::default() })]

    #[test]
    fn finite_numbers_round_trip_bit_exactly(bits in any::<u64>()) {
        let v = f64::from_bits(bits);
        prop_assume!(v.is_finite());
        let mut s = String::new();
        write_number(&mut s, v);
        // Read back by the library's reader, as a model's bias (any finite number).
        let mut m = simple();
        m.bias = v;
        let back = Model::from_json(&model_to_json(&m)).unwrap();
        prop_assert_eq!(back.bias.to_bits(), v.to_bits(), "{}", s);
        let line = format!("\"bias\": {s},");
        prop_assert!(model_to_json(&m).contains(&line), "{}", line);
    }

    #[test]
    fn strings_round_trip(text in any::<String>()) {
        let mut m = simple();
        m.meta.trained_on = text.clone();
        let back = Model::from_json(&model_to_json(&m)).unwrap();
        prop_assert_eq!(back.meta.trained_on, text);
    }

    #[test]
    fn mutated_files_never_panic(edits in edits()) {
        let mut bytes = model_to_json(&awkward()).into_bytes();
        for (op, at, byte, token) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => drop(bytes.remove(i)),
                3 => bytes.truncate(i),
                _ => drop(bytes.splice(i..i, TOKENS[token].bytes())),
            }
        }
        if let Ok(m) = Model::from_json_bytes(&bytes) {
            prop_assert_eq!(m.validate(), Ok(()));
            prop_assert_eq!(Model::from_json(&model_to_json(&m)).map(|b| float_bits(&b)), Ok(float_bits(&m)));
        }
    }

    #[test]
    fn valid_models_round_trip(
        mean in prop::collection::vec(any::<u64>(), N_FEATURES),
        scale in prop::collection::vec(any::<u64>(), N_FEATURES),
        weights in prop::collection::vec(any::<u64>(), N_FEATURES),
        scalars in prop::array::uniform3(any::<u64>()),
        horizon_ns in 1..=MAX_INTEGER,
        snapshots in 0..=MAX_INTEGER,
        trained_on in any::<String>(),
    ) {
        let positive = |b: u64| {
            let v = finite_from_bits(b).abs();
            if v > 0.0 { v } else { 1.0 }
        };
        let m = Model {
            horizon_ns,
            mean: std::array::from_fn(|i| finite_from_bits(mean[i])),
            scale: std::array::from_fn(|i| positive(scale[i])),
            clip: positive(scalars[0]),
            weights: std::array::from_fn(|i| finite_from_bits(weights[i])),
            bias: finite_from_bits(scalars[1]),
            meta: ModelMeta { trained_on, snapshots, l2: finite_from_bits(scalars[2]) },
        };
        prop_assert_eq!(m.validate(), Ok(()));
        let back = Model::from_json(&model_to_json(&m)).unwrap();
        prop_assert_eq!(float_bits(&back), float_bits(&m));
        prop_assert_eq!(back.meta, m.meta);
        prop_assert_eq!(back.horizon_ns, m.horizon_ns);
    }
}
