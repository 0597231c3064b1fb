"""Manage swf-operator jobs with KFP's own Python client, unchanged (kfp-server-api 1.8.x).

    pip install kfp-server-api==1.8.5
    python3 examples/kfp_server_api_client.py http://127.0.0.1:8888 "$TOKEN" default

Creates a job, reads it back, lists, disables, enables and deletes it; prints each step.
"""
import json
import sys

import kfp_server_api as kfp

host, token, namespace = sys.argv[1], sys.argv[2], sys.argv[3]
config = kfp.Configuration(host=host)
config.api_key["authorization"] = token
config.api_key_prefix["authorization"] = "Bearer"
jobs = kfp.JobServiceApi(kfp.ApiClient(config))

workflow = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "hello-"},
    "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]},
}
job = kfp.ApiJob(
    name="hello from python",
    description="created with kfp-server-api",
    max_concurrency=1,
    enabled=True,
    no_catchup=True,
    pipeline_spec=kfp.ApiPipelineSpec(
        workflow_manifest=json.dumps(workflow),
        parameters=[kfp.ApiParameter(name="when", value="[[ScheduledTime]]")],
    ),
    resource_references=[
        kfp.ApiResourceReference(
            key=kfp.ApiResourceKey(type=kfp.ApiResourceType.NAMESPACE, id=namespace),
            relationship=kfp.ApiRelationship.OWNER,
        )
    ],
    trigger=kfp.ApiTrigger(cron_schedule=kfp.ApiCronSchedule(cron="0 0 * * * *")),
)

created = jobs.create_job(body=job)
print("created", created.id, created.name, created.max_concurrency, created.created_at.isoformat())
got = jobs.get_job(created.id)
assert got.name == "hello from python" and got.trigger.cron_schedule.cron == "0 0 * * * *", got
page = jobs.list_jobs(
    page_size=10, sort_by="name desc", resource_reference_key_type="NAMESPACE", resource_reference_key_id=namespace
)
print("listed", page.total_size, [j.name for j in page.jobs])
assert created.id in [j.id for j in page.jobs]
jobs.disable_job(created.id)
assert not jobs.get_job(created.id).enabled
jobs.enable_job(created.id)
assert jobs.get_job(created.id).enabled
try:
    jobs.create_job(body=kfp.ApiJob(name="bad", max_concurrency=0))
    raise SystemExit("expected a 400")
except kfp.rest.ApiException as e:
    print("rejected", e.status, json.loads(e.body)["error"])
    assert e.status == 400
jobs.delete_job(created.id)
print("deleted", created.id)
