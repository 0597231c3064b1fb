"""Manage swf-operator's recurring runs with KFP's SDK, kfp.Client 1.8.x, unchanged.

    pip install kfp==1.8.22
    python3 examples/kfp_sdk_client.py http://127.0.0.1:8888 "$TOKEN"

The API must have a default namespace (--api-default-namespace): KFP's single-user clients
send none. Experiments belong to KFP; this API keeps an experiment id as given.
Creates a recurring run from a pipeline package (an Argo Workflow, as KFP 1.8's compiler
writes), lists, reads, disables and deletes it; prints each step.
"""
import json
import sys
import tempfile

import kfp

host, token = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host, existing_token=token)

package = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "sdk-"},
    "spec": {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "day"}]},
        "templates": [{"name": "main", "container": {"image": "busybox", "args": ["{{workflow.parameters.day}}"]}}],
    },
}
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    json.dump(package, f)  # JSON is YAML

job = client.create_recurring_run(
    experiment_id="sdk-experiment",
    job_name="sdk nightly",
    description="made by kfp.Client",
    cron_expression="0 0 2 * * *",
    max_concurrency=2,
    params={"day": "[[ScheduledTime.2006-01-02]]"},
    pipeline_package_path=f.name,
)
print("created", job.id, job.name, job.status)

listed = client.list_recurring_runs(experiment_id="sdk-experiment", page_size=10)
assert any(j.id == job.id for j in listed.jobs), listed
print("listed", listed.total_size)

got = client.get_recurring_run(job.id)
assert got.name == "sdk nightly" and int(got.max_concurrency) == 2, got
assert got.trigger.cron_schedule.cron == "0 0 2 * * *", got.trigger
print("read", got.name, got.trigger.cron_schedule.cron)

client.disable_job(job.id)
assert client.get_recurring_run(job.id).enabled in (False, None)
print("disabled")

client.delete_job(job.id)
print("deleted")
