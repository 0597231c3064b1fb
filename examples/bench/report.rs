//! Tables on stdout, and the same numbers as CSV and JSON under the output directory.

use std::{fmt::Write as _, path::Path};

use crate::scenario::{Controller, Outcome, ScenarioResult};

/// Nearest-rank percentile of `values` (sorted in place); None when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// One row of the main table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    pub controller: String,
    /// swf-operator's row (judged by `--check`), not the peer's.
    pub ours: bool,
    pub n: usize,
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Expected (schedule, tick) pairs of the window with no run.
    pub missed: usize,
    /// Runs beyond the first of their (schedule, tick), by uid, deleted ones included.
    pub duplicates: usize,
    /// Runs created or seen before their tick.
    pub early: usize,
    /// Times the contender's watcher listed again after its first list.
    pub relists: usize,
    pub cpu_s_per_tick: f64,
    pub cpu_ms_per_run: f64,
    pub peak_rss_mib: f64,
    pub all_scheduled_s: Option<f64>,
    pub first_tick_max_lag_s: Option<f64>,
    pub apiserver_cpu_s_per_tick: f64,
    /// The API server's CPU in the window over the runs created in it (shared by the
    /// contenders of a scenario that runs several at once).
    pub apiserver_cpu_ms_per_run: f64,
    pub requests_per_run: f64,
}

pub fn row(scenario: &ScenarioResult, o: &Outcome) -> Row {
    let mut lags = o.lags.clone();
    let ms = |p: f64, lags: &mut [f64]| percentile(lags, p).map_or(f64::NAN, |s| s * 1000.0);
    let runs = o.lags.len();
    let ticks = o.ticks.max(1) as f64;
    let all_runs: usize = scenario.outcomes.iter().map(|o| o.lags.len()).sum();
    let requests: f64 = scenario.requests.values().sum();
    Row {
        scenario: scenario.name.clone(),
        controller: o.controller.clone(),
        ours: o.ours,
        n: o.n,
        runs,
        p50_ms: ms(50.0, &mut lags),
        p90_ms: ms(90.0, &mut lags),
        p99_ms: ms(99.0, &mut lags),
        max_ms: ms(100.0, &mut lags),
        missed: o.missed,
        duplicates: o.duplicates,
        early: o.early,
        relists: o.relists,
        cpu_s_per_tick: o.cpu_seconds / ticks,
        cpu_ms_per_run: if runs == 0 {
            f64::NAN
        } else {
            o.cpu_seconds * 1000.0 / runs as f64
        },
        peak_rss_mib: o.peak_rss_bytes as f64 / (1 << 20) as f64,
        all_scheduled_s: o.all_scheduled_seconds,
        first_tick_max_lag_s: o.first_tick_max_lag,
        apiserver_cpu_s_per_tick: scenario.apiserver_cpu_seconds / ticks,
        apiserver_cpu_ms_per_run: if all_runs == 0 {
            f64::NAN
        } else {
            scenario.apiserver_cpu_seconds * 1000.0 / all_runs as f64
        },
        // Shared by the contenders of a scenario that runs several at once.
        requests_per_run: if all_runs == 0 {
            f64::NAN
        } else {
            requests / all_runs as f64
        },
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | controller | N | runs | p50 ms | p90 ms | p99 ms | max ms | missed | dup | early | relists | CPU s/tick | CPU ms/run | peak RSS MiB | all scheduled s | API server CPU s/tick | API server CPU ms/run | API requests/run |"
    );
    let _ = writeln!(
        out,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {:.2} | {:.3} | {:.0} | {} | {:.2} | {:.2} | {:.2} |",
            r.scenario,
            r.controller,
            r.n,
            r.runs,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.missed,
            r.duplicates,
            r.early,
            r.relists,
            r.cpu_s_per_tick,
            r.cpu_ms_per_run,
            r.peak_rss_mib,
            opt(r.all_scheduled_s),
            r.apiserver_cpu_s_per_tick,
            r.apiserver_cpu_ms_per_run,
            r.requests_per_run
        );
    }
    out
}

/// swf-operator ÷ CronJob at each N of the one-after-the-other scenarios.
pub fn ratios(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| N | p99 lag swf/CronJob | CPU per run swf/CronJob |");
    let _ = writeln!(out, "|--:|--:|--:|");
    let alone = |r: &&Row| !r.scenario.starts_with("both");
    for swf in rows.iter().filter(alone).filter(|r| r.controller == "swf-operator") {
        let Some(cron) = rows
            .iter()
            .filter(alone)
            .find(|r| r.controller == Controller::CronJob.label() && r.n == swf.n)
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} |",
            swf.n,
            swf.p99_ms / cron.p99_ms,
            swf.cpu_ms_per_run / cron.cpu_ms_per_run
        );
    }
    out
}

