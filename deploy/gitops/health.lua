-- Argo CD health of a ScheduledWorkflow (kubeflow.org/v1beta1), from the operator's status:
-- kstatus' Ready/Stalled conditions and KFP's summary condition (the last one).
--   Healthy      Ready=True and the schedule is enabled
--   Suspended    spec.enabled is false, with the reason
--   Degraded     Stalled=True: the spec cannot run, or its failure policy suspended it
--                (SuspendedAfterFailures); the message says why
--   Progressing  the operator has not yet reported on this generation of the spec
-- Install: argocd-cm.yaml next to this file. Tested with lua5.1 (tests/it/gitops.rs).
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to read generation " .. tostring(generation)
  return hs
end
local ready, stalled, summary = nil, nil, nil
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  else
    summary = c
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if obj.spec ~= nil and obj.spec.enabled == false then
  hs.status = "Suspended"
  hs.message = "The schedule is disabled"
  return hs
end
if summary ~= nil and summary.type == "Disabled" then
  hs.status = "Suspended"
  hs.message = (summary.reason or "Disabled") .. ": " .. (summary.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = (summary ~= nil and summary.message) or ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = (ready ~= nil and ready.message) or "Waiting for the operator"
return hs
