-- schedules.paper_gradual(epoch [, history]) -> alpha
-- The paper's KD weight by zero-based epoch e: 0 for e < 5 (cross-entropy alone), then
-- min(0.1 + 0.05 * (e - 5), 0.9). Reparameterise with
-- schedules.paper_gradual{warmup = 5, start = 0.1, step = 0.05, max = 0.9}.
return sskd.schedule{
  name = "paper_gradual",
  params = {warmup = 5, start = 0.1, step = 0.05, max = 0.9},
  fn = function(p, e)
    if e < p.warmup then return 0 end
    return math.min(p.start + p.step * (e - p.warmup), p.max)
  end,
}
