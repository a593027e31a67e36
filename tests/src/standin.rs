//! Stand-in command-line tools that record how a script calls them.
//!
//! Engines whose servers cannot be installed here (MongoDB, Elasticsearch, Neo4j) are checked by
//! contract: their Job scripts run in the pod runner with exactly the env and files of the
//! rendered Job, but `mongodump`, `curl` or `neo4j-admin` are small shell programs that save
//! their argv (and, when asked, their stdin), then print canned output, run a snippet, exit with
//! a chosen code, or hand over to the real program (`rclone` against the real S3 server).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use dbo_e2e::standin::{StandIn, StandIns};
//! let mut tools = StandIns::new()?;
//! tools.add(StandIn::new("mongodump").stdout(b"archive".to_vec()));
//! tools.add(StandIn::new("mongorestore").reads_stdin().exit(1));
//! // ... PodRunner::new(images)?.with_stand_ins(&tools), run a Job ...
//! for call in tools.calls()? {
//!     println!("{}", call.line());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The programs are `/bin/sh` scripts with the absolute path of their folder written in, and the
//! pod runner makes that folder visible (and the call log writable) at the same path inside the
//! container, so calls from any container user land in one ordered log.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::pod_runner::TOOLS_DIR;

/// What one stand-in does after recording its call.
#[derive(Debug, Clone)]
pub struct StandIn {
    name: String,
    reads_stdin: bool,
    stdout: Option<Vec<u8>>,
    script: Option<String>,
    exit: i32,
    wraps: Option<PathBuf>,
}

impl StandIn {
    /// A program `name` that records its call and exits 0 without output.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reads_stdin: false,
            stdout: None,
            script: None,
            exit: 0,
            wraps: None,
        }
    }

    /// A program `name` that records its call, then `exec`s the real program at `real` with the
    /// same arguments and stdin (which it does not read itself).
    pub fn wrap(name: impl Into<String>, real: impl Into<PathBuf>) -> Self {
        Self {
            wraps: Some(real.into()),
            ..Self::new(name)
        }
    }

    /// Saves everything on stdin with the call (a restore tool fed from S3, say).
    pub fn reads_stdin(mut self) -> Self {
        self.reads_stdin = true;
        self
    }

    /// Prints `bytes` on stdout (a dump tool's archive, an API answer).
    pub fn stdout(mut self, bytes: Vec<u8>) -> Self {
        self.stdout = Some(bytes);
        self
    }

    /// Runs the `sh` snippet after recording (and after printing [`stdout`](Self::stdout)); `$@`
    /// are the call's arguments and `$call` is the call's folder ([`Call::dir`]). The snippet's
    /// own `exit` wins over [`exit`](Self::exit).
    pub fn script(mut self, snippet: impl Into<String>) -> Self {
        self.script = Some(snippet.into());
        self
    }

    /// Exits with `code` (default 0).
    pub fn exit(mut self, code: i32) -> Self {
        self.exit = code;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub tool: String,
    pub args: Vec<String>,
    /// What the program read on stdin, when it was made to read it.
    pub stdin: Option<Vec<u8>>,
    /// The call's own folder (`$call` in a [`StandIn::script`] snippet), where a snippet may
    /// leave files for the test (a config file the tool was pointed at, say).
    pub dir: PathBuf,
}

