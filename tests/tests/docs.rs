//! The repository's Markdown documents point at files that exist: a renamed script or a moved
//! crate must not leave the README sending readers nowhere.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

/// Directories that hold no documentation of the project.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name) {
                markdown_files(&path, out)?;
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
    Ok(())
}

/// Targets of inline links and images, `[text](target)` and `![alt](target "title")`.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            targets.push(target.to_owned());
            rest = &after[end + 1..];
        }
    }
    targets
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:") || target.starts_with('#')
}

#[test]
fn relative_links_in_markdown_documents_resolve() -> Result<()> {
    let root = dbo_e2e::repo_root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files)?;
    ensure!(
        files.iter().any(|f| f.ends_with("README.md")),
        "found no README.md under {}",
        root.display()
    );

    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let dir = file.parent().unwrap_or(&root);
        for target in link_targets(&text) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            if !dir.join(path).exists() {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                broken.push(format!("{}: {target}", shown.display()));
            }
        }
    }
    ensure!(
        broken.is_empty(),
        "links to files that do not exist:\n{}",
        broken.join("\n")
    );
    Ok(())
}

#[test]
fn links_are_found_outside_code_blocks_only() {
    let text = "See [the WIT](wit/v0.1/engine.wit) and ![logo](img/logo.png \"Logo\").\n\
                ```\n[not](a-link.md)\n```\n[web](https://example.com) [anchor](#layout)";
    assert_eq!(
        link_targets(text),
        [
            "wit/v0.1/engine.wit",
            "img/logo.png",
            "https://example.com",
            "#layout"
        ]
    );
}
