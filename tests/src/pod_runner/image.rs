//! What a container image contributes to a container: read from the image's build directory
//! (`deploy/images/<engine>/`), never from a registry.
//!
//! The layout is the one `docs/architecture.md` fixes: a `Dockerfile` whose final stage's `ENV`,
//! `ENTRYPOINT`, `CMD`, `WORKDIR` and `USER` are the image's config, and whose `COPY <dir>/ /`
//! instructions lay `rootfs/` folders over `/` in order. Sources are looked up in the image
//! directory, then in its parent (`deploy/images/`, the build context the engine images use to
//! share `common/rootfs/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `PATH` Docker gives an image whose base sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image the runner can run, as its Dockerfile describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The build directory.
    pub dir: PathBuf,
    /// The folders the final stage copies to `/`, in order (`rootfs/` of the build directory
    /// when the Dockerfile copies none).
    pub rootfs: Vec<PathBuf>,
    /// The final stage's `ENV`, in order, expanded as Docker expands them.
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image directory {dir}: cannot read its Dockerfile: {source}")]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image directory {dir}: Dockerfile line {line}: {message}")]
    Syntax {
        dir: PathBuf,
        line: usize,
        message: String,
    },
}

impl Image {
    /// Reads `dir/Dockerfile` and finds the folders it copies to `/`.
    pub fn load(dir: &Path) -> Result<Image, ImageError> {
        let text =
            std::fs::read_to_string(dir.join("Dockerfile")).map_err(|source| ImageError::Read {
                dir: dir.to_owned(),
                source,
            })?;
        let config = parse(&text).map_err(|(line, message)| ImageError::Syntax {
            dir: dir.to_owned(),
            line,
            message,
        })?;
        let mut rootfs = Vec::new();
        for (line, source) in &config.copies {
            let candidates = [Some(dir.join(source)), dir.parent().map(|p| p.join(source))];
            let found = candidates.into_iter().flatten().find(|p| p.is_dir());
            rootfs.push(found.ok_or_else(|| ImageError::Syntax {
                dir: dir.to_owned(),
                line: *line,
                message: format!(
                    "COPY {source} /: no folder {source:?} in the image directory or its parent"
                ),
            })?);
        }
        if config.copies.is_empty() && dir.join("rootfs").is_dir() {
            rootfs.push(dir.join("rootfs"));
        }
        Ok(Image {
            dir: dir.to_owned(),
            rootfs,
            env: config.env,
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            workdir: config.workdir,
            user: config.user,
        })
    }

    /// The image's `PATH`, Docker's default when no `ENV` sets it.
    pub fn path(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
    }
}

/// The config of one build stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Config {
    env: Vec<(String, String)>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    workdir: Option<String>,
    user: Option<String>,
    /// `(line, source)` of each `COPY <folder>/ /` from the build context.
    copies: Vec<(usize, String)>,
}

impl Config {
    fn set_env(&mut self, key: String, value: String) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value));
    }

    fn lookup(&self, args: &BTreeMap<String, String>, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| args.get(name).cloned())
            .or_else(|| (name == "PATH").then(|| DEFAULT_PATH.to_owned()))
    }
}

type ParseError = (usize, String);

