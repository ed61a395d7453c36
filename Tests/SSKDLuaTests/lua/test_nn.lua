-- Modules, models, optimizers and LR schedulers from Lua; autograd into module parameters.
local T = require("testlib")

T.test("layers: construction, call, fields, printing", function()
  torch.manual_seed(0)
  local lin = nn.Linear(4, 3)
  T.shape(lin.weight, {3, 4}); T.shape(lin.bias, {3})
  T.eq(lin.type, "Linear")
  local y = lin(torch.randn(2, 4))
  T.shape(y, {2, 3})
  T.shape(lin:forward(torch.randn(5, 4)), {5, 3})
  T.check(tostring(lin):find("Linear", 1, true))
  T.eq(nn.Linear(4, 3, {bias = false}).bias, nil)
  local conv = nn.Conv2d(3, 8, 3, {padding = 1, stride = 2})
  T.shape(conv(torch.randn(1, 3, 8, 8)), {1, 8, 4, 4})
  T.shape(nn.Conv2d(2, 4, {3, 1}, {padding = {1, 0}})(torch.zeros(1, 2, 5, 5)), {1, 4, 5, 5})
  T.shape(nn.MaxPool2d(2)(torch.zeros(1, 1, 4, 4)), {1, 1, 2, 2})
  T.shape(nn.AvgPool2d(2, {stride = 1})(torch.zeros(1, 1, 4, 4)), {1, 1, 3, 3})
  T.shape(nn.AdaptiveAvgPool2d(1)(torch.zeros(2, 3, 5, 5)), {2, 3, 1, 1})
  T.shape(nn.Flatten()(torch.zeros(2, 3, 5, 5)), {2, 75})
  T.values(nn.ReLU()(torch.tensor{-1, 1}), {0, 1})
  T.values(nn.ReLU6()(torch.tensor{-1, 7}), {0, 6})
  T.values(nn.Identity()(torch.tensor{5}), {5})
  local bn = nn.BatchNorm2d(3)
  T.shape(bn.running_mean, {3})
  T.shape(bn(torch.randn(4, 3, 2, 2)), {4, 3, 2, 2})
end)

