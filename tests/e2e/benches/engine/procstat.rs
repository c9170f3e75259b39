//! What a process costs, read from Linux's `/proc`: CPU time (user + system, all threads) and
//! peak resident memory.

/// Linux's `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat` (100 on every Linux
/// architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds `pid` has used so far; `None` when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks(&stat).map(|t| t as f64 / TICKS_PER_SECOND)
}

/// utime + stime of one `/proc/<pid>/stat` line (fields 14 and 15; the command name in
/// parentheses may hold spaces, so count from the last `)`).
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// User + system CPU seconds used so far by this process's threads named `name` (as
/// `/proc/self/task/<tid>/comm` shows it); threads that ended are not counted.
pub fn threads_cpu_seconds(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0;
    for task in dir.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == name);
        if named && let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            total += ticks(&stat).unwrap_or(0);
        }
    }
    total as f64 / TICKS_PER_SECOND
}

/// Peak resident set size of `pid` in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds used so far by every process named `postgres` (the server and its backends).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat.contains("(postgres)") {
            total += ticks(&stat).unwrap_or(0);
        }
    }
    total as f64 / TICKS_PER_SECOND
}
