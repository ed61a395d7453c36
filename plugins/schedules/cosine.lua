-- schedules.cosine(epoch [, history]) -> value
-- Half-cosine from `start` (epoch 0) to `stop` (epoch `epochs` and after):
-- schedules.cosine{start = 1, stop = 0, epochs = 30}.
return sskd.schedule{
  name = "cosine",
  params = {start = 1, stop = 0, epochs = 30},
  fn = function(p, e)
    local t = p.epochs <= 0 and 1 or math.min(math.max(e, 0) / p.epochs, 1)
    return p.stop + (p.start - p.stop) * (1 + math.cos(math.pi * t)) / 2
  end,
}
