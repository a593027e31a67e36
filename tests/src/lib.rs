//! End-to-end tests of db-operator: render through the real engine plugins, then run the
//! rendered Jobs' containers on this machine against real servers.
//!
//! - [`pod_runner`] runs a PodSpec's containers with exactly the env, files and paths it declares.
//! - [`services`] starts PostgreSQL and an S3 server for a test and stops them on drop;
//!   [`mariadb`] does the same for MariaDB.
//! - [`standin`] makes programs that stand in for tools a script calls and record the calls.
//! - [`tools`] finds the programs both need and says which package provides a missing one.
//! - [`render`] loads an engine plugin and renders manifests through it into a [`render::Cluster`]
//!   of Secrets that later renders and the runner see, and finds the rendered Jobs and CronJobs.
//! - [`backups`] names the backup objects every engine stores; [`checks`] holds the assertions
//!   the tests share (a pod that succeeded, one call of a tool, no secret in argv or logs).
//! - [`round_trip`] is the manifests, rendering and runs of a backup → S3 → restore test against
//!   a real server.

pub mod backups;
pub mod checks;
pub mod mariadb;
pub mod pod_runner;
pub mod render;
pub mod round_trip;
pub mod services;
pub mod standin;
pub mod tools;

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), Path::to_owned)
}

/// The build directory of an engine's image, `deploy/images/<engine>/`.
pub fn image_dir(engine: &str) -> PathBuf {
    repo_root().join("deploy").join("images").join(engine)
}
