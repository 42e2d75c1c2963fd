//! CPU time counters of this process, for the benchmarks that run against the simulators
//! and report CPU per request or per record: read from `/proc/self/stat` (Linux; zero
//! where it cannot be read), in clock ticks of 10 ms (Linux's 100 Hz).

use std::time::Duration;

/// User plus system CPU time of this process so far (`utime`, `stime`).
pub fn own() -> Duration {
    let [user, system] = stat_ticks([14, 15]);
    user + system
}

/// CPU time as the kernel splits it: in the process's own code, and in the kernel on its
/// behalf (system calls, page faults, and whatever the kernel charges to it, such as
/// delivering its writes to a receiver on the same machine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// In user mode.
    pub user: Duration,
    /// In the kernel.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// What was added since `earlier` (zero where a counter went back).
    #[must_use]
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU time of this process's children that have exited and been waited for (`cutime`,
/// `cstime`): a child's whole CPU time, its last ticks included, counts here from the
/// moment it is reaped.
pub fn reaped_children() -> CpuTime {
    let [user, system] = stat_ticks([16, 17]);
    CpuTime { user, system }
}

/// Fields of `/proc/self/stat` (numbered from 1, as `proc(5)` numbers them) that count
/// clock ticks, as durations.
fn stat_ticks<const N: usize>(numbers: [usize; N]) -> [Duration; N] {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is parenthesised and may hold spaces: the fields after
    // its closing parenthesis start with field 3.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    numbers.map(|n| {
        let ticks = fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = own();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(own() > before, "60 ms of spinning counted no tick");
    }

    #[test]
    fn split_time_subtracts_part_by_part() {
        let ms = Duration::from_millis;
        let later = CpuTime {
            user: ms(50),
            system: ms(20),
        };
        let earlier = CpuTime {
            user: ms(30),
            system: ms(30),
        };
        assert_eq!(
            later.since(earlier),
            CpuTime {
                user: ms(20),
                system: Duration::ZERO
            }
        );
        assert_eq!(later.total(), ms(70));
    }

    #[test]
    fn a_reaped_child_counts_among_the_children() {
        let before = reaped_children();
        // A shell that spins for about 100 ms of CPU, then exits; `status` waits for it.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        assert!(
            reaped_children().since(before).total() > Duration::ZERO,
            "the child's CPU time was not counted"
        );
    }
}
