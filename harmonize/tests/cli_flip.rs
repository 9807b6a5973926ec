//! `harmonize flip encode` and `flip decode`, run as a user would: the golden vectors of
//! docs/flip-format.md, a round trip for every action and selector, and every error.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn harmonize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harmonize")).args(args).output().expect("run harmonize")
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harmonize"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run harmonize");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = harmonize(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Fails with status 1 and one line `error: ...` on stderr, which is returned.
fn fails(args: &[&str]) -> String {
    failed(&harmonize(args), args)
}

fn failed(o: &Output, args: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
    assert!(o.stdout.is_empty(), "{args:?}");
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    assert!(err.starts_with("error: ") && err.ends_with('\n') && err.lines().count() == 1, "{args:?}: {err}");
    err
}

/// A usage error: clap's message, status 2.
fn usage_error(args: &[&str]) -> String {
    let o = harmonize(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "{args:?}: {err}");
    err
}

/// The golden vectors of docs/flip-format.md, from flags.
#[test]
fn encode_reproduces_the_golden_vectors() {
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--action",
                "switch",
                "--id",
                "0x0102030405060708",
                "--target",
                "2",
                "--cutover-pos",
                "1000",
                "--locator",
                "kafka://b/orders",
            ],
            "01010000 02000000 0807060504030201 e803000000000000 0000000000000000 0000000000000000 \
             0000000000000000 1000 6b61666b613a2f2f622f6f7264657273 bfc0590f",
        ),
        (
            &[
                "--action",
                "announce",
                "--id",
                "7",
                "--target",
                "1",
                "--expected-in-ns",
                "5000000000",
                "--ids",
                "42,18446744073709551615",
            ],
            "01020100 01000000 0700000000000000 0000000000000000 0000000000000000 0000000000000000 \
             00f2052a01000000 02 2a00000000000000 ffffffffffffffff 0000 43792fef",
        ),
        (
            &[
                "--action",
                "switchback",
                "--id",
                "99",
                "--resume-pos",
                "123456",
                "--not-before-ns",
                "1700000000000000000",
                "--cohort",
                "1000",
                "--salt",
                "0xDEADBEEF",
                "--locator-hex",
                "78",
            ],
            "01040200 00000000 6300000000000000 0000000000000000 40e2010000000000 00002a36fe9c9717 \
             0000000000000000 e803 efbeadde00000000 0100 78 bbd900c5",
        ),
    ];
    for (flags, golden) in cases {
        let want: String = golden.split_whitespace().collect();
        let args: Vec<&str> = ["flip", "encode"].iter().chain(flags).copied().collect();
        assert_eq!(ok(&args), format!("{want}\n"), "{flags:?}");
        let hex: Vec<&str> = ["flip", "encode", "--hex"].iter().chain(flags).copied().collect();
        assert_eq!(ok(&hex), format!("{want}\n"));
        // Decoding the documented text (spaces and all) gives the fields back.
        let fields = ok(&["flip", "decode", golden]);
        assert!(fields.contains(&format!("length: {}\n", want.len() / 2)), "{fields}");
        assert_eq!(ok(&["flip", "decode", &format!("0x{want}")]), fields);
    }
}

