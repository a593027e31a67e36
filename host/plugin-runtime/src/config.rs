use std::path::PathBuf;
use std::time::Duration;

use crate::RuntimeError;

/// Limits and caching of a [`PluginRuntime`](crate::PluginRuntime).
///
/// Build it with struct-update syntax so new settings keep their defaults:
///
/// ```
/// # use std::time::Duration;
/// let config = dbo_plugin_runtime::RuntimeConfig {
///     call_timeout: Duration::from_millis(500),
///     ..Default::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Wall-clock budget of one call, instantiation included. Default 2 s.
    pub call_timeout: Duration,
    /// Most linear memory one call may grow to. Default 64 MiB.
    pub memory_limit_bytes: usize,
    /// Most bytes of strings one call may return (pod specs, messages ...). Default 1 MiB.
    pub max_output_bytes: usize,
    /// Directory for compiled components (`<sha256>-<engine hash>.cwasm`). `None` keeps compiled
    /// code in memory only.
    ///
    /// Code in this directory is loaded as trusted native code: it must be writable by the
    /// operator alone, like the operator binary itself.
    pub cache_dir: Option<PathBuf>,
    /// How often deadlines are checked. A call stops between `call_timeout` and
    /// `call_timeout + 2 × epoch_tick` after it started. Default 10 ms.
    pub epoch_tick: Duration,
    /// Native stack compiled plugin code may use. Default 512 KiB; the in-tree plugins need
    /// far less (see `tests/sandbox.rs`), and the host thread must have this much to spare.
    pub max_wasm_stack_bytes: usize,
    /// Bytes of stdout and of stderr kept per call (the rest is dropped and counted); the kept
    /// part is logged line by line. Default 64 KiB each.
    pub captured_output_bytes: usize,
    /// `log` calls plus stdout/stderr lines a plugin may produce per call; later ones are
    /// dropped and counted. Default 100.
    pub max_log_messages: usize,
    /// Longest `log` message or output line kept; longer ones are cut. Default 1 KiB.
    pub max_log_message_bytes: usize,
    /// How instances get their memory. Default [`InstanceAllocation::Auto`].
    pub instance_allocation: InstanceAllocation,
}

/// How the runtime allocates instance memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAllocation {
    /// Reserve slots up front (fast per-call instantiation), falling back to
    /// [`InstanceAllocation::OnDemand`] when the process may not reserve that much virtual memory
    /// (e.g. under `ulimit -v`).
    Auto { max_concurrent_calls: u32 },
    /// Reserve slots up front, failing at start-up when that is not possible. At most
    /// `max_concurrent_calls` calls (and warm instances) exist at once; further calls fail.
    Pooling { max_concurrent_calls: u32 },
    /// Map fresh memory for every call.
    OnDemand,
}

impl Default for InstanceAllocation {
    fn default() -> Self {
        Self::Auto {
            max_concurrent_calls: 64,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(2),
            memory_limit_bytes: 64 << 20,
            max_output_bytes: 1 << 20,
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack_bytes: 512 << 10,
            captured_output_bytes: 64 << 10,
            max_log_messages: 100,
            max_log_message_bytes: 1 << 10,
            instance_allocation: InstanceAllocation::default(),
        }
    }
}

impl RuntimeConfig {
    pub(crate) fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |field, problem: &str| {
            Err(RuntimeError::InvalidConfig {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.call_timeout.is_zero() {
            return invalid("call_timeout", "must be greater than zero");
        }
        if self.epoch_tick.is_zero() {
            return invalid("epoch_tick", "must be greater than zero");
        }
        if self.epoch_tick > self.call_timeout {
            return invalid("epoch_tick", "must not be longer than call_timeout");
        }
        if self.memory_limit_bytes < 1 << 20 {
            // A Rust guest's initial memory alone is about 1 MiB.
            return invalid("memory_limit_bytes", "must be at least 1 MiB");
        }
        if self.max_output_bytes == 0 {
            return invalid("max_output_bytes", "must be greater than zero");
        }
        if self.max_wasm_stack_bytes < 64 << 10 {
            return invalid("max_wasm_stack_bytes", "must be at least 64 KiB");
        }
        if let InstanceAllocation::Auto {
            max_concurrent_calls: 0,
        }
        | InstanceAllocation::Pooling {
            max_concurrent_calls: 0,
        } = self.instance_allocation
        {
            return invalid(
                "instance_allocation.max_concurrent_calls",
                "must be greater than zero",
            );
        }
        Ok(())
    }

    /// Epoch ticks a call may run. One extra tick because the first tick may come right after
    /// the call starts: the deadline must never be shorter than `call_timeout`.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = self.call_timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RuntimeConfig::default().validate().is_ok());
    }

    #[test]
    fn zero_timeout_is_rejected_naming_the_field() {
        let config = RuntimeConfig {
            call_timeout: Duration::ZERO,
            ..Default::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("call_timeout"), "{error}");
    }

    #[test]
    fn deadline_never_undercuts_the_timeout() {
        let config = RuntimeConfig {
            call_timeout: Duration::from_millis(200),
            epoch_tick: Duration::from_millis(10),
            ..Default::default()
        };
        assert_eq!(config.deadline_ticks(), 21);
        let odd = RuntimeConfig {
            call_timeout: Duration::from_millis(25),
            ..config
        };
        assert_eq!(odd.deadline_ticks(), 4);
    }
}
