//! `os_fd_used` / `os_fd_limit` (etcd `pkg/runtime` FDUsage / FDLimit): the entries of
//! `/proc/self/fd` and the soft `Max open files` limit of `/proc/self/limits`.

/// (used, limit) file descriptors; `None` where `/proc` is not available.
pub(super) fn fd_usage() -> Option<(i64, i64)> {
    let used = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let limit = parse_fd_limit(&limits)?;
    Some((i64::try_from(used).unwrap_or(i64::MAX), limit))
}

/// The soft limit of the `Max open files` line (`unlimited` as i64::MAX).
fn parse_fd_limit(limits: &str) -> Option<i64> {
    match soft_limit(limits, "Max open files")? {
        None => Some(i64::MAX),
        Some(v) => i64::try_from(v).ok(),
    }
}

/// The soft `Max address space` limit in bytes, `2^64` when unlimited (as Go's procfs
/// reports it for `process_virtual_memory_max_bytes`).
pub(super) fn address_space_limit() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    Some(soft_limit(&limits, "Max address space")?.map_or(u64::MAX as f64, |v| v as f64))
}

/// The soft limit of the line starting with `name`: `Some(None)` when unlimited.
fn soft_limit(limits: &str, name: &str) -> Option<Option<u64>> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let soft = line.trim_start_matches(name).split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_open_files_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             127447               127447               processes\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_fd_limit(text), Some(1024));
        assert_eq!(
            parse_fd_limit("Max open files unlimited unlimited files"),
            Some(i64::MAX)
        );
        assert_eq!(parse_fd_limit("nothing"), None);
    }
}
