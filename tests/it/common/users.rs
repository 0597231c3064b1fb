//! Who the tests act as: the admin, static users with no RBAC (`alice`, `bob`, `carol`) and
//! ServiceAccounts, on a local plane (a token file) or an existing cluster (ServiceAccounts
//! stand in for the users); and the RBAC a test grants them.

use k8s_openapi::api::{
    authentication::v1::TokenRequest,
    core::v1::{Namespace, ServiceAccount},
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::{Api, Client, api::PostParams};

use super::{TestEnv, env::sanitize, use_existing_cluster};

/// Static users in the token file. `ADMIN` is in `system:masters`; the others have no RBAC
/// until a test grants it.
pub const ADMIN_TOKEN: &str = "swf-admin-token";
pub const USERS: &[&str] = &["alice", "bob", "carol"];

/// The static token of a local-plane user (see `user_token` for a portable one).
pub fn token_for(user: &str) -> String {
    format!("{user}-token")
}

/// Namespace of the ServiceAccounts that stand in for users on an existing cluster.
const TEST_USERS_NAMESPACE: &str = "swf-operator-test-users";

/// The name RBAC knows `user` by: the static user on a local plane, a ServiceAccount's user
/// name on an existing cluster (which has no token file of ours).
pub fn user_name(user: &str) -> String {
    if use_existing_cluster() {
        format!("system:serviceaccount:{TEST_USERS_NAMESPACE}:{user}")
    } else {
        user.to_string()
    }
}

/// A bearer token with cluster-admin rights on either kind of control plane (on an existing
/// cluster: a ServiceAccount bound to `cluster-admin`, since its kubeconfig may hold no token).
pub async fn admin_token(env: &TestEnv) -> String {
    if !use_existing_cluster() {
        return ADMIN_TOKEN.to_string();
    }
    let token = user_token(env, "swf-test-admin").await;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "swf-operator-test-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "swf-test-admin", "namespace": TEST_USERS_NAMESPACE}]
    }))
    .unwrap();
    let _ = Api::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await;
    token
}

/// A bearer token for `user`, with no RBAC of its own, on either kind of control plane.
pub async fn user_token(env: &TestEnv, user: &str) -> String {
    if !use_existing_cluster() {
        return token_for(user);
    }
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": TEST_USERS_NAMESPACE}})).unwrap();
    let _ = Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), TEST_USERS_NAMESPACE);
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": user}})).unwrap();
    let _ = sas.create(&PostParams::default(), &sa).await;
    service_account_token(&env.client, TEST_USERS_NAMESPACE, user).await
}

/// A token (valid for an hour) of the ServiceAccount `namespace/name`, from the TokenRequest API.
pub(super) async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token
}

/// Grants `user` full rights on ScheduledWorkflows in `namespace` (a Role + RoleBinding).
pub async fn grant_swf_access(client: &Client, namespace: &str, user: &str) {
    let object_name = format!("swf-{}", sanitize(user));
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": object_name},
        "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["scheduledworkflows"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": object_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": object_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user_name(user)}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}
