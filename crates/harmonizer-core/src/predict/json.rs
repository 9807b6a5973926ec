//! A minimal, strict JSON reader: what the model file needs. Private to the crate: it is not a
//! JSON API. (Models are written by `harmonizer_sim::json`, the offline work that trains them.)
//!
//! The predictor's model file (see [`crate::predict::model`]) is JSON so that people can read,
//! diff and hand-edit it. The library takes no serialisation dependency, so this module carries a
//! small recursive-descent parser for RFC 8259 JSON, and nothing more:
//!
//! - The whole input must be exactly one JSON value, optionally surrounded by whitespace
//!   (space, tab, line feed, carriage return). Anything after it is an error, as is a byte order
//!   mark.
//! - Numbers follow the RFC grammar exactly (`-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`:
//!   no leading zeros, no leading `+`, no bare `.5` or `5.`, no `NaN` or `Infinity`) and are then
//!   converted with Rust's correctly rounded `str::parse::<f64>`. A number too large for an `f64`,
//!   such as `1e999`, becomes an infinity here; callers that need finite values (the model does)
//!   must check, which lets them name the offending field.
//! - Strings accept the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`, with UTF-16 surrogate pairs
//!   combined and lone surrogates rejected. Raw control characters (below U+0020) are rejected.
//! - Objects keep their keys in file order; a key repeated within one object is an error.
//! - Arrays and objects nest at most [`MAX_DEPTH`] deep, so hostile input cannot exhaust the
//!   stack.
//!
//! Every error is a [`JsonError`]: a byte offset into the input and a fixed message. The parser
//! never panics, whatever the input.

use std::collections::HashSet;
use std::fmt;

