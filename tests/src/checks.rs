//! Checks the end-to-end tests share: a pod that must succeed, the calls stand-ins recorded,
//! and secrets that must reach no argv, log or termination message.

use anyhow::{Result, bail, ensure};

use crate::pod_runner::PodOutcome;
use crate::standin::Call;

/// Fails with the pod's logs unless every container exited 0.
pub fn expect_success(outcome: &PodOutcome) -> Result<()> {
    ensure!(outcome.succeeded(), "the pod failed:\n{outcome}");
    Ok(())
}

/// The calls one per line, `tool arg1 arg2 ...`, for assertion messages.
pub fn lines(calls: &[Call]) -> String {
    calls.iter().map(Call::line).collect::<Vec<_>>().join("\n")
}

/// The one call of `tool` among `calls`; fails listing every call when there is none or more.
pub fn only_call<'a>(calls: &'a [Call], tool: &str) -> Result<&'a Call> {
    let of_tool: Vec<&Call> = calls.iter().filter(|c| c.tool == tool).collect();
    let [call] = of_tool.as_slice() else {
        bail!(
            "one {tool} call expected, there were {}:\n{}",
            of_tool.len(),
            lines(calls)
        );
    };
    Ok(call)
}

/// Whether `tool` was called with `subcommand` as its first argument (`rclone copyto`, say).
pub fn called_with(calls: &[Call], tool: &str, subcommand: &str) -> bool {
    calls
        .iter()
        .any(|c| c.tool == tool && c.args.first().is_some_and(|a| a == subcommand))
}

/// Fails naming the first call whose argv holds one of `secrets`: any local user can read a
/// process's argv.
pub fn assert_no_secret_in_argv<'a>(
    calls: impl IntoIterator<Item = &'a Call>,
    secrets: &[&str],
) -> Result<()> {
    for call in calls {
        for secret in secrets {
            ensure!(
                !call.mentions(secret),
                "a secret is in the argv of `{}`",
                call.line()
            );
        }
    }
    Ok(())
}

/// Fails unless `secret` is in no call's argv, in neither output of the pod's first container,
/// nor in its termination message (which `kubectl describe` shows to anyone who may read pods).
pub fn assert_no_secret_in(calls: &[Call], outcome: &PodOutcome, secret: &str) -> Result<()> {
    assert_no_secret_in_argv(calls, &[secret])?;
    let Some(c) = outcome.containers.first() else {
        bail!("no container ran:\n{outcome}");
    };
    ensure!(
        !c.stderr.contains(secret) && !c.stdout.contains(secret),
        "a secret is in the container's output:\n{outcome}"
    );
    ensure!(
        !c.termination_message.contains(secret),
        "a secret is in the termination message"
    );
    Ok(())
}
