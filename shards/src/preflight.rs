//! Start-up pre-flight checks of what the OS must give a thread-per-core io_uring broker:
//! io_uring itself, locked memory (RLIMIT_MEMLOCK) and file descriptors (RLIMIT_NOFILE), plus
//! the CPU set this process may run on.
//!
//! Runs once on the main thread before any executor starts. It may raise this process's soft
//! rlimits up to their hard limits (that is all it changes); it never prints, logs or exits:
//! it returns [`PreflightIssue`]s, each with the fix to apply, and the binary decides.
//! Unsafe is limited to the `libc` calls, each with its invariant written next to it.

use std::fmt;
use std::io;

/// Locked memory glommio needs per executor (its README: at least 512 KiB).
pub const MEMLOCK_PER_EXECUTOR: u64 = 512 * 1024;

/// File descriptors kept for things other than MQTT connections (listeners, eventfds, the
/// io_uring rings, the HTTP API, logs).
pub const NOFILE_RESERVE: u64 = 64;

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The broker cannot start.
    Fatal,
    /// The broker starts, but a limit will bite under load.
    Warning,
}

/// One thing the OS does not give, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightIssue {
    /// Fatal or warning.
    pub severity: Severity,
    /// What is wrong, with the numbers.
    pub message: String,
    /// What to change (commands, files, settings).
    pub fix: String,
}

impl fmt::Display for PreflightIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Fatal => "fatal",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}\n  fix: {}", self.message, self.fix)
    }
}

/// Runs every check for `shards` shard executors (plus one management executor) and at most
/// `max_connections` MQTT connections. Raises the soft MEMLOCK and NOFILE limits to their hard
/// limits when they are lower than needed. An empty result means all is well.
pub fn preflight(shards: usize, max_connections: u64) -> Vec<PreflightIssue> {
    let mut issues = Vec::new();
    issues.extend(check_io_uring());
    issues.extend(check_memlock(shards as u64 + 1));
    issues.extend(check_nofile(max_connections));
    issues
}

/// The CPUs in this process's affinity mask (`sched_getaffinity`), ascending. Falls back to
/// `0..available_parallelism` if the call fails.
pub fn available_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass; pid 0 is this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, usize::from);
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE, the bit count of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// io_uring

/// `struct io_uring_params` (linux/io_uring.h): 10 u32 fields, then the SQ and CQ ring offset
/// structs of 40 bytes each. All-zero asks for no features, which every kernel accepts.
#[repr(C)]
#[derive(Default)]
struct IoUringParams {
    head: [u32; 10],
    sq_off: [u64; 5],
    cq_off: [u64; 5],
}

/// Creates a 4-entry io_uring and closes it: `Ok(())` if io_uring works for this process,
/// else the errno of `io_uring_setup`.
pub fn probe_io_uring() -> io::Result<()> {
    let mut params = IoUringParams::default();
    // SAFETY: io_uring_setup(entries, params) reads and writes exactly one io_uring_params,
    // which `params` is (same size and layout), and it lives across the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            4 as libc::c_long,
            &mut params as *mut IoUringParams,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the ring fd just returned to us and owned by nobody else.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

fn check_io_uring() -> Option<PreflightIssue> {
    let err = probe_io_uring().err()?;
    Some(io_uring_issue(&err, read_io_uring_disabled()))
}

/// `/proc/sys/kernel/io_uring_disabled` (Linux 6.6+): 0 enabled, 1 only for members of
/// `kernel.io_uring_group` and CAP_SYS_ADMIN, 2 disabled for everyone.
fn read_io_uring_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Explains a failed `io_uring_setup`, given the `io_uring_disabled` sysctl if the kernel has it.
fn io_uring_issue(err: &io::Error, disabled: Option<u32>) -> PreflightIssue {
    let (message, fix) = match (err.raw_os_error(), disabled) {
        (Some(libc::ENOSYS), _) => (
            "this kernel has no io_uring (io_uring_setup: ENOSYS)".to_owned(),
            "run on Linux 5.8 or newer built with CONFIG_IO_URING=y (glommio needs it)".to_owned(),
        ),
        (Some(libc::EPERM), Some(level @ (1 | 2))) => (
            format!("io_uring is disabled by sysctl kernel.io_uring_disabled = {level}"),
            "sysctl -w kernel.io_uring_disabled=0, and keep it with \
             tuning/sysctl.d/60-shardmq.conf in /etc/sysctl.d/"
                .to_owned(),
        ),
        (Some(libc::EPERM), _) => (
            "io_uring_setup is refused (EPERM): a seccomp profile blocks io_uring; Docker's \
             default profile has since moby/moby#46762"
                .to_owned(),
            "run the container with a seccomp profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register (docker run --security-opt \
             seccomp=<profile.json>, or seccomp=unconfined to test); in Kubernetes set \
             securityContext.seccompProfile accordingly"
                .to_owned(),
        ),
        (Some(libc::ENOMEM), _) => (
            "io_uring_setup failed with ENOMEM: the locked-memory limit is too low for the \
             rings (kernels before 5.12 charge rings to RLIMIT_MEMLOCK)"
                .to_owned(),
            MEMLOCK_FIX.to_owned(),
        ),
        _ => (
            format!("io_uring_setup failed: {err}"),
            "check that io_uring works here (kernel ≥ 5.8, no seccomp filter); \
             see tuning/README.md"
                .to_owned(),
        ),
    };
    PreflightIssue {
        severity: Severity::Fatal,
        message,
        fix,
    }
}

// ---------------------------------------------------------------------------------------------
// rlimits

const MEMLOCK_FIX: &str = "ulimit -l unlimited in the starting shell; `* - memlock unlimited` \
     in /etc/security/limits.d/shardmq.conf (tuning/limits.d/); LimitMEMLOCK=infinity in the \
     systemd unit (tuning/systemd/shardmq.service); docker run --ulimit memlock=-1:-1";

/// The type of getrlimit's `resource` argument (glibc has its own; musl uses int).
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// A soft and hard limit; `u64::MAX` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    soft: u64,
    hard: u64,
}

