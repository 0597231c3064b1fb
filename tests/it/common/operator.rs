//! The operator under test, in this test process (`Operator`, `start_operator`), with the
//! identity and exactly the RBAC of `deploy/base/`. The operator binary as a process of its own
//! is `OperatorProcess` (processes.rs).

use kube::Client;
use swf_operator::{
    controller::{self, Parts, Settings},
    model::runkind::RunKind,
};

use super::{TestEnv, eventually, service_account_token, swf};

/// A client that acts as the operator's ServiceAccount with exactly the RBAC in `deploy/base/`
/// (a real token from the TokenRequest API), to prove the operator needs no more.
pub async fn operator_client(env: &TestEnv) -> Client {
    env.plane.client_with_token(&operator_token(env).await).await
}

/// A token of the operator's ServiceAccount (deploy/base/ applied to the plane first).
pub async fn operator_token(env: &TestEnv) -> String {
    let plane = env.plane;
    plane
        .operator_rbac
        .get_or_init(|| async {
            plane.apply_deploy_base(&["namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "secrets.yaml"]);
        })
        .await;
    service_account_token(&env.client, "swf-system", "swf-operator").await
}

/// The operator, in this process, watching only the test's namespace, with the identity and
/// exactly the RBAC of `deploy/base/` (its ServiceAccount's token). Abort the handle to stop it
/// (everything it started stops with it).
pub async fn start_operator(env: &TestEnv) -> tokio::task::JoinHandle<()> {
    Operator::start(env, |_| {}).await.task
}

/// A running operator, with its health and metrics.
pub struct Operator {
    pub task: tokio::task::JoinHandle<()>,
    pub health: swf_operator::serve::Health,
    pub metrics: std::sync::Arc<swf_operator::serve::metrics::Metrics>,
}

impl Operator {
    /// As `start_operator`, with its health and metrics, its settings changed by `tune`.
    pub async fn start(env: &TestEnv, tune: impl FnOnce(&mut Settings)) -> Operator {
        let client = operator_client(env).await;
        let mut settings = Settings::new(
            Some(env.namespace.clone()),
            "UTC",
            vec![RunKind::argo_workflow(), RunKind::parse("batch/v1", "Job")],
        );
        tune(&mut settings);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let health = swf_operator::serve::Health::default();
        let metrics = std::sync::Arc::new(swf_operator::serve::metrics::Metrics::default());
        let parts = Parts {
            client,
            settings,
            metrics: metrics.clone(),
            health: health.clone(),
            lease: None,
            identity: "test".into(),
        };
        let task = tokio::spawn(async move {
            if let Err(e) = controller::run(parts, futures::future::pending()).await {
                panic!("operator failed: {e:#}");
            }
        });
        Operator { task, health, metrics }
    }

    /// Reconcile passes it has finished so far (`swf_reconciles_total`).
    pub fn passes(&self) -> f64 {
        self.gauge("swf_reconciles_total")
    }

    fn gauge(&self, name: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// One more pass of `name` has finished and every event queued so far is published (or
    /// dropped): counting events after this is not a race with the publisher.
    pub async fn settle(&self, env: &TestEnv, name: &str) {
        self.one_more_pass(env, name).await;
        eventually(swf::WAIT, "events published", || async {
            (self.gauge("swf_events_pending") == 0.0).then_some(())
        })
        .await;
    }

    /// Wakes a pass for `name` (a new `spec.description`: the operator passes on spec changes,
    /// and ignores annotations that are not its own) and waits until one more pass has finished:
    /// a negative check ("no second run") made after it is not a guess about time.
    pub async fn one_more_pass(&self, env: &TestEnv, name: &str) {
        let before = self.passes();
        let poke = serde_json::json!({"spec": {"description": format!("poked after {before} passes")}});
        swf::swfs(env)
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&poke),
            )
            .await
            .unwrap();
        eventually(swf::WAIT, "one more pass", || async {
            (self.passes() > before).then_some(())
        })
        .await;
    }
}