/// The final stage's config. A stage `FROM` an earlier stage starts from that stage's config; one
/// `FROM` an external image starts empty, because its config is not known here.
fn parse(text: &str) -> Result<Config, ParseError> {
    let mut stages: BTreeMap<String, Config> = BTreeMap::new();
    // The stage being read, with its `AS` alias.
    let mut current: Option<(Option<String>, Config)> = None;
    let mut args: BTreeMap<String, String> = BTreeMap::new();

    for (line, instruction) in logical_lines(text) {
        let (keyword, rest) = match instruction.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_ascii_uppercase(), r.trim()),
            None => (instruction.to_ascii_uppercase(), ""),
        };
        if keyword == "FROM" {
            if let Some((Some(alias), config)) = current.take() {
                stages.insert(alias, config);
            }
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let alias = match words.as_slice() {
                [_, as_kw, alias] if as_kw.eq_ignore_ascii_case("as") => {
                    Some(alias.to_ascii_lowercase())
                }
                _ => None,
            };
            let base = words
                .first()
                .map(|b| b.to_ascii_lowercase())
                .unwrap_or_default();
            current = Some((alias, stages.get(&base).cloned().unwrap_or_default()));
            continue;
        }
        if keyword == "ARG" {
            for word in split_words(rest).map_err(|m| (line, m))? {
                if let Some((k, v)) = word.split_once('=') {
                    args.insert(k.to_owned(), v.to_owned());
                }
            }
            continue;
        }
        let Some((_, config)) = current.as_mut() else {
            return Err((line, format!("{keyword} before the first FROM")));
        };
        match keyword.as_str() {
            "ENV" => {
                for (key, raw) in env_pairs(rest).map_err(|m| (line, m))? {
                    let value = expand(&raw, |name| config.lookup(&args, name));
                    config.set_env(key, value);
                }
            }
            "ENTRYPOINT" => {
                config.entrypoint = Some(command_form(rest).map_err(|m| (line, m))?);
                // Docker: an ENTRYPOINT resets a CMD inherited from the base.
                config.cmd = None;
            }
            "CMD" => config.cmd = Some(command_form(rest).map_err(|m| (line, m))?),
            "WORKDIR" => {
                let dir = expand(rest, |name| config.lookup(&args, name));
                config.workdir = Some(match &config.workdir {
                    Some(base) if !dir.starts_with('/') => format!("{base}/{dir}"),
                    _ => dir,
                });
            }
            "USER" => config.user = Some(expand(rest, |name| config.lookup(&args, name))),
            "COPY" => {
                let words = split_words(rest).map_err(|m| (line, m))?;
                // Files from another stage (`--from`) are not in the build context.
                if !words.iter().any(|w| w.starts_with("--from")) {
                    let paths: Vec<&String> =
                        words.iter().filter(|w| !w.starts_with("--")).collect();
                    if let [source, dest] = paths.as_slice()
                        && dest.as_str() == "/"
                    {
                        config
                            .copies
                            .push((line, source.trim_end_matches('/').to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    current
        .map(|(_, config)| config)
        .ok_or((1, "no FROM instruction".to_owned()))
}

/// Instructions with their 1-based starting line, continuation lines joined, comments dropped.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (start, mut buffer) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(head) = trimmed.strip_suffix('\\') {
            buffer.push_str(head);
            buffer.push(' ');
            pending = Some((start, buffer));
        } else {
            buffer.push_str(trimmed);
            if !buffer.trim().is_empty() {
                out.push((start, buffer.trim().to_owned()));
            }
        }
    }
    if let Some((start, buffer)) = pending
        && !buffer.trim().is_empty()
    {
        out.push((start, buffer.trim().to_owned()));
    }
    out
}

/// `ENV a=1 b="two words"` or the legacy `ENV a one value`.
fn env_pairs(rest: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (key, value) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("ENV {rest:?} has no value"))?;
        return Ok(vec![(key.to_owned(), value.trim().to_owned())]);
    }
    split_words(rest)?
        .into_iter()
        .map(|word| {
            word.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("ENV item {word:?} is not KEY=VALUE"))
        })
        .collect()
}