fn get_rlimit(resource: Resource) -> io::Result<Limit> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limit {
        soft: to_u64(rl.rlim_cur),
        hard: to_u64(rl.rlim_max),
    })
}

fn set_soft_rlimit(resource: Resource, limit: Limit) -> io::Result<()> {
    let rl = libc::rlimit {
        rlim_cur: from_u64(limit.soft),
        rlim_max: from_u64(limit.hard),
    };
    // SAFETY: `rl` is a valid rlimit, read only.
    if unsafe { libc::setrlimit(resource, &rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// rlim_t is u64 on 64-bit targets but narrower on some 32-bit ones.
#[allow(clippy::useless_conversion)]
fn to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        u64::from(v)
    }
}

fn from_u64(v: u64) -> libc::rlim_t {
    if v == u64::MAX {
        libc::RLIM_INFINITY
    } else {
        libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY)
    }
}

fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_owned()
    } else if v >= 1024 && v.is_multiple_of(1024) {
        format!("{} KiB", v / 1024)
    } else {
        format!("{v} bytes")
    }
}

/// Raises the soft limit of `resource` towards `want` (at most to the hard limit, and never
/// lowers it) and returns the limit now in force.
fn raise_soft(resource: Resource, want: u64) -> io::Result<Limit> {
    let now = get_rlimit(resource)?;
    if now.soft >= want {
        return Ok(now);
    }
    let raised = Limit {
        soft: want.min(now.hard),
        hard: now.hard,
    };
    match set_soft_rlimit(resource, raised) {
        Ok(()) => Ok(raised),
        Err(_) => Ok(now),
    }
}

fn check_memlock(executors: u64) -> Option<PreflightIssue> {
    let need = executors.saturating_mul(MEMLOCK_PER_EXECUTOR);
    let limit = match raise_soft(libc::RLIMIT_MEMLOCK, u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            return Some(PreflightIssue {
                severity: Severity::Warning,
                message: format!("cannot read RLIMIT_MEMLOCK: {e}"),
                fix: MEMLOCK_FIX.to_owned(),
            })
        }
    };
    memlock_issue(limit.soft, need, executors, has_cap_ipc_lock())
}

/// The issue, if any, of a `soft` memlock limit for `executors` needing `need` bytes.
fn memlock_issue(
    soft: u64,
    need: u64,
    executors: u64,
    cap_ipc_lock: bool,
) -> Option<PreflightIssue> {
    if soft >= need || cap_ipc_lock {
        return None;
    }
    Some(PreflightIssue {
        severity: Severity::Fatal,
        message: format!(
            "locked-memory limit (RLIMIT_MEMLOCK) is {}, but {executors} executors need at \
             least {} (512 KiB each; on kernels ≥ 5.12 only registered io_uring buffers count), \
             and the process lacks CAP_IPC_LOCK",
            show(soft),
            show(need)
        ),
        fix: MEMLOCK_FIX.to_owned(),
    })
}

/// Whether the effective capability set holds CAP_IPC_LOCK (bit 14 of `CapEff` in
/// /proc/self/status); if that cannot be read, whether the effective uid is 0.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match cap_eff(&status) {
        Some(caps) => caps & (1 << CAP_IPC_LOCK) != 0,
        None => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            euid == 0
        }
    }
}

/// The `CapEff:` bitmask of a /proc/PID/status text.
fn cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

fn check_nofile(max_connections: u64) -> Option<PreflightIssue> {
    let need = max_connections.saturating_add(NOFILE_RESERVE);
    // Ask for the hard limit; an unlimited hard limit is not valid for NOFILE, so cap at
    // fs.nr_open (the kernel's per-process ceiling).
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let limit = match raise_soft(libc::RLIMIT_NOFILE, ceiling.max(need)) {
        Ok(limit) => limit,
        Err(e) => {
            return Some(PreflightIssue {
                severity: Severity::Warning,
                message: format!("cannot read RLIMIT_NOFILE: {e}"),
                fix: NOFILE_FIX.to_owned(),
            })
        }
    };
    nofile_issue(limit.soft, max_connections)
}

