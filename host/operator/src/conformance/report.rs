//! The conformance report: one named result per check, the call figures, as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
}

impl Check {
    pub fn pass(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            message: message.into(),
        }
    }
    pub fn fail(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            message: message.into(),
        }
    }
    pub fn skip(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSummary {
    pub file: String,
    pub name: Option<String>,
    pub version: Option<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mib: usize,
}

/// Durations of the calls of one export, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct CallFigures {
    pub calls: usize,
    #[serde(rename = "maxMicros")]
    pub max_micros: u128,
    #[serde(rename = "medianMicros")]
    pub median_micros: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub limits: Limits,
    pub exports: BTreeMap<String, CallFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: PluginSummary,
    pub checks: Vec<Check>,
    pub figures: Figures,
    pub passed: bool,
    /// The plugin could not be loaded; nothing else ran.
    #[serde(skip)]
    pub unloadable: bool,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }

    pub fn exit_code(&self) -> u8 {
        if self.unloadable {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    pub fn json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let p = &self.plugin;
        let _ = writeln!(
            s,
            "plugin {} {} (API {}) {}",
            p.name.as_deref().unwrap_or("?"),
            p.version.as_deref().unwrap_or("?"),
            p.api_version.as_deref().unwrap_or("?"),
            p.digest.as_deref().unwrap_or(&p.file),
        );
        for c in &self.checks {
            let tag = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            if c.message.is_empty() {
                let _ = writeln!(s, "{tag} {}", c.name);
            } else {
                let _ = writeln!(s, "{tag} {}: {}", c.name, c.message);
            }
        }
        let f = &self.figures;
        if !f.exports.is_empty() {
            let _ = writeln!(
                s,
                "\ncalls (deadline {} ms, memory cap {} MiB per call):",
                f.limits.timeout_ms, f.limits.memory_mib
            );
            let _ = writeln!(
                s,
                "  {:<12} {:>6} {:>12} {:>12}",
                "export", "calls", "median µs", "max µs"
            );
            for (export, c) in &f.exports {
                let _ = writeln!(
                    s,
                    "  {:<12} {:>6} {:>12} {:>12}",
                    export, c.calls, c.median_micros, c.max_micros
                );
            }
        }
        let count = |st| self.checks.iter().filter(|c| c.status == st).count();
        let _ = writeln!(
            s,
            "\n{}: {} passed, {} failed, {} skipped",
            if self.passed { "PASSED" } else { "FAILED" },
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip)
        );
        s
    }
}
