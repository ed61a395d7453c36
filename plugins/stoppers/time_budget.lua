-- stoppers.time_budget{seconds = 3600, predict = true} -> stopper
-- A wall-clock budget: stops when the elapsed time (the history's `time` field, seconds since
-- training began; else measured from the first step) reaches `seconds`, or with predict, when
-- another epoch as long as the last one would overrun it.
return function(opts)
  local o = sskd.options(opts, {seconds = 3600, predict = true}, "stoppers.time_budget")
  if o.seconds <= 0 then error("stoppers.time_budget: seconds must be positive", 2) end
  local s = {name = "time_budget", options = o, should_stop = false, reason = nil, started = nil}
  local last_elapsed = 0
  function s:step(history)
    if type(history) ~= "table" then error("bad argument #1 to 'step' (history table expected, got " .. type(history) .. ")", 2) end
    local rec = history[#history] or {}
    local elapsed = rec.time
    if type(elapsed) ~= "number" then
      self.started = self.started or os.time()
      elapsed = os.time() - self.started
    end
    local epoch_time = rec.epoch_time or (elapsed - last_elapsed)
    last_elapsed = elapsed
    if elapsed >= o.seconds then
      self.should_stop, self.reason = true, ("time budget of %gs used (%gs elapsed)"):format(o.seconds, elapsed)
    elseif o.predict and elapsed + epoch_time > o.seconds then
      self.should_stop, self.reason = true, ("another epoch (~%gs) would exceed the time budget of %gs (%gs elapsed)"):format(epoch_time, o.seconds, elapsed)
    end
    return self.should_stop, self.reason
  end
  function s:reset() self.should_stop, self.reason, self.started, last_elapsed = false, nil, nil, 0 end
  return s
end
