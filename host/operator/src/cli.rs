use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dbo_controller::Passwords;
use dbo_plugin_runtime::{PluginRuntime, RuntimeConfig};
use rand::rngs::{OsRng, StdRng};
use rand::{SeedableRng, TryRngCore};

#[derive(Parser, Debug)]
#[command(
    name = "db-operator",
    version,
    about = "Manage databases on servers you already run; engines are sandboxed WebAssembly plugins"
)]
pub struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one object per line)
    /// for log collectors. The level comes from `DB_OPERATOR_LOG` (e.g. `info`, `db_operator=debug`).
    #[arg(long, global = true, value_enum, env = "DBO_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every object the operator would create for the resources in a file, without a cluster.
    Render(RenderArgs),
    /// Print the CustomResourceDefinitions (DbInstance, Database, DbRestore) as YAML.
    Crd,
    /// Work with engine plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the controllers against a Kubernetes cluster (in-cluster config or KUBECONFIG).
    Run(crate::serve::RunArgs),
    /// Start a local API server on 127.0.0.1, apply manifests, and run the controllers against it.
    Dev(crate::serve::DevArgs),
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Load a plugin in the sandbox and show what it is: name, versions, digest, capabilities, imports.
    Inspect {
        /// The plugin component (`.wasm`).
        file: PathBuf,
    },
    /// Run the conformance suite against a plugin: describe, every capability, host policy,
    /// determinism, secret handling, garbage input, call figures and golden cases.
    Test(crate::conformance::TestArgs),
}

#[derive(Parser, Debug)]
struct RenderArgs {
    /// YAML file or directory of YAML files with DbInstance, Database, DbRestore (and Secret) resources; `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    engines: crate::engines::EngineArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Generate passwords from this seed so the output is reproducible. For tests and diffs only.
    #[arg(long, hide = true)]
    insecure_password_seed: Option<u64>,
}

#[derive(Parser, Debug)]
pub struct SandboxArgs {
    /// Deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub(crate) plugin_timeout_ms: u64,
    /// Memory cap of one plugin call, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub(crate) plugin_memory_mib: usize,
}

impl SandboxArgs {
    fn runtime(&self) -> Result<PluginRuntime, CliError> {
        self.runtime_with_cache(None)
    }

    pub fn runtime_with_cache(
        &self,
        cache_dir: Option<PathBuf>,
    ) -> Result<PluginRuntime, CliError> {
        let config = RuntimeConfig {
            call_timeout: Duration::from_millis(self.plugin_timeout_ms),
            memory_limit_bytes: self.plugin_memory_mib.saturating_mul(1024 * 1024),
            cache_dir,
            ..RuntimeConfig::default()
        };
        PluginRuntime::new(config).map_err(|e| CliError::Plugin(Box::new(e)))
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: Box<dbo_api::manifest::ManifestError>,
    },
    #[error("{0}")]
    Render(#[from] dbo_render::RenderErrors),
    #[error("{0}")]
    Plugin(Box<dbo_plugin_runtime::RuntimeError>),
    #[error("--plugin {0:?}: expected NAME=FILE.wasm")]
    PluginFlag(String),
    #[error("{path}: no DbInstance, Database or DbRestore found; nothing to render")]
    Empty { path: String },
    #[error("writing output: {0}")]
    Output(String),
    #[error("--plugin-digest {0:?}: expected NAME=sha256:HEX")]
    DigestFlag(String),
    #[error("--plugin-digest {name}=...: no plugin serves engine {name:?}; loaded: {available}")]
    DigestUnknownEngine { name: String, available: String },
    #[error(
        "engine {name:?} ({origin}) has digest {found}, but --plugin-digest pins {expected}; refusing to serve it. Deploy the pinned build or update the pin"
    )]
    DigestMismatch {
        name: String,
        origin: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Serve(String),
    #[error("{failed} conformance check(s) failed; see the report")]
    Conformance { failed: usize, code: u8 },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::PluginFlag(_) | CliError::DigestFlag(_) => 2,
            CliError::Conformance { code, .. } => *code,
            _ => 1,
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Render(args) => render(args),
        Command::Crd => write_stdout(&dbo_api::crds_yaml()),
        Command::Plugin(PluginCommand::Inspect { file }) => inspect(&file),
        Command::Plugin(PluginCommand::Test(args)) => crate::conformance::run(args),
        Command::Run(args) => crate::serve::run(args),
        Command::Dev(args) => crate::serve::dev(args),
    }
}

