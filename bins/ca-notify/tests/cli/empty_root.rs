//! The one artefact alone: the static binary (`scripts/build-static.sh`) in an empty root
//! directory — nothing but the binary and a temporary folder, no libc, no `/etc`, no
//! certificate store — runs a full in-memory demo as a non-root user. This proves what
//! the `FROM scratch` image (`Dockerfile`) holds is enough, without an image builder.
//!
//! The binary is `target/dist/ca-notify`, or `CA_NOTIFY_STATIC_BIN`; `scripts/test.sh`
//! builds it first. Without it, or without `chroot` and root, these tests fail: they
//! never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The size goal of the one artefact.
const SIZE_GOAL: u64 = 25 * 1024 * 1024;

fn static_binary() -> PathBuf {
    let path = std::env::var_os("CA_NOTIFY_STATIC_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dist/ca-notify"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no static binary at {}: run scripts/build-static.sh first (scripts/test.sh does), \
         or point CA_NOTIFY_STATIC_BIN at one",
        path.display()
    );
    path
}

/// Whether the ELF file asks for a dynamic loader (a `PT_INTERP` program header).
fn asks_for_a_loader(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes"));
    let phoff = usize::try_from(phoff).expect("offset");
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes")) == 3
    })
}

fn version(program: &Path) -> String {
    let out = Command::new(program)
        .arg("--version")
        .env_clear()
        .output()
        .expect("runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("text")
}

#[test]
fn the_static_binary_is_static_small_and_this_build() {
    let path = static_binary();
    let elf = std::fs::read(&path).expect("readable");
    assert!(
        !asks_for_a_loader(&elf),
        "{} is dynamically linked",
        path.display()
    );
    let size = elf.len() as u64;
    eprintln!("static binary: {size} bytes");
    assert!(size <= SIZE_GOAL, "{size} bytes, over the {SIZE_GOAL} goal");
    // The same version and commit as the binary cargo built for these tests: not stale.
    let ours = version(Path::new(env!("CARGO_BIN_EXE_ca-notify")));
    assert_eq!(version(&path), ours, "rebuild it: scripts/build-static.sh");
    assert!(
        ours.contains(env!("CARGO_PKG_VERSION")) && ours.contains("commit"),
        "{ours}"
    );
    // And the check itself can fail: the test binary is dynamically linked.
    let dynamic = std::fs::read(env!("CARGO_BIN_EXE_ca-notify")).expect("readable");
    assert!(asks_for_a_loader(&dynamic));
}

#[test]
fn the_static_binary_runs_a_demo_alone_in_an_empty_root_as_a_non_root_user() {
    let root = tempfile::tempdir().expect("tempdir");
    let binary = root.path().join("ca-notify");
    std::fs::copy(static_binary(), &binary).expect("copied");
    let tmp = root.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mode = |path: &Path, bits: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).expect("chmod");
    };
    mode(root.path(), 0o755);
    mode(&binary, 0o555);
    mode(&tmp, 0o1777);
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("listed")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(root.path()), ["ca-notify", "tmp"]);

    // The child's environment is cleared, so the program is named by its path.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("coreutils' chroot is installed (.ci/run installs it)");
    let out = Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(root.path())
        .args(["/ca-notify", "demo", "--in-memory", "--recipients", "400"])
        .env_clear()
        .env("TMPDIR", "/tmp")
        .output()
        .expect("chroot runs (these tests need root and coreutils' chroot)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let claimed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("claimed"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert_eq!(claimed, "400", "{stdout}");
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sent row: {stdout}"));
    assert!(sent > 0, "{stdout}");

    // Nothing was written outside the temporary folder; there, the one file is the root
    // certificates named for clients that read a system store (src/tls_roots.rs).
    assert_eq!(listing(root.path()), ["ca-notify", "tmp"]);
    let left = listing(&tmp);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with("ca-notify-roots-") && left[0].ends_with(".pem"),
        "{left:?}"
    );
    let bundle = std::fs::read_to_string(tmp.join(&left[0])).expect("readable");
    assert!(bundle.matches("-----BEGIN CERTIFICATE-----").count() > 100);
}
