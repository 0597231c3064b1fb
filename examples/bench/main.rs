//! `make bench`: swf-operator side by side with Kubernetes' CronJob controller (v2) on the
//! project's real control plane, a fresh one per scenario. docs/performance.md explains the
//! method; this prints the tables and writes results.csv, results.json and bench.png.
//!
//!   cargo run --release --example bench -- run [--sizes 100,1000,5000] [--ticks 3] ...
//!   cargo run --release --example bench -- watch FILE     (the watcher process; internal)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounting;
mod cluster;
mod core;
mod floor;
mod plot;
mod report;
mod scenario;
mod startup;
mod verdict;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use scenario::{Binaries, Controller, Plan};
use swf_test_plane as plane;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run(Box<RunArgs>),
    /// Internal: the watcher process of one namespace.
    Watch {
        namespace: String,
        out: PathBuf,
    },
    /// Internal: the ideal client (the floor) of one namespace.
    Floor {
        namespace: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Schedules per scenario, each run for swf-operator and for the CronJob controller.
    #[arg(long, env = "BENCH_SIZES", value_delimiter = ',', default_value = "100,1000,5000")]
    sizes: Vec<usize>,
    /// Sizes for swf-operator alone (no CronJob run), e.g. 10000.
    #[arg(long, env = "BENCH_SWF_ONLY_SIZES", value_delimiter = ',')]
    swf_only_sizes: Vec<usize>,
    /// Sizes for swf-operator with two shards (two replicas), e.g. 20000.
    #[arg(long, env = "BENCH_SHARDED_SIZES", value_delimiter = ',')]
    sharded_sizes: Vec<usize>,
    /// N of the scenario where both controllers run at once (0: none).
    #[arg(long, env = "BENCH_BOTH_AT", default_value_t = 1000)]
    both_at: usize,
    /// Whole minutes measured per scenario.
    #[arg(long, env = "BENCH_TICKS", default_value_t = 3)]
    ticks: usize,
    /// Seconds after the last tick that CPU and API requests are still counted, so work a
    /// controller does after its runs (status writes, events) is in the cost columns.
    #[arg(long, env = "BENCH_SETTLE_SECONDS", default_value_t = 45)]
    settle_seconds: u64,
    /// ListJobs: jobs, concurrent clients, seconds (jobs 0: skip).
    #[arg(long, env = "BENCH_LIST_JOBS", default_value_t = 10_000)]
    list_jobs: usize,
    #[arg(long, env = "BENCH_LIST_CLIENTS", default_value_t = 50)]
    list_clients: usize,
    #[arg(long, env = "BENCH_LIST_SECONDS", default_value_t = 10)]
    list_seconds: u64,
    /// A filter every ListJobs request carries (KFP's JSON api.Filter), e.g.
    /// `{"predicates":[{"op":"IS_SUBSTRING","key":"name","string_value":"job-0999"}]}`.
    #[arg(long, env = "BENCH_LIST_FILTER")]
    list_filter: Option<String>,
    /// Start-up: idle daily schedules (each with an active run) the operator starts on.
    #[arg(long, env = "BENCH_STARTUP_SCHEDULES", default_value_t = 10_000)]
    startup_schedules: usize,
    /// Next-tick computations per cron spec.
    #[arg(long, env = "BENCH_CRON_ITERATIONS", default_value_t = 2000)]
    cron_iterations: usize,
    #[arg(long, env = "BENCH_OUT", default_value = "target/bench")]
    out: PathBuf,
    /// Exit 1 when swf-operator missed a run, doubled one or created one before its tick, or a
    /// ListJobs call failed (CI's smoke run). The CronJob controller's rows are not judged.
    #[arg(long)]
    check: bool,
    /// The swf-operator binary (default: next to this one).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// The rows of each size of `--sizes`: swf-operator, the CronJob controller at its default
    /// client rate limits, the same with them raised (`cronjob-tuned`), the ideal client
    /// (`floor`).
    #[arg(
        long,
        env = "BENCH_ROWS",
        value_delimiter = ',',
        default_value = "swf,cronjob,cronjob-tuned,floor"
    )]
    rows: Vec<RowKind>,
    /// Which parts to run, e.g. `--phases list` for ListJobs alone.
    #[arg(
        long,
        env = "BENCH_PHASES",
        value_delimiter = ',',
        default_value = "cron,list,startup,scenarios"
    )]
    phases: Vec<Phase>,
}

/// The contenders of the `--sizes` scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RowKind {
    Swf,
    Cronjob,
    CronjobTuned,
    Floor,
}

impl RowKind {
    fn controller(self) -> Controller {
        match self {
            RowKind::Swf => Controller::Swf { shards: 1 },
            RowKind::Cronjob => Controller::CronJob,
            RowKind::CronjobTuned => Controller::CronJobTuned,
            RowKind::Floor => Controller::Floor,
        }
    }
}

