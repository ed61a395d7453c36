-- The Lua API fuzzer: random sequences of calls over every bound function and method (from the
-- docs index sskd.libs / sskd.types) with arguments drawn from nasty values, all in one host.
-- The host must survive every call with a Lua error or a result. Run by `sskd fuzz lua`, which
-- passes (seconds, seed, last_call_file, max_calls) and runs it in a scratch folder under a memory
-- cap (SSKD_MAX_MEMORY); deterministic for a seed (same calls, same order) up to the time limit.
--
-- Before each call its description is written to `last_call_file`: when the process dies, that
-- file names the call that killed it (the command prints it).
local seconds, seed, last_call_file, max_calls = ...
seconds, seed, max_calls = tonumber(seconds) or 10, tonumber(seed) or 0, tonumber(max_calls) or math.huge
math.randomseed(seed)
local R = math.random

-- Calls left out, and why: they block or loop for as long as their (valid) arguments ask.
local skip = {
  ["_G.fit"] = "trains for `epochs`", ["_G.distill"] = "trains for `epochs`", ["_G.print"] = "output only",
  ["_G.__sskd_mtime"] = "file times only", ["data.fashion_mnist"] = "reads 60000 images (seconds per call)",
  ["data.mnist"] = "reads 60000 images",
}
-- EfficientNet-B2...B7 build the same blocks as B0/B1 with more channels: seconds per call.
for b = 2, 7 do skip["models.efficientnet_b" .. b] = "same code as efficientnet_b0/b1, seconds per call" end

