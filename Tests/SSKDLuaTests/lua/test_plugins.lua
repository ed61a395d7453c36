-- The shipped plugins: schedules, losses, stoppers (models are tested once nn lands).
local T = require("testlib")

T.test("registries and sources", function()
  for _, name in ipairs{"paper_gradual", "constant", "linear", "cosine", "step"} do
    T.check(schedules[name] ~= nil, "schedule " .. name)
    T.check(sskd.plugins.schedules[name]:find("schedules/" .. name .. ".lua", 1, true))
  end
  for _, name in ipairs{"kd", "cross_entropy", "blend"} do T.check(type(losses[name]) == "function", "loss " .. name) end
  for _, name in ipairs{"patience", "min_delta", "plateau", "target", "time_budget"} do T.check(type(stoppers[name]) == "function", "stopper " .. name) end
  T.check(type(model_variants) == "table")
end)

T.test("paper_gradual: 0 before epoch 5, then 0.1 + 0.05 (e - 5), capped at 0.9", function()
  local a = schedules.paper_gradual
  for e = 0, 4 do T.eq(a(e), 0) end
  T.near(a(5), 0.1); T.near(a(6), 0.15); T.near(a(7), 0.2); T.near(a(10), 0.35)
  T.near(a(21), 0.9); T.near(a(29), 0.9); T.near(a(100), 0.9)
  local b = a{warmup = 0, max = 0.5}
  T.near(b(0), 0.1); T.near(b(100), 0.5)
  T.near(a(7), 0.2, 1e-9, "reparameterising returns a copy")
  T.check(tostring(b):find("warmup = 0", 1, true))
  T.raises(function() a{warmpu = 1} end, "unknown option 'warmpu' to 'schedules.paper_gradual'")
  T.raises(function() a{max = "x"} end, "bad option 'max'")
  T.raises(function() a("x") end, "epoch number or table of parameters expected, got string")
end)

T.test("constant, linear, cosine, step", function()
  T.eq(schedules.constant(3), 0.5)
  T.eq(schedules.constant{value = 0.7}(9), 0.7)
  local l = schedules.linear{start = 0, stop = 1, epochs = 4, delay = 2}
  T.eq(l(0), 0); T.eq(l(2), 0); T.near(l(3), 0.25); T.near(l(6), 1); T.near(l(50), 1)
  local c = schedules.cosine{start = 1, stop = 0, epochs = 10}
  T.near(c(0), 1); T.near(c(5), 0.5); T.near(c(10), 0); T.near(c(20), 0)
  local s = schedules.step{value = 1, gamma = 0.5, step_size = 2}
  T.eq(s(0), 1); T.eq(s(1), 1); T.eq(s(2), 0.5); T.eq(s(5), 0.25)
end)

T.test("losses: kd, cross_entropy, blend", function()
  torch.manual_seed(1)
  local s, t = torch.randn(4, 10), torch.randn(4, 10)
  local y = torch.tensor{1, 2, 3, 4}
  T.near(losses.kd(s, s, y, 0.5, 3):item(), 0, 1e-5)
  -- matches the formula computed by hand
  local T3 = 3
  local p = (t / T3):softmax(1)
  local manual = (p * (p:log() - (s / T3):log_softmax(1))):sum():item() / 4 * T3 * T3
  T.near(losses.kd(s, t, y, 0.5, T3):item(), manual, 1e-4)
  T.near(losses.cross_entropy(s, t, y):item(), F.cross_entropy(s, y):item())
  local a = 0.3
  local want = a * losses.kd(s, t, y, a, 3):item() + (1 - a) * F.cross_entropy(s, y):item()
  T.near(losses.blend(s, t, y, a, 3):item(), want, 1e-5)
  T.near(losses.blend(s, t, y, 0, 3):item(), F.cross_entropy(s, y):item())
  T.raises(function() losses.blend(s, t, y, nil, 3) end, "alpha must be a number")
  -- gradients flow from a plugin loss into the student logits
  local sl = torch.randn(4, 10):requires_grad_()
  losses.blend(sl, t, y, 0.5, 3):backward()
  T.shape(sl.grad, {4, 10})
end)

local function hist(values, metric)
  local h = {}
  for i, v in ipairs(values) do h[i] = {epoch = i - 1, [metric or "accuracy"] = v} end
  return h
end

--- Steps a stopper through a growing history; returns the zero-based epoch it stopped at.
local function run(stopper, values, metric)
  local h = {}
  for i, v in ipairs(values) do
    h[i] = {epoch = i - 1, [metric or "accuracy"] = v}
    if stopper:step(h) then return i - 1 end
  end
end

T.test("patience: the paper's rule (5 epochs without improvement)", function()
  local s = stoppers.patience{metric = "accuracy", patience = 5}
  T.eq(run(s, {0.5, 0.6, 0.7, 0.69, 0.7, 0.65, 0.68, 0.7, 0.71}), 7)
  T.eq(s.best, 0.7); T.eq(s.best_epoch, 2)
  T.check(s.reason:find("did not improve for 5 epochs", 1, true))
  T.eq(run(stoppers.patience{patience = 2}, {0.1, 0.2, 0.3, 0.4}), nil)
  local m = stoppers.patience{metric = "val_loss", mode = "min", patience = 1}
  T.eq(run(m, {1.0, 0.8, 0.9}, "val_loss"), 2)
  local d = stoppers.patience{patience = 2, min_delta = 0.05}
  T.eq(run(d, {0.5, 0.52, 0.54, 0.6}), 2)
  -- improved flag for keeping the best weights
  local k = stoppers.patience{}
  k:step(hist{0.1}); T.eq(k.improved, true)
  k:step(hist{0.1, 0.05}); T.eq(k.improved, false)
  T.raises(function() stoppers.patience{patiense = 3} end, "unknown option 'patiense' to 'stoppers.patience'")
  T.raises(function() stoppers.patience{mode = "up"} end, "mode must be 'max' or 'min'")
  T.raises(function() stoppers.patience{}:step(hist({1}, "loss")) end, "metric 'accuracy' is not in the history record of epoch 0")
  T.raises(function() stoppers.patience{}:step(nil) end, "history table expected, got nil")
end)

T.test("min_delta, plateau, target, time_budget", function()
  T.eq(run(stoppers.min_delta{min_delta = 0.01, window = 2}, {0.5, 0.6, 0.605, 0.606, 0.7}), 3)
  T.eq(run(stoppers.plateau{metric = "train_loss", window = 3, threshold = 0.01}, {1, 0.5, 0.3, 0.3, 0.301, 0.3}, "train_loss"), 4)
  T.eq(run(stoppers.target{value = 0.8}, {0.5, 0.79, 0.81, 0.9}), 2)
  T.eq(run(stoppers.target{metric = "loss", value = 0.1, mode = "min"}, {1, 0.2, 0.05}, "loss"), 2)
  local tb = stoppers.time_budget{seconds = 100}
  T.eq(tb:step{{epoch = 0, time = 30}}, false)
  T.eq(tb:step{{epoch = 0, time = 30}, {epoch = 1, time = 60}}, false)
  -- 85 s elapsed and the last epoch took 25 s: another would end at 110 s > 100 s
  T.eq(tb:step{{epoch = 0, time = 30}, {epoch = 1, time = 60}, {epoch = 2, time = 85}}, true)
  T.check(tb.reason:find("would exceed", 1, true))
  T.eq(stoppers.time_budget{seconds = 10, predict = false}:step{{time = 10}}, true)
end)

return T.report()
