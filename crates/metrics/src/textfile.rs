//! The file for node_exporter's textfile collector, written atomically: the collector
//! reads every `*.prom` file of its directory at each scrape, so the text goes to a
//! temporary file in the same directory first and is renamed over the target, and a
//! scrape sees the old file or the new one, never half of one (node_exporter's
//! `README.md`, "Textfile Collector").

use std::io::Write as _;
use std::path::Path;

/// Writes `text` to `path` atomically, readable by the collector (mode 0644).
///
/// # Errors
/// One line naming the file and what failed.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".ca-notify-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temporary file beside", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| fail("cannot write the metrics for", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| fail("cannot make readable the metrics for", e))?;
    }
    file.persist(path)
        .map_err(|e| fail("cannot move the metrics into place at", e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca_notify.prom");
        std::fs::write(&path, "old 1\n").expect("old file");
        write_atomically(&path, "new 2\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new 2\n");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["ca_notify.prom".to_owned()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = write_atomically(Path::new("/nonexistent-dir/x.prom"), "a 1\n")
            .expect_err("no directory");
        assert!(err.contains("/nonexistent-dir/x.prom"), "{err}");
    }
}