/// swf-operator ÷ each reference row (the floor, the tuned CronJob controller) at each N of the
/// one-after-the-other scenarios: lag percentiles, API server CPU per run, requests per run.
pub fn peer_ratios(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| N | swf-operator ÷ | p50 lag | p90 lag | p99 lag | API server CPU ms/run | API requests/run |"
    );
    let _ = writeln!(out, "|--:|---|--:|--:|--:|--:|--:|");
    let alone = |r: &&Row| !r.scenario.starts_with("both");
    let swf_label = Controller::Swf { shards: 1 }.label();
    for swf in rows.iter().filter(alone).filter(|r| r.controller == swf_label) {
        for peer in [Controller::Floor, Controller::CronJobTuned] {
            let Some(p) = rows
                .iter()
                .filter(alone)
                .find(|r| r.controller == peer.label() && r.n == swf.n)
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                swf.n,
                p.controller,
                swf.p50_ms / p.p50_ms,
                swf.p90_ms / p.p90_ms,
                swf.p99_ms / p.p99_ms,
                swf.apiserver_cpu_ms_per_run / p.apiserver_cpu_ms_per_run,
                swf.requests_per_run / p.requests_per_run
            );
        }
    }
    out
}

pub fn requests_table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | runs | requests by verb (jobs, cronjobs, scheduledworkflows, events, leases) |"
    );
    let _ = writeln!(out, "|---|--:|---|");
    for s in results {
        let runs: usize = s.outcomes.iter().map(|o| o.lags.len()).sum();
        let verbs: Vec<String> = s.requests.iter().map(|(v, n)| format!("{v} {n:.0}")).collect();
        let _ = writeln!(out, "| {} | {} | {} |", s.name, runs, verbs.join(", "));
    }
    out
}

pub fn write_files(dir: &Path, rows: &[Row], results: &[ScenarioResult], extra: serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from(
        "scenario,controller,n,runs,p50_ms,p90_ms,p99_ms,max_ms,missed,duplicates,early,relists,cpu_s_per_tick,cpu_ms_per_run,peak_rss_mib,all_scheduled_s,apiserver_cpu_s_per_tick,apiserver_cpu_ms_per_run,requests_per_run\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{:.3},{:.4},{:.1},{},{:.3},{:.3},{:.3}",
            r.scenario,
            r.controller,
            r.n,
            r.runs,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.missed,
            r.duplicates,
            r.early,
            r.relists,
            r.cpu_s_per_tick,
            r.cpu_ms_per_run,
            r.peak_rss_mib,
            r.all_scheduled_s.map_or(String::new(), |v| format!("{v:.2}")),
            r.apiserver_cpu_s_per_tick,
            r.apiserver_cpu_ms_per_run,
            r.requests_per_run
        );
    }
    std::fs::write(dir.join("results.csv"), csv).unwrap();
    let json = serde_json::json!({"rows": rows, "scenarios": results.iter().map(|s| serde_json::json!({
        "name": s.name, "window_seconds": s.window_seconds, "apiserver_cpu_seconds": s.apiserver_cpu_seconds,
        "etcd_cpu_seconds": s.etcd_cpu_seconds, "requests": s.requests})).collect::<Vec<_>>(), "extra": extra});
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(controller: Controller, n: usize, p99_ms: f64, api_ms: f64) -> Row {
        Row {
            scenario: format!("x N={n}"),
            controller: controller.label(),
            ours: matches!(controller, Controller::Swf { .. }),
            n,
            runs: n,
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms,
            p99_ms,
            max_ms: p99_ms,
            missed: 0,
            duplicates: 0,
            early: 0,
            relists: 0,
            cpu_s_per_tick: 0.0,
            cpu_ms_per_run: 1.0,
            peak_rss_mib: 0.0,
            all_scheduled_s: None,
            first_tick_max_lag_s: None,
            apiserver_cpu_s_per_tick: 0.0,
            apiserver_cpu_ms_per_run: api_ms,
            requests_per_run: 2.0,
        }
    }

    #[test]
    fn swf_is_divided_by_the_floor_and_the_tuned_cronjob_of_its_n() {
        let swf = Controller::Swf { shards: 1 };
        let rows = [
            row(swf, 100, 400.0, 9.0),
            row(Controller::Floor, 100, 100.0, 3.0),
            row(Controller::CronJobTuned, 100, 800.0, 9.0),
            row(Controller::CronJob, 100, 9000.0, 9.0),
            row(Controller::Floor, 1000, 1.0, 1.0),
        ];
        let table = peer_ratios(&rows);
        let lines: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "| 100 | floor (ideal client) | 4.00 | 4.00 | 4.00 | 3.00 | 1.00 |",
                "| 100 | CronJob v2, QPS 5000 | 0.50 | 0.50 | 0.50 | 1.00 | 1.00 |",
            ],
            "{table}"
        );
    }

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