/// The `key: value` lines `decode` prints, as pairs.
fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("not key: value: {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn every_action_and_selector_round_trips_in_hex_and_base64() {
    let actions = ["switch", "announce", "cancel", "switchback"];
    let selectors: [&[&str]; 3] =
        [&[], &["--ids", "1,2,0xffffffffffffffff"], &["--cohort", "2500", "--salt", "0x5eed"]];
    for (i, action) in actions.iter().enumerate() {
        for (j, sel) in selectors.iter().enumerate() {
            let id = format!("{}", 1000 + 10 * i + j);
            let cut = format!("{}", 7 * i + j);
            let mut args = vec![
                "flip",
                "encode",
                "--action",
                action,
                "--id",
                &id,
                "--target",
                "4294967295",
                "--cutover-pos",
                &cut,
                "--resume-pos",
                "18446744073709551615",
                "--not-before-ns",
                "1",
                "--expected-in-ns",
                "5000000000",
            ];
            args.extend_from_slice(sel);
            // Text locators on some, binary on others.
            if (i + j) % 2 == 0 {
                args.extend_from_slice(&["--locator", "s3://bucket/a b \"c\""]);
            } else {
                args.extend_from_slice(&["--locator-hex", "00ff0a"]);
            }
            let hex = ok(&args);
            args.push("--base64");
            let b64 = ok(&args);
            let from_hex = ok(&["flip", "decode", hex.trim()]);
            let from_b64 = ok(&["flip", "decode", "--base64", b64.trim()]);
            let from_stdin = String::from_utf8(with_stdin(&["flip", "decode", "-"], &hex).stdout).unwrap();
            assert_eq!(from_hex, from_b64);
            assert_eq!(from_hex, from_stdin);
            let got = fields(&from_hex);
            let get = |k: &str| got.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            assert_eq!(get("version"), Some("1"));
            assert_eq!(get("action"), Some(*action));
            assert_eq!(get("id"), Some(id.as_str()));
            assert_eq!(get("target"), Some("4294967295"));
            assert_eq!(get("cutover_pos"), Some(cut.as_str()));
            assert_eq!(get("resume_pos"), Some("18446744073709551615"));
            assert_eq!(get("not_before_ns"), Some("1"));
            assert_eq!(get("expected_in_ns"), Some("5000000000"));
            match j {
                0 => assert_eq!((get("selector"), get("ids"), get("cohort")), (Some("all"), None, None)),
                1 => {
                    assert_eq!(get("selector"), Some("ids"));
                    assert_eq!(get("ids"), Some("1,2,18446744073709551615"));
                }
                _ => {
                    assert_eq!(get("selector"), Some("cohort"));
                    assert_eq!((get("cohort"), get("salt")), (Some("2500"), Some("0x5eed")));
                }
            }
            if (i + j) % 2 == 0 {
                assert_eq!(get("locator"), Some("\"s3://bucket/a b \\\"c\\\"\""));
                assert_eq!(get("locator_len"), Some("19"));
            } else {
                assert_eq!((get("locator_hex"), get("locator_len")), (Some("00ff0a"), Some("3")));
            }
            assert_eq!(get("length").map(str::to_owned), Some(format!("{}", hex.trim().len() / 2)));
            // Decoding, then encoding the printed fields again, gives the same record.
            let mut again: Vec<String> = vec!["flip".into(), "encode".into()];
            for (k, v) in &got {
                match k.as_str() {
                    "version" | "selector" | "locator_len" | "crc32c" | "length" => {}
                    "locator" => {
                        again.push("--locator".into());
                        again.push(v[1..v.len() - 1].replace("\\\"", "\""));
                    }
                    _ => {
                        again.push(format!("--{}", k.replace('_', "-")));
                        again.push(v.clone());
                    }
                }
            }
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            assert_eq!(ok(&again), hex, "{again:?}");
        }
    }
}

/// CRC-32C (Castagnoli, reflected), to craft records that pass the CRC but carry bad values.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `record` with byte `at` set to `v` and the CRC recomputed.
fn patched(record: &[u8], at: usize, v: u8) -> String {
    let mut r = record.to_vec();
    r[at] = v;
    let n = r.len();
    let crc = crc32c(&r[..n - 4]);
    r[n - 4..].copy_from_slice(&crc.to_le_bytes());
    hex(&r)
}

