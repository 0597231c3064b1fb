//! Operator replicas with leader election (`OperatorProcess`es sharing a Lease in
//! `swf-system`): the flags that make a failover take seconds, and who holds the Lease.

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use super::TestEnv;

/// The name of the test's Lease (one per namespace, so tests do not elect across each other).
pub fn lease_name(env: &TestEnv) -> String {
    format!("swf-test-{}", env.namespace)
}

/// `run` flags for a replica that elects a leader on `lease`, quick to fail over: a 4 s lease,
/// renewed within 3 s, tried every 500 ms.
pub fn quick_failover_args(lease: &str) -> Vec<&str> {
    vec![
        "--lease-namespace",
        "swf-system",
        "--lease-name",
        lease,
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "500ms",
    ]
}

/// The holder of the Lease `lease`, once one holds it.
pub async fn lease_holder(env: &TestEnv, lease: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "swf-system");
    leases
        .get(lease)
        .await
        .ok()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}
