//! Reading a scenario file: TOML text into `harmonizer_sim::scripted::scenario::Scenario`, with
//! one-line errors that name the file, the key path and the problem.
//!
//! The schema, its defaults and its validation are the simulator's; the file format is the
//! CLI's (TOML's parser needs a newer Rust than the library crates build with).

use harmonizer_sim::scripted::scenario::Scenario;

/// The default demo scenario, embedded in the binary.
pub const DEMO_TOML: &str = include_str!("../../scenarios/demo.toml");
/// Where the embedded default comes from, for messages.
pub const DEMO_NAME: &str = "harmonize/scenarios/demo.toml (embedded)";
/// The default fleet scenario (`harmonize fleet`), embedded in the binary.
pub const FLEET_TOML: &str = include_str!("../../scenarios/fleet.toml");
/// Where it comes from, for messages.
pub const FLEET_NAME: &str = "harmonize/scenarios/fleet.toml (embedded)";

/// Parses scenario text. `file` names it in errors. Errors are one line: the file, the key path
/// and the problem.
pub fn parse(file: &str, text: &str) -> Result<Scenario, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, "", &e))?;
    let sc: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, &path, e.inner())
    })?;
    sc.validate().map_err(|e| format!("{file}: {e}"))?;
    Ok(sc)
}

/// One line from a TOML error: `FILE: KEY: message (line L, column C)`.
fn toml_error(file: &str, text: &str, path: &str, e: &toml::de::Error) -> String {
    let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let at = e.span().map(|s| {
        let before = &text[..s.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" (line {line}, column {col})")
    });
    let at = at.unwrap_or_default();
    // Inside an `[[incident]]` (an internally tagged enum) the path stops at the incident:
    // complete it with the unknown key's name from the message.
    let mut path = if path == "." { String::new() } else { path.to_string() };
    if let Some(field) = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        if !path.ends_with(field) {
            path = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
        }
    }
    if path.is_empty() {
        format!("{file}: {msg}{at}")
    } else {
        format!("{file}: {path}: {msg}{at}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_file_parses() {
        for (name, text) in [
            ("demo", DEMO_TOML),
            ("quick", include_str!("../../scenarios/quick.toml")),
            ("rollout", include_str!("../../scenarios/rollout.toml")),
            ("lookalikes", include_str!("../../scenarios/lookalikes.toml")),
            ("verify", super::super::verify::VERIFY_TOML),
        ] {
            let sc = parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sc.name, name);
            assert!(!sc.incidents.is_empty());
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("f.toml", "name = \"x\"\nduration_s = 10\nrate = 0\n").unwrap_err();
        assert_eq!(e, "f.toml: rate = 0: must be in [1, 20000]");
        let e = parse("f.toml", "name = \"x\"\nduration_s = 10\nstreams = 2\n").unwrap_err();
        assert!(e.starts_with("f.toml: stream_lag_ms: missing"), "{e}");
        let text = "name = \"x\"\nduration_s = 10\n[[incident]]\nkind = \"burst\"\nat_s = 1\nfactor = 2\nlength_s = 1\nfator = 3\n";
        let e = parse("f.toml", text).unwrap_err();
        assert!(e.starts_with("f.toml: incident[0].fator: unknown field `fator`"), "{e}");
        let e = parse("f.toml", "name = \"x\"\nduration_s = 3600\nrate = 20000\n").unwrap_err();
        assert!(e.contains("records: at most"), "{e}");
        assert!(!e.contains('\n'));
    }
}
