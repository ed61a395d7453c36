-- nn layers, models and optimizers from Lua: construction, calls, autograd into module
-- parameters, state dicts and files, and wrong calls.
local T = require("testlib")
local tmp = os.tmpname()

T.test("layers compose and backpropagate into their parameters", function()
  torch.manual_seed(1)
  local net = nn.Sequential{nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)}
  local x = torch.randn{2, 1, 8, 8}
  local y = net(x)
  T.shape(y, {2, 3})
  local loss = F.cross_entropy(y, torch.tensor{0, 2})
  loss:backward()
  local ps = net:parameters()
  T.eq(#ps, 6)
  for i, p in ipairs(ps) do T.check(p.grad ~= nil, "parameter " .. i .. " has a gradient") end
  local opt = optim.SGD(net, {lr = 0.1})
  local before = ps[1]:clone()
  opt:step()
  T.check((ps[1] - before):abs():sum():item() > 0, "SGD changed the weights")
  opt:zero_grad()
  T.check(ps[1].grad == nil, "zero_grad clears")
end)

T.test("models by name with torchvision's sizes and printing", function()
  local m = models.efficientnet_b0{classes = 10, in_channels = 1}
  T.eq(m:num_parameters(), 4019782)
  T.check(tostring(m):find("EfficientNet", 1, true), "prints its tree")
  local s = m:summary{1, 28, 28}
  T.check(type(s) == "string" and s:find("Total", 1, true) ~= nil or s:find("total", 1, true) ~= nil, "summary text")
  local mv = models.mobilenet_v2{classes = 10}
  T.eq(mv:num_parameters(), 2236682)
  T.check(mv:get("classifier.1") ~= nil, "submodule by path")
  mv:set("classifier.1", nn.Linear(1280, 5))
  T.shape(mv:eval()(torch.rand{1, 3, 32, 32}), {1, 5})
  T.check(not mv.training, "eval mode")
  local names = models.names()
  T.eq(names[1], "mobilenet_v2")
end)

T.test("save and load through safetensors; strict and non-strict", function()
  torch.manual_seed(2)
  local a = nn.Sequential{nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)}
  local b = nn.Sequential{nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)}
  a:save(tmp)
  b:load(tmp)
  local x = torch.rand{5, 3}
  T.values(b(x), a(x):tolist()[1] and a(x):reshape(-1):tolist())
  local c = nn.Sequential{nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 7)}
  T.raises(function() c:load(tmp) end, "2.weight")
  local report = c:load(tmp, {strict = false})
  T.check(report:find("2.weight", 1, true), "non-strict load reports the skipped keys: " .. report)
  T.raises(function() c:load("/nonexistent/file.safetensors") end, "/nonexistent/file.safetensors")
end)

T.test("optimizers and schedules", function()
  local net = nn.Linear(2, 1)
  local opt = optim.Adam(net, {lr = 0.01})
  T.near(opt.lr, 0.01)
  local sched = optim.StepLR(opt, {step_size = 2, gamma = 0.5})
  sched:step(); sched:step()
  T.near(opt.lr, 0.005)
  opt.lr = 0.1
  T.near(opt.lr, 0.1)
  T.check(tostring(optim.AdamW(net:parameters())):find("AdamW", 1, true), "AdamW from a table of parameters")
end)

T.test("wrong calls are errors with messages", function()
  T.raises(function() return nn.Conv2d(1, 2) end, "bad argument #3 to 'nn.Conv2d'")
  T.raises(function() return nn.Conv2d(1, 2, 3, {strid = 2}) end, "unknown option 'strid'")
  T.raises(function() return nn.Sequential{nn.ReLU(), 3} end, "entry 2 is not a Module")
  T.raises(function() return models.efficientnet_b0{classes = "ten"} end, "bad option 'classes'")
  T.raises(function() return models.mobilenet_v2{classses = 10} end, "unknown option 'classses'")
  local m = nn.Linear(3, 2)
  T.raises(function() return m(torch.rand{2, 4}) end, "linear")
  T.raises(function() return m(nil) end, "Tensor expected, got nil")
  T.raises(function() return m:get("nope") end, "no submodule 'nope'")
  T.raises(function() return optim.SGD(m, {}) end, "option 'lr' is required")
  T.raises(function() return optim.Adam(3) end, "Module or table of Tensors expected")
  T.raises(function() return optim.StepLR(m, {step_size = 1}) end, "Optimizer expected")
  T.raises(function() local o = optim.Adam(m); o.lr = -1 end, "learning rate")
end)

os.remove(tmp)
return T.report()
