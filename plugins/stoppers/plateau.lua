-- stoppers.plateau{metric = "train_loss", window = 5, threshold = 0.01} -> stopper
-- Stops when `metric` has flattened: over the last `window` epochs its range (max - min) is
-- below `threshold` times its mean magnitude. stopper:step(history) -> stop, reason.
return function(opts)
  local o = sskd.options(opts, {metric = "train_loss", window = 5, threshold = 0.01}, "stoppers.plateau")
  if o.window < 2 then error("stoppers.plateau: window must be at least 2", 2) end
  local s = {name = "plateau", options = o, should_stop = false, reason = nil}
  function s:step(history)
    local v = sskd.metric(history, o.metric, "stoppers.plateau")
    if v == nil or #history < o.window then return false end
    local lo, hi, sum = math.huge, -math.huge, 0
    for i = #history - o.window + 1, #history do
      local x = history[i][o.metric]
      lo, hi, sum = math.min(lo, x), math.max(hi, x), sum + math.abs(x)
    end
    local scale = math.max(sum / o.window, 1e-12)
    if (hi - lo) / scale < o.threshold then
      self.should_stop = true
      self.reason = ("%s plateaued: range %g over the last %d epochs"):format(o.metric, hi - lo, o.window)
    end
    return self.should_stop, self.reason
  end
  function s:reset() self.should_stop, self.reason = false, nil end
  return s
end