const NOFILE_FIX: &str = "raise the open-files limit: `* - nofile 1048576` in \
     /etc/security/limits.d/shardmq.conf (tuning/limits.d/); LimitNOFILE=1048576 in the \
     systemd unit; sysctl fs.nr_open and fs.file-max at least as high \
     (tuning/sysctl.d/60-shardmq.conf); docker run --ulimit nofile=1048576:1048576; \
     or lower listeners.tcp.max_connections";

/// The issue, if any, of a `soft` NOFILE limit for `max_connections` connections.
fn nofile_issue(soft: u64, max_connections: u64) -> Option<PreflightIssue> {
    let need = max_connections.saturating_add(NOFILE_RESERVE);
    if soft >= need {
        return None;
    }
    Some(PreflightIssue {
        severity: Severity::Warning,
        message: format!(
            "open-files limit (RLIMIT_NOFILE) is {soft}, below listeners.tcp.max_connections \
             ({max_connections}) + {NOFILE_RESERVE}: accepts will fail with EMFILE after about \
             {} connections",
            soft.saturating_sub(NOFILE_RESERVE)
        ),
        fix: NOFILE_FIX.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_params_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<IoUringParams>(), 120);
    }

    #[test]
    fn io_uring_probe_works_here() {
        match probe_io_uring() {
            Ok(()) => {}
            // Loud, not failing: io_uring may be blocked where these tests run (e.g. Docker).
            Err(e) => eprintln!(
                "SKIPPED: io_uring is not available here: {}",
                io_uring_issue(&e, read_io_uring_disabled())
            ),
        }
    }

    #[test]
    fn io_uring_errors_explain_the_cause() {
        let enosys = io_uring_issue(&io::Error::from_raw_os_error(libc::ENOSYS), None);
        assert_eq!(enosys.severity, Severity::Fatal);
        assert!(enosys.message.contains("no io_uring"), "{enosys}");

        let sysctl = io_uring_issue(&io::Error::from_raw_os_error(libc::EPERM), Some(2));
        assert!(sysctl.message.contains("io_uring_disabled = 2"), "{sysctl}");
        assert!(
            sysctl.fix.contains("kernel.io_uring_disabled=0"),
            "{sysctl}"
        );

        let seccomp = io_uring_issue(&io::Error::from_raw_os_error(libc::EPERM), Some(0));
        assert!(seccomp.message.contains("seccomp"), "{seccomp}");
        assert!(seccomp.fix.contains("--security-opt"), "{seccomp}");

        let nomem = io_uring_issue(&io::Error::from_raw_os_error(libc::ENOMEM), None);
        assert!(nomem.fix.contains("ulimit -l"), "{nomem}");
    }

    #[test]
    fn memlock_rules() {
        let need = 3 * MEMLOCK_PER_EXECUTOR;
        assert!(memlock_issue(u64::MAX, need, 3, false).is_none());
        assert!(memlock_issue(need, need, 3, false).is_none());
        assert!(memlock_issue(64 * 1024, need, 3, true).is_none());
        let issue = memlock_issue(64 * 1024, need, 3, false).expect("too low");
        assert_eq!(issue.severity, Severity::Fatal);
        assert!(issue.message.contains("64 KiB"), "{issue}");
        assert!(issue.message.contains("1536 KiB"), "{issue}");
        assert!(issue.fix.contains("LimitMEMLOCK"), "{issue}");
    }

    #[test]
    fn nofile_rules() {
        assert!(nofile_issue(1_048_576, 1_024_000).is_none());
        let issue = nofile_issue(1024, 1_024_000).expect("too low");
        assert_eq!(issue.severity, Severity::Warning);
        assert!(issue.message.contains("1024000"), "{issue}");
        assert!(issue.fix.contains("LimitNOFILE"), "{issue}");
    }

    #[test]
    fn cap_eff_parses_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn available_cores_is_sorted_and_nonempty() {
        let cores = available_cores();
        assert!(!cores.is_empty());
        assert!(cores.windows(2).all(|w| w[0] < w[1]), "{cores:?}");
    }

    #[test]
    fn preflight_passes_for_a_small_broker_here() {
        // Raises soft limits to the hard ones at most: harmless for the test process.
        let issues = preflight(1, 100);
        let fatal: Vec<_> = issues
            .iter()
            .filter(|i| i.severity == Severity::Fatal && !i.message.contains("io_uring"))
            .collect();
        assert!(fatal.is_empty(), "{fatal:?}");
        let after = get_rlimit(libc::RLIMIT_NOFILE).expect("getrlimit");
        assert!(after.soft >= 164 || after.soft == after.hard, "{after:?}");
    }
}
