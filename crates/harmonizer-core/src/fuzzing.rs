//! The checks the fuzz targets run (`fuzz/`, cargo-fuzz), here so that the stable test that
//! replays the checked-in corpus (`tests/fuzz_corpus.rs`) runs exactly the same code. Not API:
//! hidden from the docs, and free to change.

use crate::flip::Flip;
use crate::predict::Model;

/// Flip decoding of arbitrary bytes: never panics; what decodes encodes back to bytes that
/// decode to the same flip (a flip's encoding is canonical).
pub fn flip_decode(data: &[u8]) {
    if let Ok(f) = Flip::decode(data) {
        let again = f.to_vec().expect("a decoded flip encodes");
        assert_eq!(Flip::decode(&again).expect("its encoding decodes"), f);
    }
}

/// Model reading of arbitrary bytes: never panics, and what is accepted is a valid model.
pub fn model_json(data: &[u8]) {
    if let Ok(m) = Model::from_json_bytes(data) {
        assert!(m.validate().is_ok());
    }
}
