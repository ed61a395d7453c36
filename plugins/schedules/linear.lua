-- schedules.linear(epoch [, history]) -> value
-- A linear ramp from `start` to `stop` over `epochs` epochs after `delay` epochs, then flat:
-- schedules.linear{start = 0, stop = 1, epochs = 10, delay = 0}.
return sskd.schedule{
  name = "linear",
  params = {start = 0, stop = 1, epochs = 10, delay = 0},
  fn = function(p, e)
    if e < p.delay then return p.start end
    local t = p.epochs <= 0 and 1 or math.min((e - p.delay) / p.epochs, 1)
    return p.start + (p.stop - p.start) * t
  end,
}
