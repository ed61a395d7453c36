-- schedules.step(epoch [, history]) -> value
-- `value` multiplied by `gamma` every `step_size` epochs (StepLR's rule):
-- schedules.step{value = 1, gamma = 0.1, step_size = 10}.
return sskd.schedule{
  name = "step",
  params = {value = 1, gamma = 0.1, step_size = 10},
  fn = function(p, e)
    if p.step_size <= 0 then error("schedules.step: step_size must be positive", 0) end
    return p.value * p.gamma ^ (e // p.step_size)
  end,
}