-- Every bound callable: {name, fn, self_type (for methods)}.
local callables = {}
for lname, lib in pairs(sskd.libs) do
  for fname, e in pairs(lib.functions) do
    local q = lname .. "." .. fname
    if not skip[q] then callables[#callables + 1] = {name = q, fn = e.fn} end
  end
end
for tname, t in pairs(sskd.types) do
  for mname, e in pairs(t.methods) do
    callables[#callables + 1] = {name = tname .. ":" .. mname, fn = e.fn, self = tname}
  end
end
table.sort(callables, function(a, b) return a.name < b.name end)   -- pairs order is not deterministic

-- A pool of live objects to call methods on and pass as arguments; results join it.
local pool = {}
local function add(v)
  local ok, tn = pcall(function() return getmetatable(v) and getmetatable(v).__name end)
  if not ok or type(tn) ~= "string" then return end
  if tn == "Tensor" and v:numel() > 4096 then return end      -- keeps gradcheck and friends quick
  pool[tn] = pool[tn] or {}
  local list = pool[tn]
  if #list < 16 then list[#list + 1] = v else list[R(#list)] = v end
end
local function seed_pool()
  local makers = {
    function() return torch.zeros(0) end, function() return torch.randn(2, 3) end, function() return torch.randn(1, 3, 8, 8) end,
    function() return torch.tensor(3) end, function() return torch.zeros(2, 0, 3) end, function() return torch.randn(4):requires_grad_() end,
    function() return torch.rand(3, 8, 8) end, function() return torch.tensor{0, 1, 2, 1} end, function() return torch.randn(2, 3, 4, 5):requires_grad_() end,
    function() return nn.Linear(3, 2) end, function() return nn.Conv2d(3, 4, 3) end, function() return nn.Sequential{nn.Flatten(), nn.Linear(3, 2)} end,
    function() return nn.BatchNorm2d(3) end, function() return models.mobilenet_v2{classes = 3, width_mult = 0.25} end,
    function() return optim.SGD(nn.Linear(3, 2):parameters(), {lr = 0.1}) end,
    function() return transforms.resize(4) end, function() return transforms.random_crop(2, {padding = 1}) end,
    function() return transforms.color_jitter{brightness = 0.2} end,
  }
  for _, m in ipairs(makers) do
    local ok, v = pcall(m)
    if ok then add(v) else error("fuzzer pool: " .. tostring(v)) end
  end
end
seed_pool()

-- Nasty values.
local big = {0, -1, 1, 2, 3, 7, 0.5, -0.5, 0/0, 1/0, -1/0, 2^31, 2^31 - 1, -2^31, 2^32, 2^53, 2^63, math.maxinteger,
             math.mininteger, 1e300, -1e300, 1e-300, 1e9, 1e12, 65536, 100000}
local small = {0, 1, 2, 3, -1, 4, 8, 1}
-- No "/" or "..": data.image_folder would walk the whole file system (slow, not a crash).
local strings = {"", "abc", "a\0b", ("x"):rep(100000), "nil", "1e309", "/nonexistent/file", ".", "%s%n", "fan_in", "mean", "sum", "none", "relu"}
local optionKeys = {"padding", "stride", "dilation", "groups", "bias", "p", "training", "eps", "momentum", "size", "classes",
  "width_mult", "depth_mult", "in_channels", "dropout", "weights", "strict", "lr", "betas", "weight_decay", "nesterov", "samples",
  "validation", "seed", "keepdim", "dim", "antialias", "fill", "pad_if_needed", "mean", "std", "brightness", "contrast", "saturation",
  "hue", "batch", "epochs", "T_max", "gamma", "step_size", "milestones", "max_lr", "total_steps", "reduction", "label_smoothing",
  "ignore_index", "weight", "log_target", "ceil_mode", "count_include_pad", "mode", "inplace", "root", "split", "channels",
  "unlabeled", "ratio", "eta_min", "factor", "total_iters", "pct_start", "anneal_strategy", "amsgrad", "maximize", "dampening"}

local depth = 0
local value
local function objectOf(tn)
  local list = pool[tn]
  if list and #list > 0 then return list[R(#list)] end
  return nil
end
local function anyObject()
  local names = {}
  for k in pairs(pool) do names[#names + 1] = k end
  table.sort(names)
  return objectOf(names[R(#names)])
end
local function list(n, gen) local t = {} for i = 1, n do t[i] = gen() end return t end
function value()
  depth = depth + 1
  local v
  local k = depth > 3 and R(4) or R(14)
  if k == 1 then v = nil
  elseif k == 2 then v = big[R(#big)]
  elseif k == 3 then v = small[R(#small)]
  elseif k == 4 then v = anyObject()
  elseif k == 5 then v = strings[R(#strings)]
  elseif k == 6 then v = (R(2) == 1)
  elseif k == 7 then v = {}                                                    -- empty table
  elseif k == 8 then v = list(R(0, 5), function() return small[R(#small)] end)  -- a size list
  elseif k == 9 then v = list(R(0, 4), function() return big[R(#big)] end)
  elseif k == 10 then v = {{1, 2}, {3}}                                        -- ragged
  elseif k == 11 then                                                          -- options table
    v = {}
    for _ = 1, R(0, 3) do v[optionKeys[R(#optionKeys)]] = value() end
  elseif k == 12 then v = list(R(0, 3), value)                                 -- mixed list
  elseif k == 13 then v = (R(2) == 1) and function() return value() end or function() error("from a callback") end
  else v = anyObject() end
  depth = depth - 1
  return v
end

local function describe(v)
  local t = type(v)
  if t == "string" then return #v > 40 and ("string(" .. #v .. ")") or string.format("%q", v) end
  if t == "table" then
    local parts, n = {}, 0
    for k, x in pairs(v) do
      n = n + 1
      if n > 6 then parts[#parts + 1] = "..." break end
      parts[#parts + 1] = (type(k) == "string" and (k .. "=") or "") .. describe(x)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  if t == "userdata" then
    local mt = getmetatable(v)
    local tn = mt and rawget(mt, "__name") or "userdata"
    if tn == "Tensor" then local ok2, sh = pcall(function() return v.shape end) return "Tensor" .. (ok2 and describe(sh) or "?") end
    return tn
  end
  return tostring(v)
end

-- Calls that returned a result are kept and mutated later: one argument (or one entry or option
-- of a table argument) replaced by a nasty value reaches the code behind the argument checks.
local good = {}
local function remember(name, args, nargs)
  local g = good[name] or {}
  good[name] = g
  local copy = {n = nargs}
  for i = 1, nargs do copy[i] = args[i] end
  if #g < 8 then g[#g + 1] = copy else g[R(#g)] = copy end
end
local function mutate(saved)
  local args, nargs = {}, saved.n
  for i = 1, nargs do args[i] = saved[i] end
  for _ = 1, R(2) do
    local i = R(math.max(nargs, 1))
    local a = args[i]
    if type(a) == "table" and getmetatable(a) == nil then
      -- A copy with one entry or option changed, mostly to a huge or odd number.
      local t, keys = {}, {}
      for k, v in pairs(a) do t[k] = v; keys[#keys + 1] = k end
      table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
      local k = (#keys > 0 and R(4) > 1) and keys[R(#keys)] or optionKeys[R(#optionKeys)]
      t[k] = (R(10) <= 7) and big[R(#big)] or value()
      args[i] = t
    elseif type(a) == "number" then
      args[i] = (R(10) <= 8) and big[R(#big)] or value()
    else
      args[i] = value()
    end
  end
  return args, nargs
end

-- Valid calls to start the mutations from (the seed corpus): for most functions a plain use;
-- each is checked to succeed, so a wrong seed fails the fuzzer at once.
local function T(...) return torch.randn(...) end
local seeds = {
  {"F.conv2d", function() return T(1, 3, 8, 8), T(4, 3, 3, 3), T(4), {padding = 1, stride = 1, dilation = 1, groups = 1} end},
  {"F.conv2d", function() return T(1, 4, 8, 8), T(4, 1, 3, 3), nil, {padding = {1, 2}, groups = 4} end},
  {"F.max_pool2d", function() return T(1, 3, 8, 8), 2, {stride = 2, padding = 1, ceil_mode = true} end},
  {"F.avg_pool2d", function() return T(1, 3, 8, 8), {3, 2}, {stride = 1, padding = 1, count_include_pad = false} end},
  {"F.adaptive_avg_pool2d", function() return T(1, 3, 8, 8), {2, 3} end},
  {"F.linear", function() return T(2, 3), T(4, 3), T(4) end},
  {"F.batch_norm", function() return T(2, 3, 4, 4), torch.zeros(3), torch.ones(3), {weight = torch.ones(3), training = true, momentum = 0.1, eps = 1e-5} end},
  {"F.cross_entropy", function() return T(2, 3), torch.tensor{0, 2}, {label_smoothing = 0.1} end},
  {"F.nll_loss", function() return T(2, 3):log_softmax(1), torch.tensor{0, 2} end},
  {"F.kl_div", function() return T(2, 3):log_softmax(1), T(2, 3):softmax(1), {reduction = "batchmean"} end},
  {"F.mse_loss", function() return T(2, 3), T(2, 3) end},
  {"F.dropout", function() return T(2, 3), {p = 0.5, training = true} end},
  {"F.stochastic_depth", function() return T(2, 3), 0.5, {mode = "row", training = true} end},
  {"F.softmax", function() return T(2, 3), 1 end},
  {"torch.zeros", function() return 2, 3 end}, {"torch.full", function() return {2, 2}, 3 end},
  {"torch.arange", function() return 0, 5, 1 end}, {"torch.linspace", function() return 0, 1, 5 end},
  {"torch.eye", function() return 3, 2 end}, {"torch.randint", function() return 0, 10, {3} end},
  {"torch.randperm", function() return 5 end}, {"torch.cat", function() return {T(2, 3), T(1, 3)}, 0 end},
  {"torch.stack", function() return {T(2, 3), T(2, 3)}, 1 end}, {"torch.tensor", function() return {{1, 2}, {3, 4}} end},
  {"torch.where", function() return T(2, 3):gt(0), T(2, 3), T(2, 3) end}, {"torch.empty", function() return 2, 2 end},
  {"Tensor:reshape", function() return T(2, 3), 3, 2 end}, {"Tensor:view", function() return T(2, 3), {6} end},
  {"Tensor:expand", function() return T(1, 3), 4, 3 end}, {"Tensor:narrow", function() return T(4, 3), 0, 1, 2 end},
  {"Tensor:select", function() return T(4, 3), 0, 1 end}, {"Tensor:slice", function() return T(4, 3), 0, 1, 3 end},
  {"Tensor:index_select", function() return T(4, 3), 0, torch.tensor{0, 2} end},
  {"Tensor:gather", function() return T(2, 3), 1, torch.tensor{{0}, {1}} end},
  {"Tensor:permute", function() return T(2, 3, 4), 2, 0, 1 end}, {"Tensor:transpose", function() return T(2, 3), 0, 1 end},
  {"Tensor:squeeze", function() return T(1, 3), 0 end}, {"Tensor:unsqueeze", function() return T(3), 1 end},
  {"Tensor:flatten", function() return T(2, 3, 4), 1 end}, {"Tensor:sum", function() return T(2, 3), 1, true end},
  {"Tensor:max", function() return T(2, 3), 1 end}, {"Tensor:std", function() return T(2, 3), 1, {correction = 1, keepdim = true} end},
  {"Tensor:clamp", function() return T(2, 3), -0.5, 0.5 end}, {"Tensor:pow", function() return T(2, 3), 2 end},
  {"Tensor:matmul", function() return T(2, 3), T(3, 4) end}, {"Tensor:mm", function() return T(2, 3), T(3, 4) end},
  {"Tensor:softmax", function() return T(2, 3), 1 end}, {"Tensor:logsumexp", function() return T(2, 3), 1 end},
  {"Tensor:fill_", function() return T(2, 3), 1 end}, {"Tensor:copy_", function() return T(2, 3), T(2, 3) end},
  {"Tensor:add_", function() return T(2, 3), T(3) end}, {"Tensor:backward", function() return T(3):requires_grad_():sum() end},
  {"transforms.resize", function() return 8 end}, {"transforms.resize", function() return {6, 8}, {antialias = false} end},
  {"transforms.center_crop", function() return 4 end}, {"transforms.random_crop", function() return 4, {padding = 1, pad_if_needed = true} end},
  {"transforms.rotate", function() return 10, {fill = 0} end}, {"transforms.hflip", function() return 0.5 end},
  {"transforms.normalize", function() return {mean = {0.5}, std = {0.25}} end},
  {"transforms.color_jitter", function() return {brightness = 0.2, contrast = 0.2, saturation = 0.2, hue = 0.1} end},
  {"Transform:apply", function() return transforms.resize(4), torch.rand(1, 8, 8), 1 end},
  {"Transform:apply", function() return transforms.random_crop(6, {padding = 2}), torch.rand(3, 8, 8), 2 end},
  {"Transform:apply", function() return transforms.center_crop(4), torch.rand(3, 8, 8) end},
  {"nn.Conv2d", function() return 3, 4, 3, {padding = 1, stride = 2, groups = 1, bias = false} end},
  {"nn.Linear", function() return 3, 2 end}, {"nn.BatchNorm2d", function() return 3 end},
  {"nn.MaxPool2d", function() return 2 end}, {"nn.AvgPool2d", function() return 2 end},
  {"nn.AdaptiveAvgPool2d", function() return 1 end}, {"nn.Dropout", function() return 0.5 end},
  {"models.mobilenet_v2", function() return {classes = 3, width_mult = 0.25, dropout = 0.1, in_channels = 1} end},
  {"models.efficientnet", function() return {classes = 3, width_mult = 0.25, depth_mult = 0.25, in_channels = 1} end},
  {"Module:forward", function() return nn.Linear(3, 2), T(2, 3) end},
  {"Module:forward", function() return nn.Conv2d(3, 4, 3, {padding = 1}), T(1, 3, 8, 8) end},
  {"optim.SGD", function() return nn.Linear(3, 2):parameters(), {lr = 0.1, momentum = 0.9, nesterov = true} end},
  {"optim.Adam", function() return nn.Linear(3, 2):parameters(), {lr = 0.01, betas = {0.9, 0.99}} end},
  {"optim.lr_scheduler.StepLR", function() return optim.SGD(nn.Linear(3, 2):parameters(), {lr = 0.1}), {step_size = 2, gamma = 0.5} end},
  {"optim.lr_scheduler.OneCycleLR", function() return optim.SGD(nn.Linear(3, 2):parameters(), {lr = 0.1}), {max_lr = 0.1, total_steps = 10} end},
  {"optim.lr_scheduler.MultiStepLR", function() return optim.SGD(nn.Linear(3, 2):parameters(), {lr = 0.1}), {milestones = {2, 4}} end},
  {"torch.gradcheck", function() return function(x) return x:tanh() end, {torch.randn(3):requires_grad_()} end},
}
local byName = {}
for _, c in ipairs(callables) do byName[c.name] = c end
for _, sd in ipairs(seeds) do
  local name, make = sd[1], sd[2]
  assert(byName[name], "fuzzer seed for unknown callable " .. name)
  local args = table.pack(make())
  local ok, err = pcall(byName[name].fn, table.unpack(args, 1, args.n))
  if not ok then error("fuzzer seed " .. name .. " fails: " .. tostring(err)) end
  local g = good[name] or {}
  good[name] = g
  args.n = args.n
  g[#g + 1] = args
end

-- The loop.
local threads0 = torch.get_num_threads()
local started, calls, errors, results = sskd.clock(), 0, 0, 0
local slow, perCall = {}, {}
local out = last_call_file and io.open(last_call_file, "w")
while calls < max_calls and sskd.clock() - started < seconds do
  -- One pass over every callable first, then random picks.
  local c = calls < #callables and callables[calls + 1] or callables[R(#callables)]
  local args, nargs = {}, 0
  if good[c.name] and R(10) <= 7 then
    args, nargs = mutate(good[c.name][R(#good[c.name])])
  else
    local n = R(0, 5)
    if c.self then args[1] = (R(10) <= 8) and objectOf(c.self) or value() end
    for i = #args + 1, #args + n do args[i] = value() end
    nargs = c.self and math.max(n + 1, 1) or n
  end
  local text = c.name .. "(" .. table.concat((function() local d = {} for i = 1, nargs do d[i] = describe(args[i]) end return d end)(), ", ") .. ")"
  if out then out:seek("set"); out:write(("call %d seed %d: %s\n"):format(calls + 1, seed, text), ("\n"):rep(8)); out:flush() end
  local t0 = sskd.clock()
  local packed = table.pack(pcall(c.fn, table.unpack(args, 1, nargs)))
  local dt = sskd.clock() - t0
  calls = calls + 1
  perCall[c.name] = (perCall[c.name] or 0) + 1
  if packed[1] then
    results = results + 1
    remember(c.name, args, nargs)
    for i = 2, packed.n do add(packed[i]) end
  else
    errors = errors + 1
    if type(packed[2]) ~= "string" then error("call " .. calls .. " " .. text .. " raised a non-string error: " .. describe(packed[2])) end
  end
  if dt > 2 then slow[#slow + 1] = ("%.1f s  %s"):format(dt, text) end
  if calls % 200 == 0 then collectgarbage() end
  if calls % 5000 == 0 then torch.set_grad_enabled(true); torch.set_num_threads(threads0) end   -- undo global switches now and then
end
if out then out:close() end

local covered = 0
for _ in pairs(perCall) do covered = covered + 1 end
print(("fuzz lua: seed %d, %d calls in %.1f s (%d errors, %d results), %d of %d callables reached, host alive")
  :format(seed, calls, sskd.clock() - started, errors, results, covered, #callables))
for _, s in ipairs(slow) do print("slow call: " .. s) end
return calls, errors, results, covered, #callables