/// Splits on unquoted whitespace, removing quotes and backslash escapes as Docker does, but
/// keeping `$` references for [`expand`].
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        Some(q) if q == quote => break,
                        Some('\\') if quote == '"' => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(format!("unterminated quote in {text:?}")),
                        },
                        Some(other) => word.push(other),
                        None => return Err(format!("unterminated quote in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `["exec", "form"]`, or the shell form wrapped in `/bin/sh -c` as Docker does.
fn command_form(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        serde_json::from_str(rest)
            .map_err(|e| format!("{rest} is not a JSON array of strings: {e}"))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
    }
}

/// Docker's variable substitution: `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alt}`.
/// Unknown names become empty, as in Docker.
fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('{') => {
                chars.next();
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let value = if let Some((name, default)) = inner.split_once(":-") {
                    lookup(name)
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| default.to_owned())
                } else if let Some((name, alt)) = inner.split_once(":+") {
                    lookup(name)
                        .filter(|v| !v.is_empty())
                        .map(|_| alt.to_owned())
                        .unwrap_or_default()
                } else {
                    lookup(&inner).unwrap_or_default()
                };
                out.push_str(&value);
            }
            Some(n) if n.is_ascii_alphabetic() || *n == '_' => {
                let mut name = String::new();
                while let Some(n) = chars
                    .peek()
                    .filter(|n| n.is_ascii_alphanumeric() || **n == '_')
                {
                    name.push(*n);
                    chars.next();
                }
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            _ => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(config: &Config) -> Vec<(&str, &str)> {
        config
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn env_lines_in_both_forms_with_quotes_and_continuations() {
        let config = parse(
            "# syntax=docker/dockerfile:1\n\
             FROM debian:bookworm-slim\n\
             ENV RCLONE_CONFIG=/etc/rclone/rclone.conf \\\n    GREETING=\"hello world\"\n\
             ENV LEGACY some value\n",
        )
        .expect("parses");
        assert_eq!(
            env(&config),
            [
                ("RCLONE_CONFIG", "/etc/rclone/rclone.conf"),
                ("GREETING", "hello world"),
                ("LEGACY", "some value"),
            ]
        );
    }

    #[test]
    fn env_values_expand_earlier_values_and_the_default_path() {
        let config = parse(
            "FROM debian\n\
             ARG PG_MAJOR=15\n\
             ENV PGBIN=/usr/lib/postgresql/${PG_MAJOR}/bin\n\
             ENV PATH=$PGBIN:$PATH UNSET=${NOPE:-fallback}\n",
        )
        .expect("parses");
        assert_eq!(
            env(&config),
            [
                ("PGBIN", "/usr/lib/postgresql/15/bin"),
                (
                    "PATH",
                    &*format!("/usr/lib/postgresql/15/bin:{DEFAULT_PATH}")
                ),
                ("UNSET", "fallback"),
            ]
        );
    }

    #[test]
    fn only_the_final_stage_counts_unless_it_builds_on_an_earlier_one() {
        let separate =
            parse("FROM rust AS build\nENV BUILD_ONLY=1\nFROM debian\nENV RUNTIME=1\nUSER 70\n")
                .expect("parses");
        assert_eq!(env(&separate), [("RUNTIME", "1")]);
        assert_eq!(separate.user.as_deref(), Some("70"));

        let chained = parse("FROM debian AS base\nENV A=1\nFROM base\nENV B=2\n").expect("parses");
        assert_eq!(env(&chained), [("A", "1"), ("B", "2")]);
    }

    #[test]
    fn entrypoint_cmd_and_workdir() {
        let config = parse(
            "FROM debian\nCMD [\"--help\"]\nENTRYPOINT [\"/usr/local/bin/db-backup\"]\n\
             WORKDIR /srv\nWORKDIR sub\n",
        )
        .expect("parses");
        assert_eq!(
            config.entrypoint,
            Some(vec!["/usr/local/bin/db-backup".to_owned()])
        );
        assert_eq!(config.cmd, None, "ENTRYPOINT resets an earlier CMD");
        assert_eq!(config.workdir.as_deref(), Some("/srv/sub"));

        let shell = parse("FROM debian\nCMD echo hi\n").expect("parses");
        assert_eq!(
            shell.cmd,
            Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "echo hi".to_owned()
            ])
        );
    }

    #[test]
    fn broken_dockerfiles_name_the_line() {
        assert_eq!(parse("ENV A=1\n").expect_err("no FROM").0, 1);
        let (line, message) = parse("FROM debian\n\nENV A=\"open\n").expect_err("quote");
        assert_eq!(line, 3);
        assert!(message.contains("unterminated quote"), "{message}");
        assert!(parse("FROM debian\nENTRYPOINT [\"a\", 1]\n").is_err());
    }
}