pub(crate) fn write_stdout(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Output(e.to_string()))
}

/// Reads the inputs: files, every `*.yaml`/`*.yml` of a directory (sorted), or stdin.
fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        if shown == "-" {
            let text =
                std::io::read_to_string(std::io::stdin()).map_err(|source| CliError::Read {
                    path: "<stdin>".into(),
                    source,
                })?;
            out.push(("<stdin>".into(), text));
            continue;
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CliError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| CliError::Read {
                    path: shown.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            for f in files {
                out.push((f.display().to_string(), read(&f)?));
            }
        } else {
            out.push((shown, read(path)?));
        }
    }
    Ok(out)
}

/// Every manifest of the inputs, parsed strictly.
pub fn read_manifests(files: &[PathBuf]) -> Result<dbo_api::manifest::Manifests, CliError> {
    let mut manifests = dbo_api::manifest::Manifests::default();
    for (path, text) in read_inputs(files)? {
        let m = dbo_api::manifest::parse(&text).map_err(|source| CliError::Manifest {
            path: path.clone(),
            source: Box::new(source),
        })?;
        manifests.instances.extend(m.instances);
        manifests.databases.extend(m.databases);
        manifests.restores.extend(m.restores);
        manifests.secrets.extend(m.secrets);
        manifests.config_maps.extend(m.config_maps);
    }
    Ok(manifests)
}

fn render(args: RenderArgs) -> Result<(), CliError> {
    let manifests = read_manifests(&args.files)?;
    if manifests.instances.is_empty()
        && manifests.databases.is_empty()
        && manifests.restores.is_empty()
    {
        let path = args
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CliError::Empty { path });
    }

    let runtime = args.sandbox.runtime()?;
    let wanted = manifests
        .instances
        .iter()
        .map(|i| i.spec.engine.clone())
        .collect();
    let engines = crate::engines::Served {
        loaded: crate::engines::load_only(&runtime, &args.engines, Some(&wanted))?,
    };
    let mut passwords: Box<dyn dbo_render::PasswordSource> = match args.insecure_password_seed {
        Some(seed) => Box::new(Passwords(StdRng::seed_from_u64(seed))),
        None => Box::new(Passwords(StdRng::from_rng(&mut OsRng.unwrap_err()))),
    };
    let rendered = dbo_render::render(&manifests, &engines, passwords.as_mut())?;
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    let objects = rendered.objects();
    let text = match args.output {
        Format::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list).map_err(|e| CliError::Output(e.to_string()))? + "\n"
        }
        Format::Yaml => {
            let mut s = String::new();
            for o in &objects {
                s.push_str("---\n");
                s.push_str(&serde_yaml::to_string(o).map_err(|e| CliError::Output(e.to_string()))?);
            }
            s
        }
    };
    write_stdout(&text)
}

fn inspect(file: &Path) -> Result<(), CliError> {
    let runtime = SandboxArgs {
        plugin_timeout_ms: 2000,
        plugin_memory_mib: 64,
    }
    .runtime()?;
    let plugin = runtime
        .load_file(file)
        .map_err(|e| CliError::Plugin(Box::new(e)))?;
    let info = plugin.info();
    let caps = info
        .capabilities
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = String::new();
    s.push_str(&format!("name:         {}\n", info.name));
    s.push_str(&format!("version:      {}\n", info.version));
    s.push_str(&format!("api version:  {}\n", info.api_version));
    s.push_str(&format!("digest:       {}\n", plugin.digest()));
    s.push_str(&format!("capabilities: {caps}\n"));
    s.push_str("images:\n");
    for i in &info.images {
        s.push_str(&format!("  {}: {}\n", i.role, i.reference));
    }
    s.push_str("imports:\n");
    for i in plugin.imports() {
        s.push_str(&format!("  {i}\n"));
    }
    s.push_str("exports:\n");
    for e in plugin.exports() {
        s.push_str(&format!("  {e}\n"));
    }
    write_stdout(&s)
}
