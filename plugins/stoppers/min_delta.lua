-- stoppers.min_delta{metric = "accuracy", min_delta = 0.001, window = 3, mode = "max"} -> stopper
-- Minimum improvement: stop when the best value of `metric` improved by less than `min_delta`
-- over the last `window` epochs. stopper:step(history) -> stop, reason.
return function(opts)
  local o = sskd.options(opts, {metric = "accuracy", min_delta = 0.001, window = 3, mode = "max"}, "stoppers.min_delta")
  if o.mode ~= "max" and o.mode ~= "min" then error("stoppers.min_delta: mode must be 'max' or 'min'", 2) end
  if o.window < 1 then error("stoppers.min_delta: window must be at least 1", 2) end
  local s = {name = "min_delta", options = o, should_stop = false, reason = nil, improved = false}
  local function best(history, n)
    local b
    for i = 1, n do
      local v = history[i][o.metric]
      if type(v) == "number" and (b == nil or (o.mode == "max" and v > b) or (o.mode == "min" and v < b)) then b = v end
    end
    return b
  end
  function s:step(history)
    local v = sskd.metric(history, o.metric, "stoppers.min_delta")
    if v == nil then return false end
    local n = #history
    local now, before = best(history, n), best(history, n - 1)
    self.improved = before == nil or now ~= before
    if n <= o.window then return false end
    local gain = math.abs(now - best(history, n - o.window))
    if gain < o.min_delta then
      self.should_stop = true
      self.reason = ("%s improved by %g (< min_delta %g) over the last %d epochs"):format(o.metric, gain, o.min_delta, o.window)
    end
    return self.should_stop, self.reason
  end
  function s:reset() self.should_stop, self.reason, self.improved = false, nil, false end
  return s
end