#[test]
fn malformed_records_get_the_library_reason_and_status_1() {
    let good_hex = ok(&[
        "flip", "encode", "--action", "switch", "--id", "1", "--target", "2", "--cohort", "10", "--salt", "3",
    ]);
    let good = unhex(good_hex.trim());
    assert_eq!(
        crc32c(&good[..good.len() - 4]).to_le_bytes(),
        good[good.len() - 4..],
        "the test's CRC agrees"
    );
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    let cases = [
        (hex(&good[..10]), "invalid flip (truncated): flip truncated: needs at least 16 bytes, has 10"),
        (hex(&bad_crc), "invalid flip (bad_crc): flip CRC-32C mismatch"),
        (patched(&good, 0, 2), "invalid flip (unknown_version): unknown flip version 2 (this build reads 1)"),
        (patched(&good, 1, 9), "invalid flip (unknown_action): unknown flip action 9 (1..=4)"),
        (patched(&good, 2, 7), "invalid flip (unknown_selector): unknown flip selector 7 (0..=2)"),
        (patched(&good, 3, 1), "invalid flip (reserved_nonzero): flip reserved byte is 1, must be 0"),
        // Basis points 0x2711 = 10001.
        (patched(&patched_bytes(&good, 48, 0x11), 49, 0x27), "invalid flip (basis_points_out_of_range)"),
        (hex(&trailing), "invalid flip (trailing_bytes): 1 trailing bytes after the flip's CRC"),
        (String::new(), "invalid flip (truncated): flip truncated: needs at least 1 bytes, has 0"),
    ];
    for (input, want) in cases {
        let err = fails(&["flip", "decode", &input]);
        assert!(err.starts_with(&format!("error: {want}")), "{input}: {err}");
    }
    // An IDS selector with no ids: a structural error, found before the CRC.
    let ids = unhex(
        ok(&["flip", "encode", "--action", "cancel", "--id", "1", "--target", "2", "--ids", "5"]).trim(),
    );
    let err = fails(&["flip", "decode", &patched(&ids, 48, 0)]);
    assert!(err.contains("(bad_id_count): flip IDS selector lists 0 ids"), "{err}");
    // Text that is not hex or base64.
    assert!(fails(&["flip", "decode", "01zz"]).contains("not hex: 'z' at offset 2"));
    assert!(fails(&["flip", "decode", "010"]).contains("odd number of digits"));
    assert!(fails(&["flip", "decode", "--base64", "AQ*"]).contains("not base64: '*' at offset 2"));
    assert!(fails(&["flip", "decode", "--base64", "AQ="]).contains("wrong padding"));
    let o = with_stdin(&["flip", "decode", "-"], "not hex\n");
    assert!(failed(&o, &["decode -"]).contains("not hex"));
}

fn patched_bytes(record: &[u8], at: usize, v: u8) -> Vec<u8> {
    unhex(&patched(record, at, v))
}

#[test]
fn bad_encode_flags_are_refused_in_one_line() {
    let base = ["flip", "encode", "--id", "1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { base.iter().chain(extra).copied().collect() };
    assert!(fails(&with(&["--action", "switch"])).contains("--target is required for switch"));
    let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
    let many = many.join(",");
    let mut args = with(&["--action", "cancel", "--target", "1", "--ids"]);
    args.push(&many);
    assert!(fails(&args).contains("--ids lists 33 ids, at most 32"));
    let err = fails(&with(&["--action", "switch", "--target", "1", "--cohort", "10001", "--salt", "0"]));
    assert!(err.contains("(basis_points_out_of_range): flip cohort basis points 10001 above 10000"), "{err}");
    let long = "x".repeat(1025);
    let mut args = with(&["--action", "switch", "--target", "1", "--locator"]);
    args.push(&long);
    assert!(fails(&args).contains("(locator_too_long): flip locator of 1025 bytes exceeds 1024"));
    assert!(fails(&with(&["--action", "switch", "--target", "1", "--locator-hex", "0g"]))
        .contains("--locator-hex: not hex"));
    // Usage errors are clap's, with status 2.
    assert!(usage_error(&with(&["--action", "jump", "--target", "1"])).contains("jump"));
    assert!(
        usage_error(&with(&["--action", "switch", "--target", "4294967296"])).contains("larger than a u32")
    );
    assert!(usage_error(&with(&["--action", "switch", "--target", "1", "--cohort", "10"])).contains("--salt"));
    assert!(usage_error(&with(&["--action", "switch", "--target", "1", "--cohort", "70000", "--salt", "1"]))
        .contains("u16"));
    assert!(usage_error(&with(&[
        "--action", "switch", "--target", "1", "--ids", "1", "--cohort", "1", "--salt", "1"
    ]))
    .contains("cannot be used with"));
    assert!(usage_error(&["flip", "encode", "--action", "switch", "--target", "1", "--id", "-1"])
        .contains("--id"));
    assert!(usage_error(&["flip", "decode"]).contains("HEX"));
}

#[test]
fn help_shows_examples() {
    for sub in ["encode", "decode"] {
        for flag in ["-h", "--help"] {
            let help = ok(&["flip", sub, flag]);
            assert!(help.contains("Example:\n  harmonize flip"), "{sub} {flag}: {help}");
        }
    }
    // The group itself, and its decode example decodes.
    let help = ok(&["flip", "--help"]);
    let hex =
        help.lines().find_map(|l| l.trim().strip_prefix("harmonize flip decode ")).expect("decode example");
    assert!(ok(&["flip", "decode", hex]).contains("action: switch"), "{help}");
}
