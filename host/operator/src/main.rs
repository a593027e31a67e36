//! `db-operator`: the command line. Everything a user can get wrong ends as an `error:` line
//! naming the file, object and field, and a non-zero exit code — never a panic.

mod cli;
mod conformance;
mod engines;
mod serve;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = <cli::Cli as clap::Parser>::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DB_OPERATOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match args.log_format {
        // Span fields (the reconciled object) go with every line, so a collector can filter
        // by object without parsing messages.
        cli::LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        cli::LogFormat::Text => logs.init(),
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = e.to_string();
            eprintln!("error: {message}");
            // Most of our errors already spell out their cause; print only what adds something.
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let cause = s.to_string();
                if !message.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}
