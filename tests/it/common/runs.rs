//! The kinds of run the tests' schedules create (Argo Workflows, batch Jobs) and listing them.

use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams},
};

/// Argo Workflows (their CRD is a stand-in: `install_argo_crd`; no Argo controller runs them).
pub fn workflow_resource() -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Workflow".into(),
        plural: "workflows".into(),
    }
}

/// batch/v1 Jobs (no kubelet: their status is patched by the tests).
pub fn job_resource() -> ApiResource {
    ApiResource {
        group: "batch".into(),
        version: "v1".into(),
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        plural: "jobs".into(),
    }
}

/// All objects of `ar` in the namespace, sorted by name.
pub async fn list_runs(client: &Client, ns: &str, ar: &ApiResource) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let mut items = api.list(&ListParams::default()).await.unwrap().items;
    items.sort_by_key(|o| o.name_any());
    items
}