/// How deeply arrays and objects may nest. A top-level array is depth 1.
pub const MAX_DEPTH: usize = 32;

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number. Out-of-range literals such as `1e999` are infinite.
    Number(f64),
    /// A string, escapes decoded.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object: its members in file order. Keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members in file order, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The member named `key`, if this is an object that has one (the model reader looks
    /// members up itself, to name missing keys).
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Why the input is not (acceptable) JSON: where, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonError {
    /// Byte offset into the input at which the problem was found.
    pub offset: usize,
    /// What is wrong, e.g. `"leading zero in number"`.
    pub msg: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.msg, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Parses `text` as exactly one JSON value (see the module docs for the precise rules).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser { s: text, b: text.as_bytes(), at: 0 };
    if p.b.starts_with("\u{feff}".as_bytes()) {
        return Err(p.err("byte order mark is not allowed"));
    }
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.at != p.b.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &'static str) -> JsonError {
        JsonError { offset: self.at, msg }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, JsonError> {
        if self.b[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal (expected true, false or null)"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err("unexpected end of input, expected a value")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(_) => Err(self.err("unexpected character, expected a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("arrays and objects nested too deeply"));
        }
        self.at += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.err("unexpected end of input in array")),
                Some(_) => return Err(self.err("expected ',' or ']' in array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("arrays and objects nested too deeply"));
        }
        self.at += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut key_offsets = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.err("unexpected end of input in object")),
                Some(_) => return Err(self.err("expected a string key in object")),
            }
            key_offsets.push(self.at);
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':' after object key"));
            }
            self.at += 1;
            self.ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                None => return Err(self.err("unexpected end of input in object")),
                Some(_) => return Err(self.err("expected ',' or '}' in object")),
            }
        }
        let mut seen = HashSet::with_capacity(members.len());
        for ((k, _), offset) in members.iter().zip(key_offsets) {
            if !seen.insert(k.as_str()) {
                return Err(JsonError { offset, msg: "duplicate key in object" });
            }
        }
        Ok(Value::Object(members))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("expected 4 hex digits after \\u")),
            };
            v = v * 16 + u32::from(d);
            self.at += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1; // opening '"'
        let mut out = String::new();
        let mut run = self.at;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    out.push_str(&self.s[run..self.at]);
                    self.at += 1;
                    return Ok(out);
                }
                Some(c) if c < 0x20 => return Err(self.err("control character in string (must be escaped)")),
                Some(b'\\') => {
                    out.push_str(&self.s[run..self.at]);
                    self.escape(&mut out)?;
                    run = self.at;
                }
                // Other bytes, including every byte of a multi-byte UTF-8 character, are copied
                // as one run; the run's ends are always on character boundaries.
                Some(_) => self.at += 1,
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let start = self.at;
        self.at += 1; // '\'
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.at += 1;
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if !self.b[self.at..].starts_with(b"\\u") {
                        return Err(JsonError { offset: start, msg: "unpaired UTF-16 high surrogate" });
                    }
                    self.at += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(JsonError { offset: start, msg: "unpaired UTF-16 high surrogate" });
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(JsonError { offset: start, msg: "unpaired UTF-16 low surrogate" });
                } else {
                    hi
                };
                // Surrogates are excluded above, so this always succeeds.
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                return Ok(());
            }
            None => return Err(self.err("unterminated string")),
            Some(_) => return Err(self.err("invalid escape in string")),
        };
        self.at += 1;
        out.push(c);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err("leading zero in number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expected a digit in number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.err("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        // The grammar above is a subset of what `f64::from_str` accepts, so this cannot fail.
        self.s[start..self.at]
            .parse::<f64>()
            .map(Value::Number)
            .map_err(|_| JsonError { offset: start, msg: "invalid number" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(text: &str) -> JsonError {
        parse(text).unwrap_err()
    }

    fn num(text: &str) -> f64 {
        parse(text).unwrap().as_f64().unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(parse("null"), Ok(Value::Null));
        assert_eq!(parse(" true "), Ok(Value::Bool(true)));
        assert_eq!(parse("\t\r\nfalse\n"), Ok(Value::Bool(false)));
        assert_eq!(parse("\"hi\""), Ok(Value::String("hi".into())));
        assert_eq!(num("0"), 0.0);
        assert!(num("-0").is_sign_negative());
        assert_eq!(num("-12.5e2"), -1250.0);
        assert_eq!(num("1E+2"), 100.0);
        assert_eq!(num("1e-2"), 0.01);
        assert_eq!(num("123456.789"), 123456.789);
        assert_eq!(num("1e999"), f64::INFINITY);
        assert_eq!(num("-1e999"), f64::NEG_INFINITY);
        assert_eq!(num("1e-999"), 0.0);
        assert_eq!(num("1e99999999999999999999999"), f64::INFINITY);
        let long = format!("0.{}1", "0".repeat(5000));
        assert_eq!(num(&long), 0.0);
    }

    #[test]
    fn number_grammar_is_strict() {
        for bad in
            ["01", "-01", "00", "+1", ".5", "5.", "-", "1e", "1e+", "1.e3", "-.5", "0x10", "NaN", "Infinity"]
        {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(err("01"), JsonError { offset: 1, msg: "leading zero in number" });
        assert_eq!(err("[1, 02]"), JsonError { offset: 5, msg: "leading zero in number" });
        assert_eq!(err("5."), JsonError { offset: 2, msg: "expected a digit after the decimal point" });
    }

    #[test]
    fn string_escapes() {
        let v = parse(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti"));
        assert_eq!(parse(r#""\u00e9\u00E9\u20ac""#).unwrap().as_str(), Some("éé€"));
        assert_eq!(parse(r#""\ud83d\ude00""#).unwrap().as_str(), Some("😀"));
        assert_eq!(parse(r#""x\uD834\uDD1Ey""#).unwrap().as_str(), Some("x𝄞y"));
        assert_eq!(parse("\"raw é 😀\"").unwrap().as_str(), Some("raw é 😀"));
        assert_eq!(parse(r#""\u0000""#).unwrap().as_str(), Some("\0"));
    }

    #[test]
    fn bad_strings() {
        assert_eq!(err(r#""\ud83d""#).msg, "unpaired UTF-16 high surrogate");
        assert_eq!(err(r#""\ud83dx""#).msg, "unpaired UTF-16 high surrogate");
        assert_eq!(err(r#""\ud83d\u0041""#).msg, "unpaired UTF-16 high surrogate");
        assert_eq!(err(r#""\ude00""#), JsonError { offset: 1, msg: "unpaired UTF-16 low surrogate" });
        assert_eq!(err(r#""\u12""#).msg, "expected 4 hex digits after \\u");
        assert_eq!(err(r#""\x""#).msg, "invalid escape in string");
        assert_eq!(err("\"a\nb\"").msg, "control character in string (must be escaped)");
        assert_eq!(err("\"abc").msg, "unterminated string");
        assert_eq!(err("\"abc\\").msg, "unterminated string");
    }

    #[test]
    fn nesting_and_objects() {
        let v = parse(r#" {"a": [1, {"b": null}, []], "c": {}, "d": "e"} "#).unwrap();
        let a = v.get("a").unwrap().as_array().unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].get("b"), Some(&Value::Null));
        assert_eq!(a[2], Value::Array(vec![]));
        assert_eq!(v.get("c"), Some(&Value::Object(vec![])));
        assert_eq!(v.get("d").and_then(Value::as_str), Some("e"));
        assert_eq!(v.get("zz"), None);
        let keys: Vec<&str> = v.as_object().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(
            err(r#"{"a": 1, "b": 2, "a": 3}"#),
            JsonError { offset: 17, msg: "duplicate key in object" }
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(err("").msg, "unexpected end of input, expected a value");
        assert_eq!(err("   ").offset, 3);
        assert_eq!(err("[1,]").msg, "unexpected character, expected a value");
        assert_eq!(err("[1 2]").msg, "expected ',' or ']' in array");
        assert_eq!(err("[1,").msg, "unexpected end of input, expected a value");
        assert_eq!(err("[").msg, "unexpected end of input, expected a value");
        assert_eq!(err("{\"a\" 1}").msg, "expected ':' after object key");
        assert_eq!(err("{a: 1}").msg, "expected a string key in object");
        assert_eq!(err("{\"a\": 1,}").msg, "expected a string key in object");
        assert_eq!(err("{\"a\": 1").msg, "unexpected end of input in object");
        assert_eq!(err("tru").msg, "invalid literal (expected true, false or null)");
        assert_eq!(err("nul").msg, "invalid literal (expected true, false or null)");
        assert_eq!(err("\u{feff}{}").msg, "byte order mark is not allowed");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert_eq!(err("{} x"), JsonError { offset: 3, msg: "trailing characters after the JSON value" });
        assert_eq!(err("1 2").offset, 2);
        assert_eq!(err("truex").offset, 4);
        assert_eq!(err("{}{}").offset, 2);
        assert_eq!(err("[]\0").offset, 2);
    }

    #[test]
    fn depth_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&deep), JsonError { offset: MAX_DEPTH, msg: "arrays and objects nested too deeply" });
        let objs = format!("{}1{}", r#"{"a":"#.repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&objs).msg, "arrays and objects nested too deeply");
        // Far deeper than any stack would allow without the limit.
        assert!(parse(&"[".repeat(1_000_000)).is_err());
    }

    #[test]
    fn reads_what_the_writer_writes() {
        // The model writer's outputs for awkward numbers and strings (its golden test, in
        // harmonizer-sim's json module), read back.
        let v = parse("[1.0, -0.0, 1e-7, 1e300, 1e999, -1e999, null]").unwrap();
        let got: Vec<Option<f64>> = v.as_array().unwrap().iter().map(Value::as_f64).collect();
        assert_eq!(
            got,
            [
                Some(1.0),
                Some(-0.0),
                Some(1e-7),
                Some(1e300),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                None
            ]
        );
        assert!(got[1].unwrap().is_sign_negative());
        let v = parse(r#"["a\"b", "\\", "\n\u0001é"]"#).unwrap();
        let got: Vec<&str> = v.as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(got, ["a\"b", "\\", "\n\u{1}é"]);
    }

    /// JSON-ish characters, so random text often gets deep into the parser.
    const JSONISH: &str = "[\\[\\]{}\",:0-9eE.+\\-\\\\u tfnrl a-f\u{e9}\u{1F600}]{0,64}";

    /// `s` as a quoted JSON string, escaped as the model writer (`harmonizer_sim::json`) does:
    /// `"` and `\`, the short escapes, other control characters as `\u00XX`.
    fn quoted(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence }, ..Default::default() })]

        #[test]
        fn finite_numbers_round_trip_bit_exactly(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            // Rust's shortest round-trip form, what the model writer prints.
            let s = format!("{v:?}");
            let back = parse(&s).unwrap().as_f64().unwrap();
            prop_assert_eq!(back.to_bits(), v.to_bits(), "{}", s);
        }

        #[test]
        fn strings_round_trip(text in any::<String>()) {
            prop_assert_eq!(parse(&quoted(&text)), Ok(Value::String(text)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in JSONISH) {
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse(text);
            }
        }
    }
}
