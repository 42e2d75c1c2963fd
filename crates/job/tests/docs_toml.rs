//! Every TOML block in the documentation is a configuration the command accepts as
//! written: each ```toml fence of README.md and docs/ (recursively) is loaded through the
//! real loader, `JobConfig::load`, which refuses unknown keys and values of the wrong type.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ca_notify_job::JobConfig;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "md") {
            out.push(path);
        }
    }
}

/// The ```toml blocks of `text`, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```toml") => current = Some((i + 1, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_toml_block_in_the_docs_loads_as_written() {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    markdown_files(&root.join("docs"), &mut files);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut loaded = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("markdown");
        for (line, block) in toml_blocks(&text) {
            let path = dir.path().join(format!("block-{loaded}-{line}.toml"));
            std::fs::write(&path, &block).expect("write");
            match JobConfig::load(Some(&path), &HashMap::new()) {
                Ok(_) => {}
                Err(e) => failures.push(format!("{}:{line}: {e}", file.display())),
            }
            loaded += 1;
        }
    }
    assert!(
        loaded > 0,
        "no TOML block found in the docs; the test would prove nothing"
    );
    assert!(
        failures.is_empty(),
        "TOML blocks the command refuses:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_refused_block_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[snowflake]\nauth.key_pair.private_key_pem = \"x\"\n",
    )
    .expect("write");
    let blocks = toml_blocks("```toml\n[store]\nkind = \"sqlite\"\n```\n");
    assert_eq!(blocks, vec![(1, "[store]\nkind = \"sqlite\"\n".to_owned())]);
    let err = JobConfig::load(Some(&path), &HashMap::new()).expect_err("an unknown key");
    assert!(err.to_string().contains("auth"), "{err}");
}
