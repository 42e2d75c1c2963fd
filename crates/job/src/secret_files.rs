//! Settings read from files: the convention of the schedulers the job runs under.
//!
//! Kubernetes mounts a `Secret` as files, systemd hands `LoadCredential=` secrets over as
//! files in `$CREDENTIALS_DIRECTORY`, Docker and Azure mount them too; none of them wants
//! a secret in an environment variable, where `/proc/<pid>/environ`, crash reports and
//! child processes can see it. So every setting can also come from a file, in two ways:
//!
//! - **environment**: `CA_NOTIFY__SECTION__KEY_FILE=/path` stands for
//!   `CA_NOTIFY__SECTION__KEY` with the file's contents, for any key of any section
//!   (Snowflake's key-pair keys included), and sits in the environment layer;
//! - **file**: a TOML key `key_file = "/path"` stands for `key` with the file's contents,
//!   in the TOML layer (`twilio.auth_token_file`, `verification.api_key_file`,
//!   `dedup.secret_file`, and any other key).
//!
//! The suffix `_file` is reserved for this: no setting's own name ends with it (a test
//! holds every section to that). The contents are taken as written except for trailing
//! line breaks (`echo secret > file` and `kubectl create secret --from-file` both leave
//! one). Giving a key both ways in one layer, an unreadable file and an empty file are
//! errors naming the key and the path — never the contents.

use std::collections::HashMap;
use std::path::Path;

use ca_notify_ports::config::{ConfigError, ConfigErrors};

/// The suffix that turns a key into "the file holding that key's value".
pub const FILE_SUFFIX: &str = "_file";

/// The environment's `…_FILE` variables replaced by the variable they stand for, read from
/// their files. Every other variable is kept as it is.
///
/// # Errors
/// Every problem at once, each naming the setting's key (`dedup.secret`), never its value.
pub fn resolve_env(
    env: HashMap<String, String>,
    prefix: &str,
) -> Result<HashMap<String, String>, ConfigErrors> {
    let suffix = FILE_SUFFIX.to_ascii_uppercase();
    let mut resolved = HashMap::with_capacity(env.len());
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for (name, value) in env {
        match name.strip_suffix(&suffix) {
            Some(target) if target.starts_with(prefix) => files.push((target.to_owned(), value)),
            _ => {
                resolved.insert(name, value);
            }
        }
    }
    for (target, path) in files {
        let key = env_key(&target, prefix);
        if resolved.contains_key(&target) {
            problems.push(both_ways(&key, &format!("{target} and {target}{suffix}")));
            continue;
        }
        match read(&key, Path::new(&path)) {
            Ok(contents) => {
                resolved.insert(target, contents);
            }
            Err(e) => problems.push(e),
        }
    }
    ConfigErrors::check(sorted(problems)).map(|()| resolved)
}

/// A TOML document with every `key_file = "/path"` replaced by `key = "<contents>"`, at
/// any depth.
///
/// # Errors
/// Every problem at once, each naming the key (`twilio.auth_token`), never its value.
pub fn resolve_toml(document: &mut toml::Table) -> Result<(), ConfigErrors> {
    let mut problems = Vec::new();
    resolve_table(document, "", &mut problems);
    ConfigErrors::check(sorted(problems))
}

fn resolve_table(table: &mut toml::Table, at: &str, problems: &mut Vec<ConfigError>) {
    let names: Vec<String> = table.keys().cloned().collect();
    for name in names {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if let Some(toml::Value::Table(inner)) = table.get_mut(&name) {
            resolve_table(inner, &path, problems);
            continue;
        }
        let Some(target) = name.strip_suffix(FILE_SUFFIX) else {
            continue;
        };
        let key = path[..path.len() - FILE_SUFFIX.len()].to_owned();
        let Some(value) = table.remove(&name) else {
            continue;
        };
        if table.contains_key(target) {
            problems.push(both_ways(&key, &format!("{key} and {path}")));
            continue;
        }
        let Some(file) = value.as_str() else {
            problems.push(
                ConfigError::new(path.clone(), "must be a quoted path")
                    .with_allowed("a file path, as a TOML string"),
            );
            continue;
        };
        match read(&key, Path::new(file)) {
            Ok(contents) => {
                table.insert(target.to_owned(), toml::Value::String(contents));
            }
            Err(e) => problems.push(e),
        }
    }
}

/// The file's contents without trailing line breaks.
fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(key.to_owned(), format!("cannot read {shown}: {}", e.kind()))
            .with_allowed("a readable file holding the value")
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ConfigError::new(key.to_owned(), format!("{shown} is not UTF-8 text"))
            .with_allowed("a text file holding the value")
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(
            ConfigError::new(key.to_owned(), format!("{shown} is empty"))
                .with_allowed("a file holding the value"),
        );
    }
    Ok(value.to_owned())
}

