-- stoppers.patience{metric = "accuracy", patience = 5, mode = "max", min_delta = 0} -> stopper
-- The paper's rule: stop after `patience` epochs without improvement of `metric` (an
-- improvement must beat the best by more than min_delta). stopper:step(history) -> stop, reason.
return function(opts)
  local o = sskd.options(opts, {metric = "accuracy", patience = 5, mode = "max", min_delta = 0}, "stoppers.patience")
  if o.mode ~= "max" and o.mode ~= "min" then error("stoppers.patience: mode must be 'max' or 'min', got '" .. o.mode .. "'", 2) end
  local s = {name = "patience", options = o, best = nil, best_epoch = nil, bad_epochs = 0,
             improved = false, should_stop = false, reason = nil}
  function s:step(history)
    local v = sskd.metric(history, o.metric, "stoppers.patience")
    if v == nil then return false end
    local better = self.best == nil
      or (o.mode == "max" and v > self.best + o.min_delta)
      or (o.mode == "min" and v < self.best - o.min_delta)
    self.improved = better
    if better then
      self.best, self.best_epoch, self.bad_epochs = v, history[#history].epoch or #history - 1, 0
    else
      self.bad_epochs = self.bad_epochs + 1
    end
    if self.bad_epochs >= o.patience then
      self.should_stop = true
      self.reason = ("%s did not improve for %d epochs (best %g at epoch %s)"):format(o.metric, self.bad_epochs, self.best, tostring(self.best_epoch))
    end
    return self.should_stop, self.reason
  end
  function s:reset() self.best, self.best_epoch, self.bad_epochs, self.improved, self.should_stop, self.reason = nil, nil, 0, false, false, nil end
  return setmetatable(s, {__tostring = function() return ("stoppers.patience{metric = %q, patience = %d}"):format(o.metric, o.patience) end})
end
