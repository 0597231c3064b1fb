//! `--check`: what fails the benchmark. Only swf-operator's rows are judged: the peer's (the
//! CronJob controller's) misses, duplicates and early runs are data, printed but never a failure.

use crate::report::Row;

/// Why `--check` fails, one line per reason; empty when it passes.
/// `startup_wrong`: schedules without a correct status when the start-up phase gave up.
pub fn failures(rows: &[Row], list_errors: Option<usize>, startup_wrong: Option<usize>) -> Vec<String> {
    let mut reasons = Vec::new();
    for r in rows.iter().filter(|r| r.ours) {
        let who = format!("{} / {}", r.scenario, r.controller);
        if r.missed > 0 {
            reasons.push(format!("{who}: {} runs missed", r.missed));
        }
        if r.duplicates > 0 {
            reasons.push(format!("{who}: {} runs duplicated", r.duplicates));
        }
        if r.early > 0 {
            reasons.push(format!("{who}: {} runs created before their tick", r.early));
        }
    }
    if let Some(errors) = list_errors.filter(|e| *e > 0) {
        reasons.push(format!("ListJobs: {errors} requests failed"));
    }
    if let Some(wrong) = startup_wrong.filter(|w| *w > 0) {
        reasons.push(format!("start-up: {wrong} schedules without a correct status in time"));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(controller: &str, ours: bool) -> Row {
        Row {
            scenario: "both at once N=10+10".into(),
            controller: controller.into(),
            ours,
            n: 10,
            runs: 10,
            p50_ms: 1.0,
            p90_ms: 1.0,
            p99_ms: 1.0,
            max_ms: 1.0,
            missed: 0,
            duplicates: 0,
            early: 0,
            relists: 0,
            cpu_s_per_tick: 0.0,
            cpu_ms_per_run: 0.0,
            peak_rss_mib: 0.0,
            all_scheduled_s: None,
            first_tick_max_lag_s: None,
            apiserver_cpu_s_per_tick: 0.0,
            apiserver_cpu_ms_per_run: 0.0,
            requests_per_run: 0.0,
        }
    }

    #[test]
    fn the_peers_misses_do_not_fail() {
        let mut peer = row("CronJob v2", false);
        peer.missed = 7;
        peer.duplicates = 2;
        peer.early = 1;
        assert_eq!(
            failures(&[row("swf-operator", true), peer], Some(0), Some(0)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn our_misses_duplicates_and_early_runs_fail() {
        let mut missed = row("swf-operator", true);
        missed.missed = 1;
        let mut doubled = row("swf-operator", true);
        doubled.duplicates = 1;
        let mut early = row("swf-operator", true);
        early.early = 1;
        for r in [missed, doubled, early] {
            assert_eq!(failures(&[r], None, None).len(), 1);
        }
    }

    #[test]
    fn list_jobs_errors_fail() {
        assert_eq!(failures(&[], Some(3), None).len(), 1);
    }

    #[test]
    fn schedules_left_without_a_correct_status_at_start_up_fail() {
        assert_eq!(failures(&[], None, Some(2)).len(), 1);
        assert!(failures(&[], None, Some(0)).is_empty());
    }
}
