//! placeholder (being written in the config branch)
/// The CPUs this process may run on.
pub fn available_cores() -> Vec<usize> {
    (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect()
}
