//! What the driver does to the world, one action at a time: move the clock, edit the spec,
//! ask for run-now, backfill or resume, finish or delete runs, crash or hand over the active
//! instance, toggle faults, lose a watch; and the calm phase that ends every seed.

use super::{
    calm,
    driver::Sim,
    edits,
    instance::Instance,
    records::Cause,
    seed::Action,
    status_json::suspended,
    time::{millis, rel},
};
use crate::model::keys::{BACKFILL_ANNOTATION, RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION};

impl Sim {
    pub(super) fn act(&mut self) {
        let suspended = suspended(self.world.lock().status());
        let action = if suspended && self.roll(|d| d.chance(0.1)) {
            Action::Resume
        } else {
            self.roll(|d| d.weighted(&self.cfg.weights))
        };
        match action {
            Action::ToWake => match self.instances[self.active].wake_at {
                Some(t) => self.advance_to(t),
                None => self.wait(),
            },
            Action::ToDelivery => match self.instances.iter().filter_map(Instance::next_delivery).min() {
                Some(t) => self.advance_to(t),
                None => self.wait(),
            },
            Action::Wait => self.wait(),
            Action::Edit => self.edit(),
            Action::RunNow => self.annotate(RUN_NOW_REQUEST_ANNOTATION, "run-now"),
            Action::Backfill => self.backfill(),
            Action::Cancel => self.cancel_backfill(),
            Action::Resume => self.annotate(RESUME_ANNOTATION, "resume"),
            Action::Finish => self.finish_some(),
            Action::UserDelete => self.user_delete(),
            Action::Crash => self.crash(),
            Action::Handover => self.handover(),
            Action::ToggleFaults => self.toggle_faults(),
            Action::Relist => self.relist(),
        }
        self.check();
    }

    fn wait(&mut self) {
        let ms = self.roll(|d| d.range(0, 90_000));
        self.log(&format!("wait {}.{:03}s", ms / 1000, ms % 1000));
        self.advance_to(self.now() + millis(ms));
    }

    fn edit(&mut self) {
        let (line, ended) = {
            let mut w = self.world.lock();
            let mut spec = w.swf.spec.clone();
            let now = w.now();
            let field = edits::edit(&mut w.dice, now, &mut spec, self.cfg.style);
            let ended = edits::end_time(&spec).is_some_and(|e| e < now);
            w.user_edit(|s, _| *s = spec);
            let line = format!(
                "user edits {field} (gen {}): {}",
                w.swf.generation,
                edits::describe(&w.swf.spec)
            );
            (line, ended)
        };
        self.log(&line);
        self.distribute();
        if self.cfg.style.past_end && ended {
            self.backfill(); // the latest ticks, after endTime (`edits::backfill_range`)
        }
    }

    fn annotate(&mut self, key: &'static str, what: &str) {
        let value = format!("{what}-{}", self.world.lock().seq());
        self.world.lock().user_edit(|_, a| {
            a.insert(key.to_string(), value.clone());
        });
        self.log(&format!("user sets {key}={value}"));
        self.distribute();
    }

    fn backfill(&mut self) {
        let value = {
            let mut w = self.world.lock();
            let (now, spec) = (w.now(), w.swf.spec.clone());
            edits::backfill_range(&mut w.dice, now, &spec, self.cfg.style)
        };
        self.world.lock().user_edit(|_, a| {
            a.insert(BACKFILL_ANNOTATION.to_string(), value.clone());
        });
        self.log(&format!("user asks for a backfill of {value}"));
        self.distribute();
    }

    fn cancel_backfill(&mut self) {
        if !self.world.lock().swf.annotations.contains_key(BACKFILL_ANNOTATION) {
            return self.wait();
        }
        self.world.lock().user_edit(|_, a| {
            a.remove(BACKFILL_ANNOTATION);
        });
        self.log("user removes the backfill annotation");
        self.distribute();
    }

    fn finish_some(&mut self) {
        let active = self.world.lock().active_jobs();
        if active.is_empty() {
            return self.wait();
        }
        let name = self.roll(|d| d.pick(&active).clone());
        let failed = self.roll(|d| d.chance(self.cfg.fail_rate));
        self.finish(&name, failed);
    }

