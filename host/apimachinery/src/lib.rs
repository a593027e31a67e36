//! Pure Kubernetes API machinery (no I/O).
//!
//! The in-process API server calls these functions for every write to a resource, so they follow
//! what `k8s.io/apimachinery` does (structured-merge-diff for server-side apply, strategic merge
//! patch, structural-schema validation, pruning and defaulting) closely enough that clients such
//! as `kubectl` and kube-rs cannot tell the difference.
//!
//! Everything here works on [`serde_json::Value`]; typing is the caller's business.

mod fieldpath;
pub mod lists;
pub mod patch;
pub mod schema;
pub mod ssa;
