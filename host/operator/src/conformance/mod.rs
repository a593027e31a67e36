//! `db-operator plugin test`: the conformance suite a plugin author runs before shipping an
//! engine. It loads the component with the same runtime and limits as `run`, then checks what
//! production relies on: a well-formed `describe`, answers for every declared capability,
//! output the renderer accepts, determinism, no secret values in output, diagnostics (never
//! traps) for garbage input, and golden cases.
//!
//! Exit codes: 0 when every check passes or is skipped, 1 when a check fails, 2 when the
//! plugin cannot be loaded at all (a bad component, a forbidden import, an unsupported API
//! version); the `load` check then carries the runtime's message and the rest are skipped.

mod checks;
mod report;
mod sample;

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::cli::{CliError, SandboxArgs};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The plugin component (`.wasm`).
    file: PathBuf,
    /// Golden cases: `DIR/<name>/input.yaml` rendered and compared with
    /// `DIR/<name>/expected.yaml`. Defaults to a `cases/` folder beside the plugin.
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// Rewrite every case's `expected.yaml` with what the plugin renders now.
    #[arg(long)]
    update: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

/// Runs the suite and prints the report; the error carries the exit code when a check failed.
pub fn run(args: TestArgs) -> Result<(), CliError> {
    let runtime = args.sandbox.runtime_with_cache(None)?;
    let limits = report::Limits {
        timeout_ms: args.sandbox.plugin_timeout_ms,
        memory_mib: args.sandbox.plugin_memory_mib,
    };
    let cases = args.cases.clone().or_else(|| default_cases(&args.file));
    let report = checks::run_all(&runtime, &args.file, cases.as_deref(), args.update, limits);
    let text = match args.format {
        ReportFormat::Text => report.text(),
        ReportFormat::Json => report.json(),
    };
    crate::cli::write_stdout(&text)?;
    match report.exit_code() {
        0 => Ok(()),
        code => Err(CliError::Conformance {
            failed: report.failed(),
            code,
        }),
    }
}

fn default_cases(plugin: &Path) -> Option<PathBuf> {
    let dir = plugin.parent()?.join("cases");
    dir.is_dir().then_some(dir)
}
