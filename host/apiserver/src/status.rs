//! Errors as the API server reports them: `meta/v1` `Status` objects.
//!
//! Clients branch on `code` and `reason` (kube-rs' watcher relists on 410 `Expired`, controllers
//! retry on 409 `Conflict`), so each variant carries exactly the code/reason pair the real
//! server uses, and messages follow its wording.

use serde_json::{Value, json};

/// What a resource is called in messages: `databases.kci.rocks`, `secrets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Qualified {
    pub group: String,
    pub plural: String,
    pub kind: String,
}

impl Qualified {
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// One entry of `details.causes` in an `Invalid` status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{} \"{name}\" not found", .what.resource())]
    NotFound { what: Box<Qualified>, name: String },
    /// Used where there is no resource type to name (unknown paths).
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} \"{name}\" already exists", .what.resource())]
    AlreadyExists { what: Box<Qualified>, name: String },
    #[error(
        "Operation cannot be fulfilled on {} \"{name}\": {reason}",
        .what.resource()
    )]
    Conflict {
        what: Box<Qualified>,
        name: String,
        reason: String,
    },
    /// Server-side apply conflicts: the message is the apply machinery's own.
    #[error("{message}")]
    ApplyConflict {
        what: Box<Qualified>,
        name: String,
        message: String,
        causes: Vec<Cause>,
    },
    #[error("{} \"{name}\" is invalid: {}", .what.kind_group(), join_causes(.causes))]
    Invalid {
        what: Box<Qualified>,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Forbidden {
        what: Option<Box<Qualified>>,
        name: String,
        message: String,
    },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Internal(String),
}

fn join_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::ApplyConflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Forbidden { .. } => 403,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::Expired { .. } | Self::Gone(_) => 410,
            Self::TooManyRequests(_) => 429,
            Self::Internal(_) => 500,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden { .. } => "Forbidden",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Expired { .. } | Self::Gone(_) => "Expired",
            Self::TooManyRequests(_) => "TooManyRequests",
            Self::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object clients decode.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound { what, name }
            | Self::AlreadyExists { what, name }
            | Self::Conflict { what, name, .. } => Some(details(what, name, &[])),
            Self::ApplyConflict {
                what, name, causes, ..
            }
            | Self::Invalid { what, name, causes } => Some(details(what, name, causes)),
            Self::Forbidden {
                what: Some(what),
                name,
                ..
            } => Some(details(what, name, &[])),
            Self::TooManyRequests(_) => Some(json!({ "retryAfterSeconds": 1 })),
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

fn details(what: &Qualified, name: &str, causes: &[Cause]) -> Value {
    let mut details = json!({ "name": name, "kind": what.plural });
    if !what.group.is_empty() {
        details["group"] = json!(what.group);
    }
    if matches!(what.kind.as_str(), k if !k.is_empty()) && !causes.is_empty() {
        // The real server names the kind (not the plural) when it lists causes.
        details["kind"] = json!(what.kind);
    }
    if !causes.is_empty() {
        details["causes"] = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
    }
    details
}

/// A `Status` reporting success, as DELETE answers once an object is gone.
pub(crate) fn success(what: &Qualified, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": what.plural, "uid": uid });
    if !what.group.is_empty() {
        details["group"] = json!(what.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn databases() -> Box<Qualified> {
        Box::new(Qualified {
            group: "kci.rocks".into(),
            plural: "databases".into(),
            kind: "Database".into(),
        })
    }

    #[test]
    fn invalid_names_kind_and_fields_like_the_real_server() {
        let err = ApiError::Invalid {
            what: databases(),
            name: "x".into(),
            causes: vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.instance".into(),
            }],
        };
        assert_eq!(
            err.to_string(),
            "Database.kci.rocks \"x\" is invalid: spec.instance: Required value"
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "spec.instance");
    }

    #[test]
    fn not_found_uses_the_qualified_plural() {
        let err = ApiError::NotFound {
            what: databases(),
            name: "x".into(),
        };
        assert_eq!(err.to_string(), "databases.kci.rocks \"x\" not found");
        assert_eq!(err.to_status()["reason"], "NotFound");
    }
}
