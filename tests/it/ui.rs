//! `kubectl swf ui` on the real control plane, looked at and clicked in a real browser
//! (Debian's chromium, headless; common/browser.rs). Screenshots go to target/ui-screenshots/,
//! or to docs/ with SWF_UI_SCREENSHOTS=docs (the README shows those).
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kube::{ResourceExt, api::DynamicObject};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    self, TestEnv,
    browser::Browser,
    eventually, job_resource, start_operator,
    swf::{WAIT, create, job_swf, runs_of, swfs, wait_runs},
};

/// `kubectl swf ui` for the test's namespace, stopped when dropped.
struct Ui {
    child: Child,
    url: String,
}

impl Ui {
    fn start(env: &TestEnv) -> Ui {
        Ui::start_with(env, &[], &[])
    }

    fn start_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Ui {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-swf"))
            .args(["ui", "-n", &env.namespace, "--port", "0"])
            .args(args)
            .envs(vars.iter().copied())
            .arg(format!("--kubeconfig={}", env.plane.kubeconfig.display()))
            .env("TZ", "UTC")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).expect("kubectl swf ui prints its URL");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Ui { child, url }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot(browser: &mut Browser, name: &str) {
    let dir = match std::env::var("SWF_UI_SCREENSHOTS").as_deref() {
        Ok("docs") => common::repo_root().join("docs"),
        _ => common::repo_root().join("target/ui-screenshots"),
    };
    browser.screenshot(&dir.join(format!("ui-{name}.png")));
}

/// Polls `js` in the page (reloading `url` first when given) until it returns `want`.
fn wait_dom(browser: &mut Browser, reload: Option<&str>, js: &str, want: &Value, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(url) = reload {
            browser.goto(url);
        }
        let got = browser.eval(js);
        if &got == want {
            return;
        }
        if Instant::now() > deadline {
            let state = browser.eval("document.getElementById('live').textContent + ' | ' + location.href + ' | ' + document.getElementById('main').innerText.slice(0, 3000)");
            let href = browser.eval("location.href");
            browser.goto(href.as_str().unwrap());
            let again = browser.eval("document.getElementById('main').innerText.slice(0, 3000)");
            panic!("{what}: the page has {got}, expected {want}; the page: {state}; reloaded: {again}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Ends a job as its controller would (`Complete` or `Failed`), started when it was created.
async fn end_job(env: &TestEnv, job: &DynamicObject, condition: &str) {
    let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(env.client.clone(), &env.namespace, &job_resource());
    let start = job.creation_timestamp().unwrap().0.to_string();
    let now = jiff::Timestamp::now().to_string();
    let (count, completion) = if condition == "Complete" {
        ("succeeded", json!(now))
    } else {
        ("failed", Value::Null)
    };
    let patch = json!({"status": {"startTime": start, "completionTime": completion, count: 1,
        "conditions": [{"type": condition, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]}});
    api.patch_status(&job.name_any(), &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A job's outcome as the page words it.
fn outcome(job: &DynamicObject) -> &'static str {
    let conditions = job.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let has = |t: &str| conditions.iter().any(|c| c["type"] == t && c["status"] == "True");
    if has("Complete") {
        "succeeded"
    } else if has("Failed") {
        "failed"
    } else {
        "running"
    }
}

/// `kubectl swf next`'s fire times.
fn next(cron: &str, zone: &str, after: &str, count: usize) -> Vec<jiff::Timestamp> {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-swf"))
        .args(["next", "--cron", cron, "--time-zone", zone, "--after", after])
        .args(["--count", &count.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_schedules_runs_fire_times_and_load_in_a_browser() {
    let env = common::env("ui-pages").await;
    let ns = env.namespace.clone();
    let _operator = start_operator(&env).await;
    let every2 = create(
        &env,
        job_swf(
            "every2",
            json!({"maxConcurrency": 10, "timeZone": "Europe/Berlin", "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    create(
        &env,
        job_swf(
            "dst",
            json!({"timeZone": "Europe/Berlin", "trigger": {"cronSchedule": {"cron": "0 30 2 * * *"}}}),
        ),
    )
    .await;
    let herd = [
        ("herd-a", "0 0 0 * * *"),
        ("herd-b", "0 0 0 * * *"),
        ("herd-c", "0 0 */6 * * *"),
    ];
    for (name, cron) in herd {
        create(
            &env,
            job_swf(name, json!({"trigger": {"cronSchedule": {"cron": cron}}})),
        )
        .await;
    }
    create(
        &env,
        job_swf(
            "every10",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 10}}}),
        ),
    )
    .await;
    create(
        &env,
        job_swf("broken", json!({"trigger": {"cronSchedule": {"cron": "* *"}}})),
    )
    .await;
    let mut runs = wait_runs(&env, &every2, &job_resource(), 4).await;
    runs.sort_by_key(|r| r.name_any());
    end_job(&env, &runs[0], "Complete").await;
    end_job(&env, &runs[1], "Failed").await;
    end_job(&env, &runs[2], "Complete").await;
    let patch = json!({"spec": {"enabled": false}});
    swfs(&env)
        .patch("every2", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();

    let ui = Ui::start(&env);
    let mut browser = Browser::start();

    // Overview: one row per schedule; the invalid one stands out with its reason.
    browser.goto(&format!("{}/", ui.url));
    let rows = "[...document.querySelectorAll('#overview tbody tr')].map(r => r.dataset.schedule)";
    let names = ["broken", "dst", "every10", "every2", "herd-a", "herd-b", "herd-c"];
    let want: Vec<String> = names.iter().map(|n| format!("{ns}/{n}")).collect();
    wait_dom(&mut browser, None, rows, &json!(want), "one row per schedule");
    wait_dom(
        &mut browser,
        Some(&format!("{}/", ui.url)),
        &format!(
            "(() => {{ const r = document.querySelector('tr[data-schedule=\"{ns}/broken\"]'); return r.className + ' ' + r.textContent.includes('invalid spec'); }})()"
        ),
        &json!("problem true"),
        "the invalid schedule flagged with its reason",
    );
    let every2_row = browser.eval(&format!(
        "document.querySelector('tr[data-schedule=\"{ns}/every2\"]').textContent"
    ));
    assert!(every2_row.as_str().unwrap().contains("(disabled)"), "{every2_row}");
    screenshot(&mut browser, "overview");

    // Timeline: one bar per run with its outcome; the disabled schedule's lane shaded.
    let timeline = format!("{}/timeline?hours=1&tz=Europe/Berlin&q=every2", ui.url);
    let bars = format!(
        "[...document.querySelectorAll('g.lane[data-schedule=\"{ns}/every2\"] a.run')]\
         .filter(a => a.getAttribute('aria-label').includes(a.dataset.outcome) && a.querySelector('text.glyph'))\
         .map(a => [a.dataset.run, a.dataset.outcome]).sort()"
    );
    let expected = eventually(WAIT, "the disabled schedule's runs settle", || async {
        let jobs = runs_of(&env, &every2, &job_resource()).await;
        let m: BTreeMap<String, &str> = jobs.iter().map(|j| (j.name_any(), outcome(j))).collect();
        (m.values().filter(|o| **o != "running").count() == 3).then_some(m)
    })
    .await;
    let want: Vec<(String, &str)> = expected.into_iter().collect();
    wait_dom(
        &mut browser,
        Some(&timeline),
        &bars,
        &json!(want),
        "one bar per run, with its outcome",
    );
    let shaded = browser.eval(&format!(
        "document.querySelectorAll('g.lane[data-schedule=\"{ns}/every2\"] rect.paused[data-why=\"disabled\"]').length"
    ));
    assert_eq!(shaded, json!(1));
    // Every lane, over the last minutes and the next one, for the picture.
    let now = jiff::Timestamp::now();
    let first = runs
        .iter()
        .filter_map(|r| r.creation_timestamp())
        .map(|t| t.0)
        .min()
        .unwrap();
    let from = jiff::Timestamp::from_second(first.as_second() - 4).unwrap();
    let to = jiff::Timestamp::from_second(now.as_second() + 25).unwrap();
    browser.goto(&format!("{}/timeline?from={from}&to={to}&tz=Europe/Berlin", ui.url));
    screenshot(&mut browser, "timeline");

    // Fire-time marks at the schedule's own instants across the DST change of 28 March 2027.
    let (from, to) = ("2027-03-26T00:00:00Z", "2027-04-01T00:00:00Z");
    browser.goto(&format!(
        "{}/timeline?from={from}&to={to}&q=dst&tz=Europe/Berlin",
        ui.url
    ));
    let marks = browser.eval(&format!(
        "[...document.querySelectorAll('g.lane[data-schedule=\"{ns}/dst\"] line.tick')].map(l => l.dataset.t)"
    ));
    let to_t: jiff::Timestamp = to.parse().unwrap();
    let want: Vec<String> = next("0 30 2 * * *", "Europe/Berlin", "2027-03-25T23:59:59Z", 10)
        .into_iter()
        .filter(|t| *t < to_t)
        .map(|t| t.to_string())
        .collect();
    assert_eq!(marks, json!(want));
    let marks: Vec<&str> = marks.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        marks.contains(&"2027-03-27T01:30:00Z") && marks.contains(&"2027-03-29T00:30:00Z"),
        "02:30 CET, then 02:30 CEST: {marks:?}"
    );

    // Forecast: runs per minute over the next 24 h, as `kubectl swf next` has them.
    browser.goto(&format!("{}/forecast?q=herd&tz=UTC", ui.url));
    let now = browser.eval("document.getElementById('main').dataset.now");
    let now: jiff::Timestamp = now.as_str().unwrap().parse().unwrap();
    let start = jiff::Timestamp::from_second(now.as_second() / 60 * 60).unwrap();
    let end = start + jiff::SignedDuration::from_hours(24);
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (_, cron) in herd {
        for t in next(cron, "UTC", &now.to_string(), 10) {
            if t < end {
                *want.entry(t.to_string()).or_default() += 1;
            }
        }
    }
    let bins = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('rect.bin')].map(r => [r.dataset.minute, +r.dataset.count]))",
    );
    assert_eq!(bins, json!(want));
    let busiest = browser.eval("document.querySelector('#busiest tbody tr').textContent");
    assert!(
        busiest.as_str().unwrap().contains("00:00:00") && busiest.as_str().unwrap().contains(&format!("{ns}/herd-b")),
        "the midnight herd first: {busiest}"
    );
    screenshot(&mut browser, "forecast");

    // The schedule page: what describe shows.
    browser.goto(&format!("{}/s/{ns}/every2", ui.url));
    let jobs = runs_of(&env, &every2, &job_resource()).await.len();
    let page = browser
        .eval("[document.querySelectorAll('#runs tbody tr').length, document.getElementById('next').textContent]");
    assert_eq!(page[0], json!(jobs));
    assert!(page[1].as_str().unwrap().contains("none: disabled"), "{page}");
    screenshot(&mut browser, "schedule");
}

/// One raw HTTP/1.1 request; the response's status code.
async fn http(port: u16, request: String) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn post(host: &str, path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_actions_are_clicked_confirmed_and_guarded() {
    let env = common::env("ui-actions").await;
    let ns = env.namespace.clone();
    let _operator = start_operator(&env).await;
    let yearly = create(
        &env,
        job_swf(
            "yearly",
            json!({"maxConcurrency": 5, "trigger": {"cronSchedule": {"cron": "0 0 0 1 1 *"}}}),
        ),
    )
    .await;
    // --open hands the URL to the desktop's browser ($BROWSER here: a script noting it).
    let dir = tempfile::tempdir().unwrap();
    let opener = dir.path().join("browser");
    let opened = dir.path().join("opened");
    std::fs::write(&opener, format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display())).unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ui = Ui::start_with(&env, &["--open"], &[("BROWSER", opener.to_str().unwrap())]);
    let url = eventually(WAIT, "--open ran the browser", || async {
        std::fs::read_to_string(&opened).ok().filter(|s| s.ends_with('\n'))
    })
    .await;
    assert_eq!(url.trim(), format!("{}/", ui.url));
    let mut browser = Browser::start();
    let page = format!("{}/s/{ns}/yearly", ui.url);

    // Run now: clicked, confirmed, and the run appears on the open page without a reload.
    browser.goto(&page);
    browser.click("#run-now");
    browser.wait_loaded(&format!("{page}/confirm/run-now"));
    let token = browser.eval("document.querySelector('input[name=token]').value");
    let token = token.as_str().unwrap().to_string();
    browser.click("#confirm-button");
    browser.wait_loaded(&format!("{page}?done=run-now"));
    browser.eval("window.notReloaded = true");
    eventually(WAIT, "a run-now run", || async {
        let runs = runs_of(&env, &yearly, &job_resource()).await;
        runs.iter()
            .any(|r| r.name_any().starts_with("yearly-now-"))
            .then_some(())
    })
    .await;
    wait_dom(
        &mut browser,
        None,
        "window.notReloaded === true && [...document.querySelectorAll('#runs tbody tr')].some(r => r.id.startsWith('run-yearly-now-'))",
        &json!(true),
        "the run-now run on the page, live",
    );
    let runs = runs_of(&env, &yearly, &job_resource()).await;
    assert!(
        runs.iter().any(|r| r.name_any().starts_with("yearly-now-")),
        "a run-now run exists"
    );

    // Backfill: the preview lists the ticks; the operator then creates exactly those.
    browser.eval(
        "document.querySelector('#backfill-form input[name=from]').value = '2020-01-01'; \
         document.querySelector('#backfill-form input[name=to]').value = '2023-01-01'; true",
    );
    browser.click("#backfill-form button");
    browser.wait_loaded(&format!("{page}/backfill?"));
    let preview = browser.eval("[...document.querySelectorAll('#backfill-ticks tr.create')].map(r => r.dataset.t)");
    assert_eq!(
        preview,
        json!(["2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z"])
    );
    screenshot(&mut browser, "backfill");
    browser.click("#confirm-button");
    browser.wait_loaded(&format!("{page}?done=backfill"));
    let backfilled = eventually(WAIT, "the backfill's runs", || async {
        let runs = runs_of(&env, &yearly, &job_resource()).await;
        let mut ticks: Vec<String> = runs
            .iter()
            .filter(|r| {
                r.annotations()
                    .contains_key(swf_operator::model::keys::BACKFILL_RUN_ANNOTATION)
            })
            .map(|r| {
                let epoch: i64 = r.labels()[swf_operator::model::keys::LABEL_EPOCH].parse().unwrap();
                jiff::Timestamp::from_second(epoch).unwrap().to_string()
            })
            .collect();
        ticks.sort();
        (ticks.len() >= 3).then_some(ticks)
    })
    .await;
    assert_eq!(json!(backfilled), preview);

    // The guards: a forged Host (DNS rebinding) and a missing or wrong token are refused.
    let port = ui.port();
    let host = format!("127.0.0.1:{port}");
    let get = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    assert_eq!(http(port, get(&host)).await, 200);
    assert_eq!(http(port, get(&format!("localhost:{port}"))).await, 200);
    assert_eq!(http(port, get(&format!("evil.example:{port}"))).await, 403);
    assert_eq!(http(port, get("evil.example")).await, 403);
    assert_eq!(
        http(port, "GET / HTTP/1.0\r\nConnection: close\r\n\r\n".into()).await,
        403,
        "no Host at all"
    );
    let before = swfs(&env).get("yearly").await.unwrap().annotations().clone();
    let action = format!("/s/{ns}/yearly/disable");
    assert_eq!(http(port, post(&host, &action, "")).await, 403, "no token");
    assert_eq!(
        http(port, post(&host, &action, "token=guess")).await,
        403,
        "a wrong token"
    );
    let forged = post(&format!("evil.example:{port}"), &action, &format!("token={token}"));
    assert_eq!(http(port, forged).await, 403, "the token from a forged Host");
    let big = format!("token={token}&pad={}", "x".repeat(20_000));
    assert_eq!(http(port, post(&host, &action, &big)).await, 413, "a body too large");
    let after = swfs(&env).get("yearly").await.unwrap();
    assert!(after.spec.enabled, "nothing refused was done");
    assert_eq!(after.annotations(), &before);
    assert_eq!(
        http(
            port,
            format!("GET {action} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        )
        .await,
        405,
        "actions are POST only"
    );
    // With the token, the same request works.
    assert_eq!(http(port, post(&host, &action, &format!("token={token}"))).await, 303);
    assert!(!swfs(&env).get("yearly").await.unwrap().spec.enabled);

    // A suspension stands out with its reason, is shaded on the timeline, and Resume is there.
    let flaky = create(
        &env,
        job_swf(
            "flaky",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 2}},
                "failurePolicy": {"suspendAfterConsecutiveFailures": 1}}),
        ),
    )
    .await;
    eventually(WAIT, "flaky suspended", || async {
        for job in runs_of(&env, &flaky, &job_resource()).await {
            if outcome(&job) == "running" {
                end_job(&env, &job, "Failed").await;
            }
        }
        let status = swfs(&env).get("flaky").await.ok()?.status?;
        status.suspension?.suspended_at.map(|_| ())
    })
    .await;
    let overview = format!("{}/?problems=1", ui.url);
    wait_dom(
        &mut browser,
        Some(&overview),
        "[...document.querySelectorAll('#overview tbody tr.problem')].map(r => r.dataset.schedule.split('/')[1] + ': ' + r.textContent.includes('suspended after 1 failed runs'))",
        &json!(["flaky: true"]),
        "the suspended schedule flagged with its reason",
    );
    browser.goto(&format!("{}/timeline?hours=1&q=flaky", ui.url));
    let shaded = browser.eval("document.querySelectorAll('rect.paused[data-why=\"suspended\"]').length");
    assert_eq!(shaded, json!(1));
    let flaky_page = format!("{}/s/{ns}/flaky", ui.url);
    browser.goto(&flaky_page);
    browser.click("#resume");
    browser.wait_loaded(&format!("{flaky_page}/confirm/resume"));
    browser.click("#confirm-button");
    browser.wait_loaded(&format!("{flaky_page}?done=resume"));
    let annotations = swfs(&env).get("flaky").await.unwrap().annotations().clone();
    assert!(
        annotations.contains_key(swf_operator::model::keys::RESUME_ANNOTATION),
        "{annotations:?}"
    );
}