/// The parts of a benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// The cron core: ns per next-tick computation.
    Cron,
    /// ListJobs under concurrent load.
    List,
    /// swf-operator starting on `--startup-schedules` idle schedules: time to every status
    /// correct, memory.
    Startup,
    /// The scheduling scenarios (swf-operator, CronJob, ...).
    Scenarios,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plans(args: &RunArgs) -> Vec<Plan> {
    let mut plans = Vec::new();
    let one = |name: String, contenders: Vec<(Controller, usize)>| Plan {
        name,
        contenders,
        ticks: args.ticks,
        settle_seconds: args.settle_seconds,
    };
    for &n in &args.sizes {
        for kind in &args.rows {
            let name = kind
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            plans.push(one(format!("{name} N={n}"), vec![(kind.controller(), n)]));
        }
    }
    for &n in args.swf_only_sizes.iter().filter(|n| **n > 0) {
        plans.push(one(format!("swf N={n}"), vec![(Controller::Swf { shards: 1 }, n)]));
    }
    for &n in args.sharded_sizes.iter().filter(|n| **n > 0) {
        plans.push(one(
            format!("swf 2 shards N={n}"),
            vec![(Controller::Swf { shards: 2 }, n)],
        ));
    }
    if args.both_at > 0 {
        let n = args.both_at;
        plans.push(one(
            format!("both at once N={n}+{n}"),
            vec![(Controller::Swf { shards: 1 }, n), (Controller::CronJob, n)],
        ));
    }
    plans
}

async fn run(args: RunArgs) {
    let assets = plane::find_assets(&repo_root());
    let me = std::env::current_exe().unwrap();
    let operator = args.operator.clone().unwrap_or_else(|| {
        // target/<profile>/examples/bench → target/<profile>/swf-operator
        me.parent().and_then(|p| p.parent()).unwrap().join("swf-operator")
    });
    assert!(
        operator.exists(),
        "{} is missing: cargo build first",
        operator.display()
    );
    let bins = Binaries {
        operator: operator.clone(),
        bench: me,
    };
    println!("machine: {} cores, {}", cores(), cpu_model());
    let cron = args
        .phases
        .contains(&Phase::Cron)
        .then(|| core::cron_core(args.cron_iterations));
    if let Some(cron) = &cron {
        println!(
            "\ncron core: {} specs, next tick in {:.0} ns (median), {:.0} ns (p99), {:.0} ns (max)",
            cron.specs, cron.median_ns, cron.p99_ns, cron.max_ns
        );
    }
    let list = if args.list_jobs > 0 && args.phases.contains(&Phase::List) {
        let load = core::ListLoad {
            jobs: args.list_jobs,
            clients: args.list_clients,
            seconds: args.list_seconds,
            filter: args.list_filter.as_deref(),
        };
        let l = core::list_jobs(&assets, &operator, &load).await;
        println!(
            "ListJobs (page of 20 of {} jobs{}, {} clients, {} s): {} requests, {} errors, {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, JobService RSS {:.0} MiB once listed, peak {:.0} MiB",
            l.jobs,
            args.list_filter
                .as_ref()
                .map_or(String::new(), |f| format!(", filter {f}")),
            l.clients,
            args.list_seconds,
            l.requests,
            l.errors,
            l.per_second,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.api_listed_rss_mib,
            l.api_peak_rss_mib
        );
        Some(l)
    } else {
        None
    };
    let startup =
        (args.startup_schedules > 0 && args.phases.contains(&Phase::Startup)).then_some(args.startup_schedules);
    let startup = match startup {
        Some(n) => Some(startup::run(&assets, &bins, n).await),
        None => None,
    };
    if let Some(s) = &startup {
        println!("{}", startup::line(s));
    }
    let mut results = Vec::new();
    let plans = if args.phases.contains(&Phase::Scenarios) {
        plans(&args)
    } else {
        Vec::new()
    };
    for plan in plans {
        let result = scenario::run(&assets, &bins, &plan).await;
        let rows: Vec<report::Row> = result.outcomes.iter().map(|o| report::row(&result, o)).collect();
        print!("{}", report::table(&rows));
        results.push(result);
    }
    let rows: Vec<report::Row> = results
        .iter()
        .flat_map(|s| s.outcomes.iter().map(|o| report::row(s, o)))
        .collect();
    println!("\n## Trigger lag, cost, correctness\n\n{}", report::table(&rows));
    println!("## swf-operator ÷ CronJob\n\n{}", report::ratios(&rows));
    println!(
        "## swf-operator ÷ the floor and ÷ the tuned CronJob controller\n\n{}",
        report::peer_ratios(&rows)
    );
    println!("## API requests in the window\n\n{}", report::requests_table(&results));
    let extra = serde_json::json!({"cron_core": cron, "list_jobs": list, "startup": startup});
    report::write_files(&args.out, &rows, &results, extra);
    let png = args.out.join("bench.png");
    match plot::draw(&rows, &png) {
        Ok(()) => println!("wrote {}, results.csv, results.json", png.display()),
        Err(e) => println!("no plot: {e}"),
    }
    let startup_wrong = startup.as_ref().map(startup::wrong);
    let failures = verdict::failures(&rows, list.as_ref().map(|l| l.errors), startup_wrong);
    if args.check && !failures.is_empty() {
        for reason in &failures {
            eprintln!("bench: {reason}");
        }
        eprintln!("bench: --check failed (see the tables)");
        std::process::exit(1);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU model, for the record.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn main() {
    let cli = Cli::parse();
    // One thread: children are spawned from it (PR_SET_PDEATHSIG follows the spawning thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match cli.command {
        Cmd::Run(args) => runtime.block_on(run(*args)),
        Cmd::Watch { namespace, out } => runtime.block_on(watch::run(&namespace, &out)),
        Cmd::Floor { namespace } => runtime.block_on(floor::run(&namespace)),
    }
}
