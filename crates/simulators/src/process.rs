//! What Linux says of a process besides its CPU time ([`crate::cpu`]), for the benchmarks
//! that print memory and system calls: the peak resident set (`VmHWM` in
//! `/proc/<pid>/status`) and the read and write system calls (`syscr`, `syscw` in
//! `/proc/<pid>/io`). `None` where the file cannot be read (another system, a process
//! already gone).

/// This process's peak resident set so far, KiB.
pub fn peak_rss_kib() -> Option<u64> {
    read_field("/proc/self/status", "VmHWM:")
}

/// The peak resident set of process `pid` so far, KiB.
pub fn peak_rss_kib_of(pid: u32) -> Option<u64> {
    read_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// The read and write system calls process `pid` has made so far, all its threads'.
pub fn io_syscalls_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    Some(field(&text, "syscr:")? + field(&text, "syscw:")?)
}

fn read_field(path: &str, name: &str) -> Option<u64> {
    field(&std::fs::read_to_string(path).ok()?, name)
}

/// The number on the line that starts with `name` (`VmHWM:     45236 kB`, `syscr: 12`).
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_with_or_without_a_unit() {
        let status = "Name:\tca-notify\nVmPeak:\t  99 kB\nVmHWM:\t   45236 kB\nVmRSS:\t 12 kB\n";
        assert_eq!(field(status, "VmHWM:"), Some(45_236));
        let io = "rchar: 10\nsyscr: 7\nsyscw: 5\n";
        assert_eq!(field(io, "syscr:"), Some(7));
        assert_eq!(field(io, "syscw:"), Some(5));
        assert_eq!(field(io, "VmHWM:"), None);
        assert_eq!(field("VmHWM: lots kB\n", "VmHWM:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_its_own_peak() {
        let own = peak_rss_kib().expect("a peak");
        assert!(own > 0);
        assert_eq!(
            peak_rss_kib_of(std::process::id()).map(|k| k > 0),
            Some(true)
        );
        assert_eq!(peak_rss_kib_of(u32::MAX), None, "no such process");
    }
}
