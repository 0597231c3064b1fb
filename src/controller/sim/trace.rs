//! What a seed did, in words: one line per step (`#step T+seconds what`), and the reports
//! printed for failing seeds. A seed replays exactly (`SWF_SIM_SEED=n`), so the trace is for
//! reading, not for feeding back.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{
    invariants::{Rule, Violation},
    records::Seq,
    time::rel,
};

/// Trace lines, when on (off for the many seeds of a full run: a failing seed is replayed
/// with its trace on).
pub struct Trace {
    lines: Vec<String>,
    on: bool,
}

impl Trace {
    pub fn new(on: bool) -> Self {
        Trace { lines: Vec::new(), on }
    }

    pub fn on(&self) -> bool {
        self.on
    }

    pub fn log(&mut self, seq: Seq, at: Timestamp, text: &str) {
        if self.on {
            self.lines.push(format!("#{seq:<6} {:<12} {text}", rel(at)));
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
    }

    /// The last `n` lines up to step `seq`.
    pub fn before(&self, seq: Seq, n: usize) -> Vec<String> {
        let upto: Vec<&String> = self.lines.iter().filter(|l| step_of(l) <= seq).collect();
        upto[upto.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }
}

fn step_of(line: &str) -> Seq {
    let number = line.trim_start_matches('#').split_whitespace().next();
    number.and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// How one seed went.
pub struct Outcome {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub trace: Trace,
    pub passes: u64,
}

pub fn replay_hint(seed: u64) -> String {
    format!("SWF_SIM_SEED={seed} cargo test --lib controller::sim -- --nocapture")
}

fn violation(v: &Violation) -> String {
    format!("  {} at step #{} {}: {}", v.rule.title(), v.seq, rel(v.at), v.detail)
}

/// Seeds named per rule in a summary.
const LISTED: usize = 20;

/// Every violation of every seed, one line each (`SWF_SIM_LIST=1`).
pub fn list(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        for v in &o.violations {
            out.push_str(&format!("seed {}:{}\n", o.seed, violation(v)));
        }
    }
    out
}

/// One seed in full: its trace, then what broke.
pub fn full(o: &Outcome) -> String {
    let mut out = format!("seed {} ({} passes)\n", o.seed, o.passes);
    for line in o.trace.lines() {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&verdict(o));
    out
}

fn verdict(o: &Outcome) -> String {
    if o.violations.is_empty() {
        return format!("seed {}: every invariant held\n", o.seed);
    }
    let mut out = format!("seed {} broke:\n", o.seed);
    for v in &o.violations {
        out.push_str(&violation(v));
        out.push('\n');
    }
    out
}

/// Steps shown before a violation in a summary.
const CONTEXT: usize = 14;

/// Many seeds: per rule, how many seeds broke it and the one that broke it soonest (the
/// shortest trace to read), with that seed's violation and the steps that led to it (the seed
/// is run again with its trace, which `replay` does).
pub fn summary(outcomes: &[Outcome], seconds: f64, replay: impl Fn(u64) -> Outcome) -> String {
    let failed = outcomes.iter().filter(|o| !o.violations.is_empty()).count();
    let (first, last) = (
        outcomes.first().map_or(0, |o| o.seed),
        outcomes.last().map_or(0, |o| o.seed),
    );
    let mut out = format!(
        "swf simulation: {} seeds ({first}..={last}) in {seconds:.1} s; {failed} broke an invariant\n",
        outcomes.len()
    );
    let mut by_rule: BTreeMap<Rule, (usize, &Outcome, &Violation)> = BTreeMap::new();
    for o in outcomes {
        for v in &o.violations {
            let entry = by_rule.entry(v.rule).or_insert((0, o, v));
            entry.0 += 1;
            if v.seq < entry.2.seq {
                (entry.1, entry.2) = (o, v);
            }
        }
    }
    for (rule, (count, o, v)) in &by_rule {
        let seeds: Vec<String> = outcomes
            .iter()
            .filter(|o| o.violations.iter().any(|v| v.rule == *rule))
            .map(|o| o.seed.to_string())
            .take(LISTED)
            .collect();
        out.push_str(&format!(
            "\n{}: {count} seeds ({}{}); soonest: seed {} at step #{}\n  replay: {}\n{}\n  the steps before it in seed {}:\n",
            rule.title(),
            seeds.join(" "),
            if *count > LISTED { " ..." } else { "" },
            o.seed,
            v.seq,
            replay_hint(o.seed),
            violation(v),
            o.seed
        ));
        for line in replay(o.seed).trace.before(v.seq, CONTEXT) {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}
