use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Who an error is about: the engine name (or, before `describe()` answered, the name the caller
/// gave) and the component's digest, so two builds of "postgres" can be told apart in logs,
/// status conditions and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    pub name: String,
    /// `sha256:<64 hex digits>` of the component bytes.
    pub digest: String,
}

impl PluginId {
    pub(crate) fn new(name: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            digest: digest.into(),
        }
    }

    /// The digest cut to 12 hex digits, like container image IDs: enough to tell builds apart in
    /// a message. `Plugin::digest()` has the full value for pinning.
    pub fn short_digest(&self) -> &str {
        const SHORT: usize = "sha256:".len() + 12;
        self.digest.get(..SHORT).unwrap_or(&self.digest)
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {} ({}…)", self.name, self.short_digest())
    }
}

/// Everything the runtime can refuse or stop. Every message about a plugin starts with its name
/// and digest and ends with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid plugin runtime setting {field}: {problem}")]
    InvalidConfig {
        field: &'static str,
        problem: String,
    },

    #[error("cannot start the WebAssembly engine: {message}")]
    Setup { message: String },

    // No digest yet: the bytes could not be read.
    #[error("plugin {name}: cannot read {}: {source}; check the path and its permissions", path.display())]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{plugin}: not a valid WebAssembly component: {message}; build the plugin with \
         `cargo build --target wasm32-wasip2` (a `cdylib`)"
    )]
    Compile { plugin: PluginId, message: String },

    #[error(
        "{plugin}: imports `{import}`, which plugins may not use (allowed: {allowed}); plugins \
         must not touch files, sockets or other outside state, so remove the code that needs it"
    )]
    ForbiddenImport {
        plugin: PluginId,
        import: String,
        allowed: String,
    },

    #[error(
        "{plugin}: built against plugin API {found}, but this operator supports {}; rebuild the \
         plugin against a supported `kci:engine` WIT version or upgrade the operator",
        supported.join(", ")
    )]
    UnsupportedApiVersion {
        plugin: PluginId,
        found: String,
        supported: Vec<String>,
    },

    #[error(
        "{plugin}: does not export `{export}` (it exports: {exports}); is this a db-operator \
         engine plugin?"
    )]
    MissingExport {
        plugin: PluginId,
        export: String,
        exports: String,
    },

    #[error("{plugin}: cannot be instantiated: {message}")]
    Instantiate { plugin: PluginId, message: String },

    #[error(
        "{plugin}: {function} exceeded its {} deadline; raise the plugin timeout or fix the \
         plugin",
        humanize(*limit)
    )]
    DeadlineExceeded {
        plugin: PluginId,
        function: &'static str,
        limit: Duration,
    },

    #[error(
        "{plugin}: {function} tried to use more than its {} memory limit; raise the plugin \
         memory limit or fix the plugin",
        humanize_bytes(*limit_bytes)
    )]
    MemoryLimit {
        plugin: PluginId,
        function: &'static str,
        limit_bytes: usize,
    },

    #[error("{plugin}: {function} crashed: {message}; this is a bug in the plugin")]
    Trap {
        plugin: PluginId,
        function: &'static str,
        message: String,
    },

    #[error(
        "{plugin}: all {limit} plugin sandboxes are in use; raise the concurrent plugin call \
         limit or make fewer calls at once"
    )]
    Busy { plugin: PluginId, limit: u32 },

    #[error(
        "{plugin}: {function} returned {bytes} bytes, more than the {limit} byte output limit; \
         raise the plugin output limit or fix the plugin"
    )]
    OutputTooLarge {
        plugin: PluginId,
        function: &'static str,
        bytes: usize,
        limit: usize,
    },

    #[error(
        "{plugin}: describe() answered something unusable: {problem}; this is a bug in the plugin"
    )]
    InvalidInfo { plugin: PluginId, problem: String },

    #[error(
        "{plugin}: the pinned digest `{pinned}` is not of the form `sha256:<64 hex digits>`; copy \
         the digest `db-operator plugin inspect` prints"
    )]
    InvalidDigest { plugin: PluginId, pinned: String },

    #[error(
        "{plugin}: digest is {found} but {expected} is pinned; install the pinned build or update \
         the pin after reviewing the new plugin"
    )]
    DigestMismatch {
        plugin: PluginId,
        expected: String,
        found: String,
    },

    #[error(
        "{plugin}: this warm instance stopped at an earlier failure and cannot be re-entered; \
         create a new one with Plugin::warm()"
    )]
    Poisoned { plugin: PluginId },
}

impl RuntimeError {
    /// The plugin the error is about, when it is about one.
    pub fn plugin(&self) -> Option<&PluginId> {
        match self {
            Self::InvalidConfig { .. } | Self::Setup { .. } | Self::Io { .. } => None,
            Self::Compile { plugin, .. }
            | Self::ForbiddenImport { plugin, .. }
            | Self::UnsupportedApiVersion { plugin, .. }
            | Self::MissingExport { plugin, .. }
            | Self::Instantiate { plugin, .. }
            | Self::DeadlineExceeded { plugin, .. }
            | Self::MemoryLimit { plugin, .. }
            | Self::Trap { plugin, .. }
            | Self::Busy { plugin, .. }
            | Self::OutputTooLarge { plugin, .. }
            | Self::InvalidInfo { plugin, .. }
            | Self::InvalidDigest { plugin, .. }
            | Self::DigestMismatch { plugin, .. }
            | Self::Poisoned { plugin } => Some(plugin),
        }
    }
}

/// `2s`, `200ms`, `1.5s`: how a user would write the limit on the command line.
fn humanize(limit: Duration) -> String {
    if limit.subsec_millis() == 0 && limit.as_secs() > 0 {
        format!("{}s", limit.as_secs())
    } else if limit.as_secs() == 0 {
        format!("{}ms", limit.as_millis())
    } else {
        format!("{:.1}s", limit.as_secs_f64())
    }
}

/// `64 MiB`, `512 KiB`, `1000 bytes`.
fn humanize_bytes(bytes: usize) -> String {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> PluginId {
        PluginId::new(
            "postgres",
            "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56abcd",
        )
    }

    #[test]
    fn deadline_message_names_plugin_digest_limit_and_fix() {
        let error = RuntimeError::DeadlineExceeded {
            plugin: id(),
            function: "backup",
            limit: Duration::from_secs(2),
        };
        assert_eq!(
            error.to_string(),
            "plugin postgres (sha256:ab12cd34ef56…): backup exceeded its 2s deadline; raise the \
             plugin timeout or fix the plugin"
        );
    }

    #[test]
    fn sub_second_limits_read_as_milliseconds() {
        assert_eq!(humanize(Duration::from_millis(200)), "200ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn memory_limits_read_in_the_largest_exact_unit() {
        assert_eq!(humanize_bytes(64 << 20), "64 MiB");
        assert_eq!(humanize_bytes(1536 << 10), "1536 KiB");
        assert_eq!(humanize_bytes(1000), "1000 bytes");
    }

    #[test]
    fn short_digest_survives_a_malformed_digest() {
        let odd = PluginId::new("x", "sha256:ab");
        assert_eq!(odd.short_digest(), "sha256:ab");
    }
}
