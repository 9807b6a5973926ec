//! The model reader and validation. The writer (`harmonizer_sim::json::model_to_json`) is
//! tested there, read back by this reader: bit-exact round trips of awkward and random models,
//! its golden layout, invalid models written and refused, mutated written files.

use super::*;
use proptest::prelude::*;

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

fn array(f: impl Fn(usize) -> String, n: usize) -> String {
    format!("[{}]", (0..n).map(f).collect::<Vec<_>>().join(", "))
}

fn names(n: usize) -> String {
    array(|i| format!("\"{}\"", FEATURE_NAMES.get(i).copied().unwrap_or("extra")), n)
}

/// The simple model's file as (key, raw JSON) pairs, with `changes` applied: `Some` replaces (or
/// appends) a key's raw value, `None` removes it.
fn file_with(changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(String, String)> = vec![
        ("format".into(), "\"harmonizer-predictor\"".into()),
        ("version".into(), "1".into()),
        ("horizon_ns".into(), "2000000000".into()),
        ("clip".into(), "4.0".into()),
        ("features".into(), names(N_FEATURES)),
        ("mean".into(), array(|_| "0.0".into(), N_FEATURES)),
        ("scale".into(), array(|_| "1.0".into(), N_FEATURES)),
        ("weights".into(), array(|_| "0.5".into(), N_FEATURES)),
        ("bias".into(), "-3.5".into()),
        ("meta".into(), r#"{"trained_on": "t", "snapshots": 10, "l2": 1.0}"#.into()),
    ];
    for &(key, raw) in changes {
        let at = pairs.iter().position(|(k, _)| k == key);
        match (at, raw) {
            (Some(i), Some(raw)) => pairs[i].1 = raw.to_string(),
            (Some(i), None) => drop(pairs.remove(i)),
            (None, Some(raw)) => pairs.push((key.to_string(), raw.to_string())),
            (None, None) => {}
        }
    }
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn load_with(changes: &[(&str, Option<&str>)]) -> Result<Model, ModelError> {
    Model::from_json(&file_with(changes))
}

/// An array of per-feature numbers with entry `i` replaced by `raw`.
fn numbers_with(i: usize, raw: &str, fill: &str) -> String {
    array(|j| if j == i { raw.to_string() } else { fill.to_string() }, N_FEATURES)
}

#[test]
fn the_base_file_loads() {
    assert_eq!(load_with(&[]), Ok(simple()));
    let awkward = load_with(&[("meta", Some(AWKWARD_META))]).unwrap();
    assert_eq!(awkward.meta.trained_on, "mix \"A\"\n\tλ 😀 \\ \u{1} /");
    assert_eq!((awkward.meta.snapshots, awkward.meta.l2.to_bits()), (MAX_INTEGER, (-0.0f64).to_bits()));
}

#[test]
fn golden_layout() {
    let zeros = array(|_| "0.0".into(), N_FEATURES);
    let ones = array(|_| "1.0".into(), N_FEATURES);
    let halves = array(|_| "0.5".into(), N_FEATURES);
    let features = names(N_FEATURES);
    // The writer's layout (pinned by its golden test in harmonizer-sim) reads as the model.
    let pretty = format!(
        "{{\n  \"format\": \"harmonizer-predictor\",\n  \"version\": 1,\n  \"horizon_ns\": 2000000000,\n  \
         \"clip\": 4.0,\n  \"features\": {features},\n  \"mean\": {zeros},\n  \"scale\": {ones},\n  \
         \"weights\": {halves},\n  \"bias\": -3.5,\n  \"meta\": {{\n    \"trained_on\": \"t\",\n    \
         \"snapshots\": 10,\n    \"l2\": 1.0\n  }}\n}}\n"
    );
    assert_eq!(Model::from_json(&pretty), Ok(simple()));
    // Key order and whitespace are free; integers may be written in any number form.
    let compact = format!(
        "{{\"meta\":{{\"l2\":1,\"snapshots\":1e1,\"trained_on\":\"t\"}},\"bias\":-35e-1,\
         \"weights\":{halves},\"scale\":{ones},\"mean\":{zeros},\"features\":{features},\"clip\":4,\
         \"horizon_ns\":2e9,\"version\":1.0,\"format\":\"harmonizer-predictor\"}}"
    );
    assert_eq!(Model::from_json(&compact), Ok(simple()), "{compact}");
}

#[test]
fn logit_and_standardise() {
    let mut m = simple();
    assert_eq!(m.logit(&[0.0; N_FEATURES]), -3.5);
    assert_eq!(m.logit(&[1.0; N_FEATURES]), -3.5 + N_FEATURES as f64 * 0.5);
    assert_eq!(m.logit(&[100.0; N_FEATURES]), -3.5 + N_FEATURES as f64 * 0.5 * 4.0);
    assert_eq!(m.logit(&[-100.0; N_FEATURES]), -3.5 - N_FEATURES as f64 * 0.5 * 4.0);
    m.weights = [0.0; N_FEATURES];
    m.weights[2] = -2.0;
    m.mean[2] = 1.0;
    m.scale[2] = 4.0;
    let mut x = [7.0; N_FEATURES];
    x[2] = 3.0;
    assert_eq!(m.logit(&x), -3.5 + -2.0 * 0.5);
    let mut z = [f64::NAN; N_FEATURES];
    m.standardise(&x, &mut z);
    assert_eq!(z[2], 0.5);
    assert_eq!(z[0], 4.0);
    let direct: f64 = m.bias + z.iter().zip(&m.weights).map(|(z, w)| z * w).sum::<f64>();
    assert_eq!(m.logit(&x), direct);
    x[2] = f64::NAN;
    assert!(m.logit(&x).is_nan());
    // An invalid model never panics.
    m.clip = f64::NAN;
    let _ = m.logit(&x);
    m.clip = -1.0;
    m.standardise(&x, &mut z);
}

#[test]
fn json_and_encoding_errors() {
    assert_eq!(
        Model::from_json("{"),
        Err(ModelError::Json { offset: 1, msg: "unexpected end of input in object" })
    );
    let trailing = format!("{} x", file_with(&[]));
    assert!(matches!(Model::from_json(&trailing), Err(ModelError::Json { .. })));
    assert_eq!(Model::from_json_bytes(b"{\"a\xff\"}"), Err(ModelError::NotUtf8 { offset: 3 }));
    assert_eq!(Model::from_json("[]"), Err(ModelError::WrongType { key: "", expected: "a JSON object" }));
    assert_eq!(
        ModelError::WrongType { key: "", expected: "a JSON object" }.to_string(),
        "a model file must be a JSON object"
    );
    let dup = file_with(&[]).replacen("\"bias\": -3.5", "\"bias\": -3.5, \"bias\": 1", 1);
    assert!(matches!(Model::from_json(&dup), Err(ModelError::Json { msg: "duplicate key in object", .. })));
}

#[test]
fn format_and_version() {
    assert_eq!(load_with(&[("format", Some("\"other\""))]), Err(ModelError::Format("other".into())));
    assert_eq!(
        load_with(&[("format", Some("1"))]),
        Err(ModelError::WrongType { key: "format", expected: "a string" })
    );
    let v2 = load_with(&[("version", Some("2")), ("new_key", Some("1"))]).unwrap_err();
    assert_eq!(v2, ModelError::Version { found: 2.0, supported: 1 });
    assert_eq!(v2.to_string(), "model version 2 is not supported (this build reads version 1)");
    assert_eq!(
        load_with(&[("version", Some("1.5"))]).unwrap_err().to_string().split(" is").next(),
        Some("model version 1.5")
    );
    assert_eq!(
        load_with(&[("version", Some("\"1\""))]),
        Err(ModelError::WrongType { key: "version", expected: "a number" })
    );
    assert_eq!(load_with(&[("version", Some("1.0"))]), Ok(simple()));
}

#[test]
fn missing_and_unknown_keys() {
    for key in KEYS {
        assert_eq!(load_with(&[(key, None)]), Err(ModelError::MissingKey(key)), "{key}");
    }
    for (key, full) in [("trained_on", "meta.trained_on"), ("snapshots", "meta.snapshots"), ("l2", "meta.l2")]
    {
        let meta = r#"{"trained_on": "t", "snapshots": 10, "l2": 1.0}"#;
        let mut obj = json::parse(meta).unwrap().as_object().unwrap().to_vec();
        obj.retain(|(k, _)| k != key);
        let body: Vec<String> = obj
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("\"{k}\": \"{s}\""),
                v => format!("\"{k}\": {}", v.as_f64().unwrap()),
            })
            .collect();
        let raw = format!("{{{}}}", body.join(", "));
        assert_eq!(load_with(&[("meta", Some(&raw))]), Err(ModelError::MissingKey(full)));
    }
    assert_eq!(load_with(&[("weight", Some("1"))]), Err(ModelError::UnknownKey("weight".into())));
    let meta = r#"{"trained_on": "t", "snapshots": 10, "l2": 1.0, "seed": 3}"#;
    let e = load_with(&[("meta", Some(meta))]).unwrap_err();
    assert_eq!(e, ModelError::UnknownKey("meta.seed".into()));
    assert_eq!(e.to_string(), "model has an unknown key \"meta.seed\"");
    assert_eq!(
        load_with(&[("meta", Some("[]"))]),
        Err(ModelError::WrongType { key: "meta", expected: "an object" })
    );
}

