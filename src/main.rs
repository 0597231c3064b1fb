use clap::Parser;

/// jemalloc rather than glibc's malloc: with 10,000 schedules and their runs cached, glibc's
/// per-thread arenas held about 45 MiB of freed memory beside a 75 MiB live heap; jemalloc
/// keeps RSS closer to the heap and gives idle memory back (docs/performance.md, "Memory and
/// start-up").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    swf_operator::cli::Cli::parse().run()
}
