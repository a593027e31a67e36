//! What a plugin sees of the world: a deny-all WASI context, a memory cap, captured stdio and the
//! host's `log` import.
//!
//! Plugins are pure functions of their request (the renderer hashes Job specs, so the same input
//! must give the same bytes). WASI therefore offers nothing that differs between calls:
//! no preopened directories, environment, arguments or network, stdin closed, a fixed random
//! sequence and a wall clock stopped at the Unix epoch. The host generates every secret itself,
//! so no plugin needs real randomness.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::PluginId;
use crate::config::RuntimeConfig;

/// The store data of every call.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: CallLimits,
    pub(crate) log: HostLog,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    pub(crate) fn new(plugin: &Arc<PluginId>, config: &RuntimeConfig) -> Self {
        let stdout = CapturedOutput::new(config.captured_output_bytes);
        let stderr = CapturedOutput::new(config.captured_output_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .secure_random(fixed_random())
            .insecure_random(fixed_random())
            .insecure_random_seed(0)
            .wall_clock(StoppedWallClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: CallLimits::new(config.memory_limit_bytes),
            log: HostLog::new(plugin.clone(), config),
            stdout,
            stderr,
        }
    }

    /// Prepares a (possibly reused) store for the next call.
    pub(crate) fn begin_call(&mut self, function: &'static str) {
        self.limits.memory_exceeded = false;
        self.log.begin_call(function);
        self.stdout.clear();
        self.stderr.clear();
    }

    /// Logs what the call wrote to stdout (at debug) and stderr (at warn), line by line, and
    /// returns the stderr text, which carries the panic message when a Rust plugin panicked.
    pub(crate) fn end_call(&mut self) -> String {
        let stdout = self.stdout.take_text();
        let stderr = self.stderr.take_text();
        for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
            self.log.emit(LogLevel::Debug, "stdout", line);
        }
        for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
            self.log.emit(LogLevel::Warn, "stderr", line);
        }
        self.log.end_call();
        stderr
    }
}

fn fixed_random() -> Deterministic {
    // Any constant works; it only has to be the same for every call.
    Deterministic::new(b"db-operator plugins are pure functions".to_vec())
}

struct StoppedWallClock;

impl HostWallClock for StoppedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// [`StoreLimits`] with a memory cap that traps, plus a note that the cap was hit, so a trap
/// can be reported as "memory limit" rather than as a crash.
pub(crate) struct CallLimits {
    inner: StoreLimits,
    pub(crate) memory_exceeded: bool,
}

impl CallLimits {
    fn new(memory_limit_bytes: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_limit_bytes)
                .trap_on_grow_failure(true)
                .build(),
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let decision = self.inner.memory_growing(current, desired, maximum);
        if decision.is_err() {
            self.memory_exceeded = true;
        }
        decision
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The host could not map more memory although the cap allowed it; to the plugin author
        // that is the same situation.
        self.memory_exceeded = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The host side of `kci:engine/host.log`: bounded in length and count per call.
pub(crate) struct HostLog {
    plugin: Arc<PluginId>,
    function: &'static str,
    max_messages: usize,
    max_message_bytes: usize,
    messages: usize,
}

/// Severity of a plugin log message, shared by every WIT version's `level` enum.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl HostLog {
    fn new(plugin: Arc<PluginId>, config: &RuntimeConfig) -> Self {
        Self {
            plugin,
            function: "instantiate",
            max_messages: config.max_log_messages,
            max_message_bytes: config.max_log_message_bytes,
            messages: 0,
        }
    }

    fn begin_call(&mut self, function: &'static str) {
        self.function = function;
        self.messages = 0;
    }

    fn end_call(&self) {
        if self.messages > self.max_messages {
            tracing::warn!(
                plugin = %self.plugin.name, digest = %self.plugin.digest, function = self.function,
                "dropped {} log messages and output lines over the limit of {} per call",
                self.messages - self.max_messages,
                self.max_messages
            );
        }
    }

