-- stoppers.target{metric = "accuracy", value = 0.9, mode = "max"} -> stopper
-- Stops as soon as `metric` reaches `value` (>= for mode "max", <= for "min").
return function(opts)
  local o = sskd.options(opts, {metric = "accuracy", value = 0.9, mode = "max"}, "stoppers.target")
  if o.mode ~= "max" and o.mode ~= "min" then error("stoppers.target: mode must be 'max' or 'min'", 2) end
  local s = {name = "target", options = o, should_stop = false, reason = nil}
  function s:step(history)
    local v = sskd.metric(history, o.metric, "stoppers.target")
    if v == nil then return false end
    if (o.mode == "max" and v >= o.value) or (o.mode == "min" and v <= o.value) then
      self.should_stop = true
      self.reason = ("%s reached %g (target %g)"):format(o.metric, v, o.value)
    end
    return self.should_stop, self.reason
  end
  function s:reset() self.should_stop, self.reason = false, nil end
  return s
end