fn both_ways(key: &str, names: &str) -> ConfigError {
    ConfigError::new(key.to_owned(), format!("is given twice: {names}"))
        .with_allowed("the value or the file holding it, not both")
}

/// `CA_NOTIFY__TWILIO__AUTH_TOKEN` → `twilio.auth_token`.
fn env_key(variable: &str, prefix: &str) -> String {
    variable
        .strip_prefix(prefix)
        .unwrap_or(variable)
        .trim_start_matches('_')
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

fn sorted(mut problems: Vec<ConfigError>) -> Vec<ConfigError> {
    problems.sort_by(|a, b| a.key().cmp(b.key()));
    problems
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const PREFIX: &str = "CA_NOTIFY__";

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> String {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(contents))
            .expect("write");
        path.display().to_string()
    }

    #[test]
    fn a_file_variable_stands_for_its_variable_without_trailing_line_breaks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = file(&dir, "one", b"s3cret-value\n");
        let crlf = file(&dir, "crlf", b"  spaced value \r\n\r\n");
        let resolved = resolve_env(
            env(&[
                ("CA_NOTIFY__DEDUP__SECRET_FILE", &one),
                ("CA_NOTIFY__SNOWFLAKE__PRIVATE_KEY_FILE", &crlf),
                ("PATH", "/bin"),
                ("OTHER_FILE", "/not/ours"),
            ]),
            PREFIX,
        )
        .expect("resolves");
        assert_eq!(resolved["CA_NOTIFY__DEDUP__SECRET"], "s3cret-value");
        // Only line breaks go: the rest is the value as written.
        assert_eq!(
            resolved["CA_NOTIFY__SNOWFLAKE__PRIVATE_KEY"],
            "  spaced value "
        );
        assert_eq!(resolved["PATH"], "/bin");
        assert_eq!(resolved["OTHER_FILE"], "/not/ours");
        assert!(!resolved.contains_key("CA_NOTIFY__DEDUP__SECRET_FILE"));
    }

    #[test]
    fn unreadable_empty_and_doubled_are_errors_naming_the_key_never_the_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = file(&dir, "empty", b"\n");
        let given = file(&dir, "given", b"do-not-show-me-1\n");
        let missing = dir.path().join("absent").display().to_string();
        let err = resolve_env(
            env(&[
                ("CA_NOTIFY__VERIFICATION__API_KEY_FILE", &missing),
                ("CA_NOTIFY__TWILIO__AUTH_TOKEN_FILE", &empty),
                ("CA_NOTIFY__DEDUP__SECRET_FILE", &given),
                ("CA_NOTIFY__DEDUP__SECRET", "do-not-show-me-2"),
            ]),
            PREFIX,
        )
        .expect_err("three problems");
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert_eq!(err.0[0].key(), "dedup.secret", "{text}");
        assert_eq!(err.0[1].key(), "twilio.auth_token", "{text}");
        assert_eq!(err.0[2].key(), "verification.api_key", "{text}");
        assert!(
            text.contains(&missing) && text.contains("not found"),
            "{text}"
        );
        assert!(text.contains(&empty) && text.contains("empty"), "{text}");
        assert!(text.contains("given twice"), "{text}");
        assert!(!text.contains("do-not-show-me"), "contents shown: {text}");
    }

    #[test]
    fn a_toml_file_key_stands_for_its_key_at_any_depth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = file(&dir, "token", b"tok\n");
        let mut doc: toml::Table =
            format!("workers = 2\n[twilio]\nauth_token_file = {token:?}\naccount_sid = \"AC1\"\n")
                .parse()
                .expect("toml");
        resolve_toml(&mut doc).expect("resolves");
        let twilio = doc["twilio"].as_table().expect("table");
        assert_eq!(twilio["auth_token"].as_str(), Some("tok"));
        assert!(!twilio.contains_key("auth_token_file"));
        assert_eq!(twilio["account_sid"].as_str(), Some("AC1"));
    }

    #[test]
    fn toml_problems_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = file(&dir, "secret", b"do-not-show-me\n");
        let mut doc: toml::Table = format!(
            "[dedup]\nsecret = \"x\"\nsecret_file = {secret:?}\n[verification]\napi_key_file = 7\n"
        )
        .parse()
        .expect("toml");
        let text = resolve_toml(&mut doc)
            .expect_err("two problems")
            .to_string();
        assert!(
            text.contains("dedup.secret") && text.contains("given twice"),
            "{text}"
        );
        assert!(text.contains("verification.api_key_file"), "{text}");
        assert!(!text.contains("do-not-show-me"), "{text}");
    }
}
