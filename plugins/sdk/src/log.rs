//! Logging through the host's `log` import, the only service a plugin gets.
//!
//! The host bounds and rate-limits these messages and tags them with the plugin's name and
//! digest. Natively (unit tests, host benchmarks) there is no host, so messages go to stderr,
//! where the test harness captures them. Never log secret values; a plugin never sees any, but
//! keep it that way in messages built from options.

pub use crate::bindings::kci::engine::host::Level;

pub fn trace(message: &str) {
    write(Level::Trace, message);
}

pub fn debug(message: &str) {
    write(Level::Debug, message);
}

pub fn info(message: &str) {
    write(Level::Info, message);
}

pub fn warn(message: &str) {
    write(Level::Warn, message);
}

pub fn error(message: &str) {
    write(Level::Error, message);
}

#[cfg(target_arch = "wasm32")]
pub fn write(level: Level, message: &str) {
    crate::bindings::kci::engine::host::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
pub fn write(level: Level, message: &str) {
    // The generated import traps outside a component, hence this stand-in.
    eprintln!("[plugin {level:?}] {message}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn logging_natively_does_not_reach_for_the_missing_host_import() {
        // The generated import is `unreachable!()` off wasm; this would panic if it were called.
        super::info("hello from a native build");
        super::write(super::Level::Error, "still no host");
    }
}
