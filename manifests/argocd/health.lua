-- Argo CD health of a modelship.io ModelDeployment (docs/gitops.md).
-- Reads only what the operator writes for every tool alike: observedGeneration, the phase, the
-- kstatus conditions (Ready, Reconciling, Stalled, Degraded) and status.canary; it agrees with
-- kstatus, which Flux reads, on every state the e2e suite produces.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

local function condition(name)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == name then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = obj.status.phase or ""
local ready = condition("Ready")
local stalled = condition("Stalled")
local degraded = condition("Degraded")
local reconciling = condition("Reconciling")

-- A spec that cannot be reached by itself (a failed build, a revision that missed its deadline,
-- a rollback, a refused path): only a change of the spec moves it on.
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(stalled, phase)
  return hs
end
-- Still working on it (a reconcile error being retried counts: it may heal by itself).
if reconciling ~= nil and reconciling.status == "True" then
  local canary = obj.status.canary
  if canary ~= nil and (canary.paused == true or canary.heldByAnalysis == true) then
    hs.status = "Suspended"
  end
  hs.message = said(reconciling, phase)
  return hs
end
-- Serving, but short of what it should be (the stable revision lost pods).
if phase == "Degraded" or phase == "Failed" or (degraded ~= nil and degraded.status == "True") then
  hs.status = "Degraded"
  hs.message = said(degraded, phase)
  return hs
end
if ready ~= nil and ready.status == "True" and phase == "Ready" then
  hs.status = "Healthy"
  hs.message = said(ready, "serving")
  return hs
end
hs.message = said(ready, phase)
return hs
