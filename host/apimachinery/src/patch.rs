//! The three patch formats of `PATCH` requests other than server-side apply.

mod strategic;

use serde_json::Value;

pub use strategic::strategic_merge_patch;

/// Why a patch could not be applied. The messages follow the API server's.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON patch document (400 Bad Request).
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed against the object, e.g. a `test` did not match or a path
    /// does not exist (422 Unprocessable Entity). Nothing was changed.
    #[error("{0}")]
    JsonPatchFailed(String),
    /// The body is not a well-formed strategic merge patch (400 Bad Request).
    #[error("{0}")]
    InvalidStrategicPatch(String),
    /// A strategic merge patch is well formed but cannot apply to this object (422).
    #[error("{0}")]
    StrategicPatchFailed(String),
}

impl PatchError {
    /// The HTTP status the API server answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::InvalidJsonPatch(_) | PatchError::InvalidStrategicPatch(_) => 400,
            PatchError::JsonPatchFailed(_) | PatchError::StrategicPatchFailed(_) => 422,
        }
    }
}

/// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge recursively, `null`
/// deletes a key, anything else (lists included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch (`application/json-patch+json`). All or nothing: when one operation fails,
/// `target` is left as it was.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    json_patch::patch(target, &operations).map_err(|e| PatchError::JsonPatchFailed(e.to_string()))
}