    pub(super) fn finish(&mut self, name: &str, failed: bool) {
        self.world.lock().finish_job(name, failed);
        self.log(&format!("{name} {}", if failed { "fails" } else { "succeeds" }));
        self.distribute();
        self.check();
    }

    fn user_delete(&mut self) {
        let names: Vec<String> = {
            let w = self.world.lock();
            w.jobs
                .iter()
                .filter(|(_, j)| w.runs[j.run].deleted.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        if names.is_empty() {
            return self.wait();
        }
        let name = self.roll(|d| d.pick(&names).clone());
        self.world.lock().delete_job(&name, Cause::User);
        self.log(&format!("user deletes {name}"));
        self.distribute();
    }

    fn crash(&mut self) {
        let label = self.instances[self.active].label;
        let fresh = self.start_instance(label);
        self.instances[self.active] = fresh;
        self.log(&format!(
            "{label} crashes and restarts as {label}#{} (memory lost)",
            self.incarnations
        ));
        self.wake_now(self.active);
    }

    fn handover(&mut self) {
        self.active = 1 - self.active;
        self.log(&format!("handover: {} is active", self.instances[self.active].label));
        self.wake_now(self.active);
    }

    fn toggle_faults(&mut self) {
        let on = {
            let mut w = self.world.lock();
            w.faults.on = !w.faults.on;
            w.faults.on
        };
        self.log(&format!("faults {}", if on { "on" } else { "off" }));
    }

    fn relist(&mut self) {
        let i = usize::try_from(self.roll(|d| d.range(0, 1))).unwrap_or(0);
        let swf = self.roll(|d| d.chance(0.5));
        let (obj, jobs) = {
            let w = self.world.lock();
            (w.swf_json(), w.jobs_json())
        };
        let woke = if swf {
            self.instances[i].relist_swf(&obj);
            true
        } else {
            self.instances[i].relist_jobs(&jobs)
        };
        let what = if swf { "ScheduledWorkflow" } else { "Job" };
        self.log(&format!(
            "{}'s {what} watch is lost and relisted",
            self.instances[i].label
        ));
        if woke && i == self.active {
            self.wake_now(i);
        }
    }

    pub(super) fn calm_phase(&mut self) {
        let to_periodic = self.roll(|d| d.chance(0.5).then(|| d.range(10, 120)));
        self.world.lock().faults.on = false;
        self.calm = true;
        let now = self.now();
        for instance in &mut self.instances {
            instance.hurry(now);
        }
        self.settle();
        let resume = format!("calm-{}", self.world.lock().seq());
        let line = {
            let mut w = self.world.lock();
            let suspended = suspended(w.status());
            w.user_edit(|spec, a| {
                edits::calm(spec, now, to_periodic);
                a.remove(BACKFILL_ANNOTATION);
                if suspended {
                    a.insert(RESUME_ANNOTATION.to_string(), resume);
                }
            });
            format!("calm phase: {}", edits::describe(&w.swf.spec))
        };
        self.log(&line);
        self.distribute();
        self.schedule_finishes();
        let mut calm = calm::begin(&self.world.lock());
        let end = match calm.end {
            Some(end) => end,
            None => {
                self.advance_until(calm.deadline, |w| calm.caught_up(w).is_some());
                let caught_up = calm.caught_up(&self.world.lock());
                calm.open(caught_up)
            }
        };
        self.log(&format!("calm phase runs until {}", rel(end)));
        self.advance_to(end);
        if !self.halted {
            let w = self.world.lock();
            self.checker.after_step(&w, calm::check(&w, &calm));
        }
    }

    /// In the calm phase every active run finishes 1-3 s after it is seen.
    pub(super) fn schedule_finishes(&mut self) {
        let now = self.now();
        let active = self.world.lock().active_jobs();
        for name in active {
            if !self.finishes.contains_key(&name) {
                let at = now + millis(self.world.lock().dice.range(1_000, 3_000));
                self.finishes.insert(name, at);
            }
        }
    }
}