T.test("Sequential: indexing from 0, len, children, add", function()
  local s = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
  T.eq(#s, 3)
  T.eq(s[0].type, "Linear"); T.eq(s[-1].type, "Linear"); T.eq(s[1].type, "ReLU")
  T.shape(s(torch.randn(3, 4)), {3, 2})
  local t = nn.Sequential{nn.Linear(2, 2)}
  t:add(nn.ReLU())
  T.eq(#t, 2)
  local ch = s:children()
  T.eq(ch[1][1], "0"); T.eq(ch[3][2].type, "Linear")
  local np = s:named_parameters()
  T.eq(np[1][1], "0.weight"); T.eq(#np, 4)
  T.eq(#s:parameters(), 4)
  T.eq(s:num_parameters(), 4 * 8 + 8 + 8 * 2 + 2)
  T.eq(s:get("2").type, "Linear")
  s:set("1", nn.SiLU())
  T.eq(s[1].type, "SiLU")
  T.eq(s["0"].type, "Linear")  -- children by name
end)

T.test("train/eval, requires_grad_, zero_grad", function()
  local s = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
  T.eq(s.training, true)
  T.eq(s:eval(), s); T.eq(s.training, false); T.eq(s[1].training, false)
  s:train(); T.eq(s[1].training, true)
  s:requires_grad_(false)
  T.eq(s[0].weight.requires_grad, false)
  T.eq(s:num_parameters(true), 0)
  s:requires_grad_()
  T.eq(s:num_parameters(true), 6)
end)

T.test("autograd into module parameters; optimizers train a model", function()
  torch.manual_seed(3)
  local model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
  local x = torch.randn(32, 4)
  local y = x:argmax(1):clamp(0, 2)
  local opt = optim.Adam(model, {lr = 0.05})
  T.check(tostring(opt):find("Adam(lr=0.05", 1, true), tostring(opt))
  local first, last
  for step = 1, 40 do
    opt:zero_grad()
    local loss = F.cross_entropy(model(x), y)
    loss:backward()
    if step == 1 then
      first = loss:item()
      T.shape(model[0].weight.grad, {16, 4})
    end
    opt:step()
    last = loss:item()
  end
  T.check(last < first * 0.5, ("loss %g -> %g"):format(first, last))
  local sgd = optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
  T.eq(sgd.lr, 0.1)
  sgd.lr = 0.01
  T.eq(sgd:param_groups()[1].lr, 0.01)
  T.eq(optim.AdamW(model, {}):param_groups()[1].weight_decay, 0.01)
end)

T.test("optimizer specs for the trainer", function()
  local spec = optim.Adam{lr = 5e-4}
  T.eq(spec.optimizer, "Adam"); T.eq(spec.options.lr, 5e-4)
  local opt = spec(nn.Linear(2, 2))
  T.eq(opt.lr, 5e-4)
  T.check(tostring(spec):find("a spec", 1, true))
end)

T.test("LR schedulers", function()
  local opt = optim.SGD(nn.Linear(2, 2), {lr = 1})
  local s = optim.lr_scheduler.StepLR(opt, {step_size = 2, gamma = 0.5})
  s:step(); T.eq(opt.lr, 1); s:step(); T.eq(opt.lr, 0.5)
  T.eq(s.last_epoch, 2); T.eq(s:get_last_lr()[1], 0.5)
  local c = optim.lr_scheduler.CosineAnnealingLR(optim.SGD(nn.Linear(2, 2), {lr = 1}), {T_max = 10})
  for _ = 1, 5 do c:step() end
  T.near(c:get_last_lr()[1], 0.5)
  local e = optim.lr_scheduler.ExponentialLR(optim.SGD(nn.Linear(2, 2), {lr = 1}), {gamma = 0.9})
  e:step(); T.near(e.optimizer.lr, 0.9)
  T.raises(function() optim.lr_scheduler.StepLR(opt, {}) end, "option 'step_size' is required")
  T.raises(function() optim.lr_scheduler.StepLR(opt, {step_size = 0}) end, "step_size must be positive")
  T.raises(function() optim.lr_scheduler.StepLR(nn.Linear(1, 1), {step_size = 1}) end, "bad argument #1 to 'optim.lr_scheduler.StepLR' (Optimizer expected, got Module)")
end)

T.test("state dicts and safetensors round trip", function()
  local a, b = nn.Linear(3, 2), nn.Linear(3, 2)
  local sd = a:state_dict()
  T.shape(sd.weight, {2, 3})
  b:load_state_dict(sd)
  T.values(b.weight, a.weight:reshape(-1):tolist())
  local path = os.tmpname()
  a:save(path)
  local c = nn.Linear(3, 2)
  c:load(path)
  os.remove(path)
  T.values(c.bias, a.bias:tolist())
  T.raises(function() nn.Linear(4, 2):load_state_dict(sd) end, "weight")
  T.raises(function() b:load_state_dict({weight = 3}) end, "state dict entry 'weight' must be a Tensor, got number")
  T.raises(function() b:load("/nonexistent/file.safetensors") end, "nonexistent")
end)

T.test("models and model variants", function()
  local m = models.efficientnet_b0{classes = 10, in_channels = 1}
  T.eq(m.type, "EfficientNet")
  T.shape(m.classifier[1].weight, {10, 1280})
  T.check(m:num_parameters() > 4000000)
  local mb = models.mobilenet_v2{classes = 10}
  T.shape(mb.classifier[1].weight, {10, 1280})
  local cnn = model_variants.small_cnn{classes = 5, in_channels = 1, width = 4}
  T.shape(cnn(torch.randn(2, 1, 8, 8)), {2, 5})
  local summary = cnn:summary{1, 8, 8}
  T.check(summary:find("Conv2d", 1, true) and summary:find("Linear", 1, true), summary)
  local half = model_variants.efficientnet_half{classes = 10}
  T.check(half:num_parameters() < m:num_parameters() / 2, "half is smaller")
  T.check(model_variants.mobilenet_v2_050{}:num_parameters() < mb:num_parameters())
  T.check(model_variants.efficientnet_scaled{phi = -2}:num_parameters() < m:num_parameters())
  T.raises(function() models.efficientnet_b0{clases = 10} end, "unknown option 'clases' to 'models.efficientnet_b0'")
  T.raises(function() model_variants.small_cnn{width = "x"} end, "bad option 'width'")
  T.raises(function() models.mobilenet_v2{weights = "/nonexistent.safetensors"} end, "nonexistent")
end)

T.test("models record their constructor (m.constructor, a run's model.json)", function()
  T.eq(models.efficientnet_b0{classes = 3, in_channels = 1}.constructor, "models.efficientnet_b0{classes = 3, in_channels = 1}")
  T.eq(models.mobilenet_v2{}.constructor, "models.mobilenet_v2{}")
  T.eq(models.efficientnet{width_mult = 0.25, depth_mult = 0.25, classes = 2}.constructor,
       "models.efficientnet{classes = 2, depth_mult = 0.25, width_mult = 0.25}")
  -- A plugin records itself, not the models.* call inside it; its options as called.
  T.eq(model_variants.small_cnn{classes = 2, width = 4}.constructor, "model_variants.small_cnn{classes = 2, width = 4}")
  T.eq(model_variants.small_cnn().constructor, "model_variants.small_cnn{}")
  T.eq(model_variants.mobilenet_v2_small_input{in_channels = 1, strides = 2}.constructor,
       "model_variants.mobilenet_v2_small_input{in_channels = 1, strides = 2}")
  -- Hand-assembled modules have none.
  T.eq(nn.Sequential(nn.Linear(2, 3)).constructor, nil)
  -- A plugin's errors at its caller's level still name the caller's line (here, this file).
  local err = T.raises(function() model_variants.small_cnn{width = "x"} end, "bad option 'width'")
  T.check(err:find("test_nn.lua:%d+: bad option"), err)
  err = T.raises(function() model_variants.mobilenet_v2_small_input{strides = 3} end, "bad option 'strides'")
  T.check(err:find("test_nn.lua:%d+: bad option"), err)
  -- The help of a wrapped plugin is its own.
  T.check(sskd.docs[model_variants.small_cnn].sig:find("model_variants.small_cnn{", 1, true))
end)

T.test("mobilenet_v2_small_input: torchvision's keys, stride-1 stem (and block), their gradients", function()
  local plain = models.mobilenet_v2{classes = 10, in_channels = 1}
  local keys = {}
  for _, kv in ipairs(plain:named_parameters()) do keys[#keys + 1] = kv[1] .. " " .. table.concat(kv[2].shape, "x") end
  for _, strides in ipairs{1, 2} do
    local m = model_variants.mobilenet_v2_small_input{classes = 10, in_channels = 1, strides = strides}
    local mine = {}
    for _, kv in ipairs(m:named_parameters()) do mine[#mine + 1] = kv[1] .. " " .. table.concat(kv[2].shape, "x") end
    T.eq(table.concat(mine, ","), table.concat(keys, ","), "state-dict keys and shapes are torchvision's")
    m:eval()
    -- 28x28 ends on 2x2 (stride-1 stem) or 4x4 (also features.2), where torchvision's ends on 1x1.
    local side = strides == 1 and 2 or 4
    T.shape(m:get("features")(torch.rand(2, 1, 28, 28)), {2, 1280, side, side})
    T.shape(m(torch.rand(2, 1, 28, 28)), {2, 10})
    T.shape(plain:get("features")(torch.rand(2, 1, 28, 28)), {2, 1280, 1, 1})
    -- torchvision's init (kaiming normal, fan out = 32 * 9): std sqrt(2 / 288) = 0.083.
    local w = m:get("features.0.0").weight
    T.check(math.abs(w:std():item() - math.sqrt(2 / 288)) < 0.02, "stem init std " .. w:std():item())
  end
  -- The new parts: the stride-1 stem and the stride-1 depthwise, gradients to input and weight.
  local m = model_variants.mobilenet_v2_small_input{in_channels = 1, strides = 2}
  local x = torch.rand(1, 1, 5, 5):requires_grad_()
  local stem = m:get("features.0.0").weight[{{0, 3}}]:detach():requires_grad_()
  local ok, report = torch.gradcheck(function(a, k) return F.conv2d(a, k, nil, {padding = 1}) end, {x, stem}, {eps = 1e-2, atol = 1e-2})
  T.check(ok, report)
  local dw = m:get("features.2.conv.1.0")
  T.eq(tostring(dw), "Conv2d(96, 96, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=96, bias=False)")
  T.eq(tostring(m:get("features.0.0")), "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)")
  local h = torch.rand(1, 96, 4, 4):requires_grad_()
  local k = dw.weight:detach():requires_grad_()
  ok, report = torch.gradcheck(function(a, kk) return F.conv2d(a, kk, nil, {padding = 1, groups = 96}) end, {h, k}, {eps = 1e-2, atol = 1e-2})
  T.check(ok, report)
  T.raises(function() model_variants.mobilenet_v2_small_input{strides = 3} end, "bad option 'strides'")
end)

T.test("wrong calls on modules", function()
  local lin = nn.Linear(4, 3)
  T.raises(function() lin(nil) end, "bad argument #1 to 'Linear call' (Tensor expected, got nil)")
  T.raises(function() lin(torch.zeros(2, 5)) end, "linear")
  T.raises(function() return lin[5] end, "index 5 is out of range for a Linear with 0 children")
  T.raises(function() lin["x"] = 1 end, "Module has no assignable field 'x'")
  T.raises(function() nn.Linear("a", 3) end, "bad argument #1 to 'nn.Linear' (integer expected, got string)")
  T.raises(function() nn.Linear(4) end, "bad argument #2 to 'nn.Linear' (integer expected, got no value)")
  T.raises(function() nn.Conv2d(3, 8, 3, {padding = "same"}) end, "bad option 'padding'")
  T.raises(function() nn.Sequential(nn.ReLU(), 3) end, "bad argument #2 to 'nn.Sequential' (Module expected, got number)")
  T.raises(function() nn.Sequential{nn.ReLU(), torch.zeros(1)} end, "entry 2 must be a Module, got Tensor")
  T.raises(function() nn.ReLU():add(nn.ReLU()) end, "only a Sequential can grow")
  T.raises(function()
    local s = nn.Identity()
    for _ = 1, 100000 do s = nn.Sequential(s) end
  end, "limited to 256 levels of nesting")
  local loop = nn.Sequential(nn.ReLU())
  T.raises(function() loop:add(loop) end, "a module cannot contain itself")
  T.raises(function() nn.Sequential(loop):get("0"):add(nn.Sequential(loop)) end, "a module cannot contain itself")
  T.raises(function() loop:set("0", nn.Sequential(loop)) end, "a module cannot contain itself")
  T.raises(function() lin:summary("x") end, "integer (size) expected")
  T.raises(function() optim.Adam(torch.zeros(2), {}) end, "bad argument #1 to 'optim.Adam' (Module or table of tensors (parameters) expected, got Tensor)")
  T.raises(function() optim.SGD(lin, {}) end, "option 'lr' is required")
  T.raises(function() optim.Adam(lin, {betas = {0.9}}) end, "two numbers expected")
  T.raises(function() optim.Adam({}, {lr = 1}) end, "empty parameter list")
  T.raises(function() optim.Adam(lin, {lr = -1}) end, "invalid learning rate")
  T.raises(function() torch.zeros(2):matmul(lin) end, "bad argument #2 to 'Tensor:matmul' (Tensor expected, got Module)")
  T.raises(function() lin.weight:matmul(optim.SGD(lin, {lr = 1})) end, "(Tensor expected, got Optimizer)")
end)

T.test("modules written in Lua (nn.Module)", function()
  torch.manual_seed(5)
  local Block = nn.Module{
    name = "Residual",
    init = function(self, c, scale)
      self.conv = nn.Conv2d(c, c, 3, {padding = 1})
      self.bn = nn.BatchNorm2d(c)
      self.scale = scale or 1
      self.gain = torch.ones(1):requires_grad_()   -- a parameter
      self.count = torch.zeros(1)                  -- a buffer
    end,
    forward = function(self, x) return (self.bn(self.conv(x)) * self.gain * self.scale + x):relu() end,
    extra = function(self) return self.scale * 10 end,
  }
  local b = Block(4, 2)
  T.eq(b.type, "Residual")
  T.check(tostring(b):find("Residual(", 1, true) and tostring(b):find("(conv): Conv2d", 1, true))
  T.eq(b.scale, 2); T.eq(b:extra(), 20)
  T.eq(#b:parameters(), 5)
  local has_count = false
  for _, p in ipairs(b:named_buffers()) do if p[1] == "count" then has_count = true end end
  T.check(has_count, "a tensor without grad becomes a buffer")
  local net = nn.Sequential(b, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
  T.shape(net(torch.randn(2, 4, 5, 5)), {2, 3})
  local loss = F.cross_entropy(net(torch.randn(2, 4, 5, 5)), torch.tensor{0, 2})
  loss:backward()
  T.shape(b.gain.grad, {1})
  T.shape(b.conv.weight.grad, {4, 4, 3, 3})
  T.check(net:summary{4, 5, 5}:find("Conv2d", 1, true))
  -- An eval forward without a graph at 2 threads: a model holding a Lua module is never split
  -- into batch slices on worker threads (Lua runs on the host's thread only).
  local threads = torch.get_num_threads()
  torch.set_num_threads(2)
  net:eval()
  local x = torch.randn(6, 4, 5, 5)
  local y = torch.no_grad(function() return net(x) end)
  T.shape(y, {6, 3})
  T.eq((y - net(x)):abs():max():item(), 0)
  net:train()
  torch.set_num_threads(threads)
  T.check(b:state_dict()["gain"] ~= nil and b:state_dict()["conv.weight"] ~= nil)
  T.raises(function() b.conv = 3 end, "'conv' is a registered child or parameter")
  T.raises(function() b.self_ref = b end, "cannot be its own child")
  T.raises(function() b.wrapper = nn.Sequential(b) end, "a module cannot contain itself")
  T.raises(function() nn.Module{} end, "needs a forward(self, x) function")
  T.raises(function() nn.Module(3) end, "class table expected, got number")
  T.raises(function() Block("x") end, "bad argument #1 to 'nn.Conv2d'")
  local Bad = nn.Module{forward = function(self, x) return 1 end}
  T.raises(function() Bad()(torch.zeros(1)) end, "LuaModule.forward must return a Tensor, got number")
  local Boom = nn.Module{forward = function(self, x) error("inside forward") end}
  T.raises(function() Boom()(torch.zeros(1)) end, "inside forward")
  T.raises(function() nn.Linear(2, 2).foo = 1 end, "Module has no assignable field 'foo'")
end)

return T.report()