    /// A message from the plugin's `log` import.
    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        self.emit(level, "log", message);
    }

    /// One message or output line, counted against the per-call budget. `stream` says where it
    /// came from: `log`, `stdout` or `stderr`.
    fn emit(&mut self, level: LogLevel, stream: &'static str, message: &str) {
        self.messages = self.messages.saturating_add(1);
        if self.messages > self.max_messages {
            return;
        }
        let message = truncate(message, self.max_message_bytes);
        let (name, digest, function) = (&self.plugin.name, &self.plugin.digest, self.function);
        // `tracing` levels must be constants at each call site.
        match level {
            LogLevel::Trace => {
                tracing::trace!(plugin = %name, digest = %digest, function, stream, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(plugin = %name, digest = %digest, function, stream, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(plugin = %name, digest = %digest, function, stream, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(plugin = %name, digest = %digest, function, stream, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(plugin = %name, digest = %digest, function, stream, "{message}")
            }
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end).into()
}

/// A stdout/stderr that keeps the first `capacity` bytes and silently drops the rest.
///
/// `wasmtime_wasi`'s `MemoryOutputPipe` traps when full instead; a chatty plugin should lose its
/// chatter, not its call.
#[derive(Clone)]
struct CapturedOutput {
    buffer: Arc<Mutex<Captured>>,
    capacity: usize,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        Self {
            buffer: Arc::default(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        // The buffer holds plain bytes; a panic elsewhere cannot leave it inconsistent.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clear(&self) {
        let mut captured = self.lock();
        captured.bytes.clear();
        captured.dropped = 0;
    }

    /// What was written since the last call (empty if nothing), noting what was dropped.
    fn take_text(&self) -> String {
        let mut captured = self.lock();
        let mut text = String::from_utf8_lossy(&captured.bytes)
            .trim_end()
            .to_owned();
        if captured.dropped > 0 {
            text.push_str(&format!(" … ({} more bytes dropped)", captured.dropped));
        }
        captured.bytes.clear();
        captured.dropped = 0;
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Largest write permit handed to the guest; it also bounds what the host allocates for
/// `write-zeroes`.
const WRITE_PERMIT: usize = 4096;

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut captured = self.lock();
        let room = self.capacity.saturating_sub(captured.bytes.len());
        let kept = bytes.len().min(room);
        captured.bytes.extend_from_slice(&bytes[..kept]);
        captured.dropped = captured.dropped.saturating_add(bytes.len() - kept);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut this = self.get_mut().clone();
        // Claim the whole write even when dropping part of it, like `write` above.
        let _ = OutputStream::write(&mut this, Bytes::copy_from_slice(buf));
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_keeps_the_head_and_counts_the_rest() {
        let mut out = CapturedOutput::new(8);
        OutputStream::write(&mut out, Bytes::from_static(b"hello ")).unwrap();
        OutputStream::write(&mut out, Bytes::from_static(b"world\n")).unwrap();
        assert_eq!(out.take_text(), "hello wo … (4 more bytes dropped)");
        assert_eq!(out.take_text(), "", "taking the text empties the buffer");
    }

    #[test]
    fn log_messages_over_the_per_call_limit_are_dropped_and_counted() {
        let config = RuntimeConfig {
            max_log_messages: 2,
            max_log_message_bytes: 8,
            ..Default::default()
        };
        let plugin = Arc::new(PluginId::new("chatty", "sha256:00"));
        let logs = captured_logs(|| {
            let mut log = HostLog::new(plugin, &config);
            log.begin_call("validate");
            for n in 0..5 {
                log.log(LogLevel::Info, &format!("message {n} with a long tail"));
            }
            log.end_call();
        });
        assert!(logs.contains("message … (18 bytes cut)"), "{logs}");
        assert_eq!(logs.matches("message ").count(), 2, "{logs}");
        assert!(
            logs.contains("dropped 3 log messages and output lines over the limit of 2"),
            "{logs}"
        );
    }

    fn captured_logs(run: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn truncate_respects_character_boundaries() {
        assert_eq!(truncate("grüße", 3), "gr… (5 bytes cut)");
        assert_eq!(truncate("short", 10), "short");
    }
}