impl Call {
    /// `tool arg1 arg2 ...`, for assertion messages.
    pub fn line(&self) -> String {
        std::iter::once(self.tool.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether any argument contains `needle` (a secret that must not be there, say).
    pub fn mentions(&self, needle: &str) -> bool {
        self.args.iter().any(|a| a.contains(needle))
    }
}

/// A folder of stand-in programs and their call log.
#[derive(Debug)]
pub struct StandIns {
    dir: tempfile::TempDir,
    tools: Vec<StandIn>,
}

impl StandIns {
    /// An empty set, in a folder containers can see at the same path. It lies outside `/tmp`,
    /// because Job pods mount an `emptyDir` there, which would hide it.
    pub fn new() -> io::Result<Self> {
        let base = ["/var/tmp", "/tmp"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_dir())
            .map_or_else(std::env::temp_dir, Path::to_owned);
        let dir = tempfile::Builder::new()
            .prefix("dbo-standins-")
            .tempdir_in(base)?;
        // Containers run as an unprivileged user: it must reach the programs and write the log.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        for (sub, mode) in [("bin", 0o755), ("data", 0o755), ("calls", 0o777)] {
            let path = dir.path().join(sub);
            fs::create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        Ok(Self {
            dir,
            tools: Vec::new(),
        })
    }

    /// Adds (or replaces) a stand-in.
    pub fn add(&mut self, tool: StandIn) -> &mut Self {
        self.tools.retain(|t| t.name != tool.name);
        self.tools.push(tool);
        self
    }

    /// The folder the pod runner must make visible and writable at the same path.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The programs to put in the container's tool directory, by name: each stand-in, plus
    /// `.real-<name>` for the real program a wrapping stand-in hands over to.
    pub fn programs(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for tool in &self.tools {
            validate_name(&tool.name)?;
            let script = self.dir.path().join("bin").join(&tool.name);
            fs::write(&script, self.program(tool)?)?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
            out.push((tool.name.clone(), script));
            if let Some(real) = &tool.wraps {
                out.push((format!(".real-{}", tool.name), real.clone()));
            }
        }
        Ok(out)
    }

    fn program(&self, tool: &StandIn) -> io::Result<String> {
        let calls = self.dir.path().join("calls");
        let mut s = format!(
            "#!/bin/sh\n\
             # Stand-in for {name}: records the call, then behaves as the test asked.\n\
             n=0\n\
             while ! mkdir {calls}/$(printf %06d \"$n\") 2>/dev/null; do n=$((n + 1)); done\n\
             call={calls}/$(printf %06d \"$n\")\n\
             printf '%s' {name} > \"$call/tool\"\n\
             for arg in \"$@\"; do printf '%s\\0' \"$arg\"; done > \"$call/argv\"\n",
            name = tool.name,
            calls = sh_quote(&calls.display().to_string()),
        );
        if tool.reads_stdin {
            s.push_str("cat > \"$call/stdin\"\n");
        }
        if tool.wraps.is_some() {
            s.push_str(&format!("exec {TOOLS_DIR}/.real-{} \"$@\"\n", tool.name));
            return Ok(s);
        }
        if let Some(bytes) = &tool.stdout {
            let data = self
                .dir
                .path()
                .join("data")
                .join(format!("{}.stdout", tool.name));
            fs::write(&data, bytes)?;
            fs::set_permissions(&data, fs::Permissions::from_mode(0o644))?;
            s.push_str(&format!("cat {}\n", sh_quote(&data.display().to_string())));
        }
        if let Some(snippet) = &tool.script {
            s.push_str(snippet);
            s.push('\n');
        }
        s.push_str(&format!("exit {}\n", tool.exit));
        Ok(s)
    }

    /// Every call so far, in the order the programs started: each call claims the next free
    /// number, whichever program it is.
    pub fn calls(&self) -> io::Result<Vec<Call>> {
        let dir = self.dir.path().join("calls");
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        let mut calls = Vec::new();
        for entry in entries {
            let tool = fs::read_to_string(entry.join("tool")).unwrap_or_default();
            let argv = fs::read(entry.join("argv")).unwrap_or_default();
            let args = argv
                .split(|b| *b == 0)
                .filter(|_| !argv.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>();
            // `printf '%s\0'` ends every argument with NUL, so the last piece is empty.
            let args = match args.split_last() {
                Some((last, rest)) if last.is_empty() => rest.to_vec(),
                _ => args,
            };
            let stdin = fs::read(entry.join("stdin")).ok();
            calls.push(Call {
                tool,
                args,
                stdin,
                dir: entry,
            });
        }
        Ok(calls)
    }

    /// The calls of one program, in order.
    pub fn calls_of(&self, tool: &str) -> io::Result<Vec<Call>> {
        Ok(self
            .calls()?
            .into_iter()
            .filter(|c| c.tool == tool)
            .collect())
    }

    /// Forgets the calls so far (between two Jobs of one test).
    pub fn clear_calls(&self) -> io::Result<()> {
        let dir = self.dir.path().join("calls");
        for entry in fs::read_dir(&dir)? {
            fs::remove_dir_all(entry?.path())?;
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a program name a stand-in can take"),
        ))
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn run(program: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stand-in starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child.wait_with_output().expect("stand-in ends")
    }

    fn program(tools: &StandIns, name: &str) -> PathBuf {
        tools
            .programs()
            .expect("programs")
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .expect("program")
    }

    #[test]
    fn calls_are_recorded_in_order_with_awkward_arguments_intact() {
        let mut tools = StandIns::new().expect("stand-ins");
        tools.add(StandIn::new("dump").stdout(b"ARCHIVE".to_vec()));
        tools.add(StandIn::new("load").reads_stdin().exit(3));
        let out = run(&program(&tools, "dump"), &["--uri", "a b", "", "it's"], b"");
        assert_eq!(out.stdout, b"ARCHIVE");
        assert!(out.status.success());
        let out = run(&program(&tools, "load"), &["--archive"], b"bytes\0in");
        assert_eq!(out.status.code(), Some(3));

        let out = run(&program(&tools, "dump"), &["again"], b"");
        assert!(out.status.success());

        let calls = tools.calls().expect("calls");
        assert_eq!(calls.len(), 3);
        assert_eq!(
            calls[2].line(),
            "dump again",
            "calls of different tools interleave in time"
        );
        assert_eq!(calls[0].tool, "dump");
        assert_eq!(calls[0].args, ["--uri", "a b", "", "it's"]);
        assert_eq!(calls[0].stdin, None);
        assert_eq!(calls[1].line(), "load --archive");
        assert_eq!(calls[1].stdin.as_deref(), Some(&b"bytes\0in"[..]));
        assert!(calls[0].mentions("it'"));

        tools.clear_calls().expect("clear");
        assert!(tools.calls().expect("calls").is_empty());
    }

    #[test]
    fn a_call_without_arguments_has_none() {
        let mut tools = StandIns::new().expect("stand-ins");
        tools.add(StandIn::new("ping").script("echo pong; exit 4"));
        let out = run(&program(&tools, "ping"), &[], b"");
        assert_eq!(out.stdout, b"pong\n");
        assert_eq!(out.status.code(), Some(4), "the snippet's exit wins");
        assert_eq!(tools.calls().expect("calls")[0].args, Vec::<String>::new());
    }

    #[test]
    fn a_wrapping_stand_in_hands_over_to_the_real_program() {
        let mut tools = StandIns::new().expect("stand-ins");
        tools.add(StandIn::wrap("rclone", "/usr/bin/true"));
        let programs = tools.programs().expect("programs");
        let names: Vec<&str> = programs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rclone", ".real-rclone"]);
        let script = fs::read_to_string(&programs[0].1).expect("script");
        assert!(
            script.contains("exec /opt/image-emulation/bin/.real-rclone \"$@\""),
            "{script}"
        );
    }

    #[test]
    fn names_that_are_not_program_names_are_refused() {
        let mut tools = StandIns::new().expect("stand-ins");
        tools.add(StandIn::new("../evil"));
        assert!(tools.programs().is_err());
    }
}
