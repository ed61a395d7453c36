-- schedules.constant(epoch [, history]) -> value
-- The same value every epoch: schedules.constant{value = 0.5} (default 0.5).
return sskd.schedule{
  name = "constant",
  params = {value = 0.5},
  fn = function(p, e) return p.value end,
}
