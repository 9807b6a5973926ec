//! Predictive arming (docs/design.md §5): per-event features, a logistic model over them, the
//! arming policy built on the model, and a phi-accrual-style baseline.
//!
//! - [`features`]: time-decayed statistics of the active stream and its flips, updated per
//!   event without allocating; the same code computes them online and in training.
//! - [`model`]: the versioned JSON model file: standardisation, clipping, weights; scoring is a
//!   dot product compared in logit space, no `exp` per event.
//! - [`policy`]: [`Predictor`], the arming policy: presets and cost ratio, hysteresis and
//!   minimum hold, adaptive threshold, windows from the measured lead and predicted time to
//!   switch, several candidates within the budget.
//! - [`learn`]: labelled snapshots recorded from live operation, and the opt-in online update
//!   of the model from them.
//! - [`phi`]: the phi-accrual-style baseline every report shows beside the predictor.
//! - `json` (private): the small strict JSON reader the model file needs;
//!   [`json_write`]: the writer (the model file, and helpers for the tools' formats).
//!
//! Training (Newton/IRLS logistic regression with L2) is offline work, in `harmonizer-sim`
//! (`harmonizer_sim::train`). The library writes models too ([`Model::write_json`]): a
//! deployment whose online mode adapted its model can keep it.
//!
//! The design and the measured results are in `docs/predictor.md`.

pub mod features;
pub(crate) mod json;
pub mod json_write;
pub mod learn;
pub mod model;
pub mod phi;
pub mod policy;

pub use features::{FeatureState, FEATURE_NAMES, N_FEATURES};
pub use learn::{LabelledRow, LearnConfig, LearnConfigError, LearnStats, OnlineConfig};
pub use model::{
    read_model_file, Model, ModelError, ModelMeta, MAX_MODEL_BYTES, MODEL_FORMAT, MODEL_VERSION,
};
pub use phi::PhiRule;
pub use policy::{Predictor, PredictorConfig, Preset};
