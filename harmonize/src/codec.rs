//! Hex and base64 (RFC 4648, standard alphabet, `=` padding) for flip records on the command
//! line. Written here rather than taken from a crate: a few dozen lines, and the decoders give
//! the precise one-line errors the CLI needs (which character, at which offset).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Lowercase hex, two digits per byte.
pub fn hex_encode(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}

/// Hex digits (either case), ignoring ASCII whitespace and one leading `0x`. Offsets in errors
/// count characters of `text`.
pub fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_start();
    let skip = text.len() - trimmed.len();
    let (body, skip) = match trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")) {
        Some(rest) => (rest, skip + 2),
        None => (trimmed, skip),
    };
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<u8> = None;
    for (i, c) in body.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = c.to_digit(16).ok_or_else(|| format!("not hex: {c:?} at offset {}", skip + i))? as u8;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push(h << 4 | v),
        }
    }
    if high.is_some() {
        return Err(String::from("not hex: an odd number of digits"));
    }
    Ok(out)
}

/// Base64 with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Base64, standard alphabet, ignoring ASCII whitespace; padding is optional but, when present,
/// must be right. Unused bits in the last character must be zero (so every text decodes to one
/// record and a mistyped last character is noticed).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut vals = Vec::with_capacity(text.len());
    let mut pad = 0usize;
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == '=' {
            pad += 1;
            continue;
        }
        if pad > 0 {
            return Err(format!("not base64: {c:?} after padding at offset {i}"));
        }
        let v = B64
            .iter()
            .position(|&b| char::from(b) == c)
            .ok_or_else(|| format!("not base64: {c:?} at offset {i}"))?;
        vals.push(v as u32);
    }
    let rem = vals.len() % 4;
    if rem == 1 {
        return Err(String::from("not base64: the length leaves one character over"));
    }
    if pad > 0 && (pad > 2 || !(vals.len() + pad).is_multiple_of(4)) {
        return Err(String::from("not base64: wrong padding"));
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for chunk in vals.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = chunk.len() - 1;
        if n.to_be_bytes()[1..][keep..].iter().any(|&b| b != 0) {
            return Err(String::from("not base64: non-zero unused bits in the last character"));
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(base64_decode(enc.trim_end_matches('=')).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        for n in 0..all.len() {
            assert_eq!(base64_decode(&base64_encode(&all[..n])).unwrap(), &all[..n]);
            assert_eq!(hex_decode(&hex_encode(&all[..n])).unwrap(), &all[..n]);
        }
    }

    #[test]
    fn bad_input_is_refused_precisely() {
        assert_eq!(hex_decode("0x0A ff").unwrap(), [10, 255]);
        assert_eq!(hex_decode("abc").unwrap_err(), "not hex: an odd number of digits");
        assert_eq!(hex_decode("0x0g").unwrap_err(), "not hex: 'g' at offset 3");
        assert!(base64_decode("Zg=").unwrap_err().contains("padding"));
        assert!(base64_decode("Zh==").unwrap_err().contains("unused bits"));
        assert!(base64_decode("Z").unwrap_err().contains("one character over"));
        assert!(base64_decode("Zg==Zg==").unwrap_err().contains("after padding"));
        assert!(base64_decode("Zm9*").unwrap_err().contains("'*' at offset 3"));
    }
}