#[test]
fn horizon_and_snapshots() {
    let nonpos = Err(ModelError::NonPositive { key: "horizon_ns", index: None });
    assert_eq!(load_with(&[("horizon_ns", Some("0"))]), nonpos);
    assert_eq!(load_with(&[("horizon_ns", Some("-5"))]), nonpos);
    assert_eq!(
        load_with(&[("horizon_ns", Some("1e999"))]),
        Err(ModelError::NotFinite { key: "horizon_ns", index: None })
    );
    let frac = load_with(&[("horizon_ns", Some("1.5"))]).unwrap_err();
    assert_eq!(frac, ModelError::IntegerRange { key: "horizon_ns", min: 1, found: 1.5 });
    assert_eq!(
        frac.to_string(),
        "horizon_ns must be a whole number from 1 to 9007199254740991 (2^53 - 1), found 1.5"
    );
    assert_eq!(load_with(&[("horizon_ns", Some("9007199254740991"))]).unwrap().horizon_ns, MAX_INTEGER);
    for big in ["9007199254740992", "9007199254740993", "1e300"] {
        assert_eq!(load_with(&[("horizon_ns", Some(big))]).unwrap_err().code(), "integer_range", "{big}");
    }
    assert!(matches!(
        load_with(&[("horizon_ns", Some("\"2s\""))]),
        Err(ModelError::WrongType { key: "horizon_ns", .. })
    ));
    let meta = |s: &str| format!(r#"{{"trained_on": "t", "snapshots": {s}, "l2": 1.0}}"#);
    assert_eq!(load_with(&[("meta", Some(&meta("0")))]).unwrap().meta.snapshots, 0);
    for bad in ["-1", "0.5", "1e16"] {
        let e = load_with(&[("meta", Some(&meta(bad)))]).unwrap_err();
        assert!(matches!(e, ModelError::IntegerRange { key: "meta.snapshots", min: 0, .. }), "{bad}: {e}");
    }
}

#[test]
fn features_must_match_this_build() {
    let e = load_with(&[("features", Some(&names(12)))]).unwrap_err();
    assert_eq!(e, ModelError::FeatureCount { found: 12, expected: N_FEATURES });
    assert_eq!(e.to_string(), format!("model has 12 features, this build computes {N_FEATURES}"));
    let swapped = names(N_FEATURES).replacen(&format!("\"{}\"", FEATURE_NAMES[3]), "\"bogus\"", 1);
    let e = load_with(&[("features", Some(&swapped))]).unwrap_err();
    assert_eq!(e, ModelError::FeatureName { index: 3, found: "bogus".into(), expected: FEATURE_NAMES[3] });
    assert!(e.to_string().starts_with("features[3] is \"bogus\""));
    let wrong = Err(ModelError::WrongType { key: "features", expected: "an array of strings" });
    assert_eq!(load_with(&[("features", Some("\"load_burst\""))]), wrong);
    let with_number = names(N_FEATURES).replacen(&format!("\"{}\"", FEATURE_NAMES[0]), "7", 1);
    assert_eq!(load_with(&[("features", Some(&with_number))]), wrong);
}

#[test]
fn per_feature_arrays() {
    let short = array(|_| "0.0".into(), N_FEATURES - 1);
    let e = load_with(&[("mean", Some(&short))]).unwrap_err();
    assert_eq!(e, ModelError::ArrayLength { key: "mean", found: N_FEATURES - 1, expected: N_FEATURES });
    assert_eq!(
        e.to_string(),
        format!("mean has {} entries, expected {N_FEATURES} (one per feature)", N_FEATURES - 1)
    );
    let long = array(|_| "0.5".into(), N_FEATURES + 1);
    assert_eq!(load_with(&[("weights", Some(&long))]).unwrap_err().code(), "array_length");
    let wrong = Err(ModelError::WrongType { key: "scale", expected: "an array of numbers" });
    assert_eq!(load_with(&[("scale", Some(&numbers_with(4, "null", "1.0")))]), wrong);
    assert_eq!(load_with(&[("scale", Some("{}"))]), wrong);

    let e = load_with(&[("weights", Some(&numbers_with(3, "1e999", "0.5")))]).unwrap_err();
    assert_eq!(e, ModelError::NotFinite { key: "weights", index: Some(3) });
    assert_eq!(e.to_string(), "weights[3] is not a finite number");
    let e = load_with(&[("mean", Some(&numbers_with(0, "-1e999", "0.0")))]);
    assert_eq!(e, Err(ModelError::NotFinite { key: "mean", index: Some(0) }));
    let e = load_with(&[("scale", Some(&numbers_with(15, "1e400", "1.0")))]);
    assert_eq!(e, Err(ModelError::NotFinite { key: "scale", index: Some(15) }));
    for bad in ["0", "-0.0", "-2.5", "1e-999"] {
        let e = load_with(&[("scale", Some(&numbers_with(5, bad, "1.0")))]).unwrap_err();
        assert_eq!(e, ModelError::NonPositive { key: "scale", index: Some(5) }, "{bad}");
        assert_eq!(e.to_string(), "scale[5] must be greater than zero");
    }
}

#[test]
fn scalars() {
    let clip0 = load_with(&[("clip", Some("0"))]).unwrap_err();
    assert_eq!(clip0, ModelError::NonPositive { key: "clip", index: None });
    assert_eq!(clip0.to_string(), "clip must be greater than zero");
    assert_eq!(load_with(&[("clip", Some("-1"))]).unwrap_err().code(), "non_positive");
    assert_eq!(
        load_with(&[("clip", Some("1e999"))]),
        Err(ModelError::NotFinite { key: "clip", index: None })
    );
    assert_eq!(
        load_with(&[("clip", Some("true"))]),
        Err(ModelError::WrongType { key: "clip", expected: "a number" })
    );
    let e = load_with(&[("bias", Some("-1e999"))]).unwrap_err();
    assert_eq!(e.to_string(), "bias is not a finite number");
    let meta = r#"{"trained_on": "t", "snapshots": 10, "l2": 1e999}"#;
    assert_eq!(
        load_with(&[("meta", Some(meta))]),
        Err(ModelError::NotFinite { key: "meta.l2", index: None })
    );
    let meta = r#"{"trained_on": 5, "snapshots": 10, "l2": 1}"#;
    assert_eq!(
        load_with(&[("meta", Some(meta))]),
        Err(ModelError::WrongType { key: "meta.trained_on", expected: "a string" })
    );
}

#[test]
fn validate_hand_built_models() {
    let check = |edit: fn(&mut Model), want: ModelError| {
        let mut m = simple();
        edit(&mut m);
        assert_eq!(m.validate(), Err(want));
        // What the writer writes for an invalid model, and that it is refused on reading: in
        // harmonizer-sim's json tests.
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
fn codes_are_distinct_and_messages_one_line() {
    let all = [
        ModelError::Io("x: gone".into()),
        ModelError::NotUtf8 { offset: 1 },
        ModelError::Json { offset: 1, msg: "m" },
        ModelError::Format("a\nb".into()),
        ModelError::Version { found: 2.0, supported: 1 },
        ModelError::MissingKey("bias"),
        ModelError::UnknownKey("x\ny".into()),
        ModelError::WrongType { key: "clip", expected: "a number" },
        ModelError::FeatureCount { found: 1, expected: 2 },
        ModelError::FeatureName { index: 0, found: "\n".into(), expected: "a" },
        ModelError::ArrayLength { key: "mean", found: 1, expected: 2 },
        ModelError::NotFinite { key: "bias", index: None },
        ModelError::NonPositive { key: "clip", index: None },
        ModelError::IntegerRange { key: "horizon_ns", min: 1, found: 0.5 },
    ];
    let mut codes: Vec<&str> = all.iter().map(ModelError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    for e in &all {
        assert!(!e.to_string().contains('\n'), "{e:?}");
        let _: &dyn std::error::Error = e;
    }
    assert!(ModelError::Version { found: 1e300, supported: 1 }.to_string().contains("version 1e300 is"));
}

#[test]
fn load_from_disk() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("harmonizer-model-test-{}.json", std::process::id()));
    std::fs::write(&path, file_with(&[])).unwrap();
    let loaded = Model::load(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded, Ok(simple()));
    let missing = dir.join("harmonizer-no-such-model-file.json");
    let e = Model::load(&missing).unwrap_err();
    assert_eq!(e.code(), "io");
    assert!(e.to_string().contains("harmonizer-no-such-model-file.json"), "{e}");
}

/// A `meta` with escapes, non-ASCII text and an awkward number, so mutations meet them.
const AWKWARD_META: &str =
    r#"{"trained_on": "mix \"A\"\n\tλ 😀 \\ \u0001 /", "snapshots": 9007199254740991, "l2": -0.0}"#;

/// Tokens that make mutations likely to stay near-valid and reach the model checks.
const TOKENS: [&str; 16] =
    ["1e999", "-", "0", "\"", "{", "}", "[", "]", ",", ":", "null", "\\u", "\\ud800", "é", "1.5", "\"x\": 1"];

/// Up to 5 edits: (operation, where, a byte, a token). Operations 4..8 insert a token.
fn edits() -> impl Strategy<Value = Vec<(u8, prop::sample::Index, u8, usize)>> {
    prop::collection::vec((0u8..8, any::<prop::sample::Index>(), any::<u8>(), 0..TOKENS.len()), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence }, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Model::from_json_bytes(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(edits in edits()) {
        // A written awkward model mutated the same way, and read back and written again, is in
        // harmonizer-sim's json tests.
        let mut bytes = file_with(&[("meta", Some(AWKWARD_META))]).into_bytes();
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
        }
    }
}

/// Issue 19, defect 5: a model that never ends (`/dev/zero`), a directory, and one over the
/// limit are refused before they are read in full, each with a reason that names it.
#[test]
#[cfg_attr(miri, ignore = "files")]
fn model_files_are_bounded_and_regular() {
    let e = read_model_file(Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(&e, ModelError::Io(m) if m.contains("not a regular file")), "{e}");
    let e = read_model_file(&std::env::temp_dir()).unwrap_err();
    assert!(matches!(&e, ModelError::Io(m) if m.contains("not a regular file")), "{e}");
    let path = std::env::temp_dir().join(format!("hz-model-too-big-{}.json", std::process::id()));
    std::fs::write(&path, vec![b' '; MAX_MODEL_BYTES + 1]).unwrap();
    let e = Model::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(e, ModelError::TooLarge { len: MAX_MODEL_BYTES as u64 + 1, limit: MAX_MODEL_BYTES });
    assert!(e.to_string().contains("limit of 1048576 bytes"), "{e}");
    let e = Model::from_json_bytes(&vec![b' '; MAX_MODEL_BYTES + 1]).unwrap_err();
    assert!(matches!(e, ModelError::TooLarge { .. }));
    // At the limit, the file is read and judged on its content.
    let mut at_limit = file_with(&[]);
    at_limit.push_str(&" ".repeat(MAX_MODEL_BYTES - at_limit.len()));
    assert!(Model::from_json(&at_limit).is_ok());
}
