use clap::Parser;

/// jemalloc rather than glibc's malloc: with 10,000 schedules and their runs cached, glibc's
/// per-thread arenas held about 45 MiB of freed memory beside a 75 MiB live heap; jemalloc
/// keeps RSS closer to the heap (docs/performance.md, "Memory and start-up").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start (the `malloc_conf` string of jemalloc(3); the
/// `_RJEM_MALLOC_CONF` environment variable still overrides them). Memory freed after a burst
/// (a start-up's lists and status writes, a tick's creates) goes back to the system within
/// about a second, by a background thread, instead of after 10 s and only when the process
/// allocates again: 10 s after writing 10,000 statuses, RSS 102 MiB instead of 116.
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() -> anyhow::Result<()> {
    swf_operator::cli::Cli::parse().run()
}
