-- Inputs that once killed the host (issue 19) and their relatives: each is a Lua error naming the
-- op and the argument, and the next call works. A regression here aborts the whole test process,
-- which XCTest reports as a crash of this test.
local T = require("testlib")

--- fn() must fail with every fragment in its message, and the host must go on.
local function refused(fn, ...)
  local frags = {...}
  local ok, err = pcall(fn)
  if ok then error("expected an error, but the call succeeded", 2) end
  err = tostring(err)
  for _, f in ipairs(frags) do
    if not err:find(f, 1, true) then error(("expected '%s' in: %s"):format(f, err), 2) end
  end
  -- The host goes on: an ordinary call right after works.
  T.eq(torch.ones(2, 2):sum():item(), 4)
  return err
end

T.test("conv2d with an output size that overflows (padding 1e9)", function()
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), nil, {padding = 1e9}) end, "conv2d")
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), nil, {padding = math.maxinteger}) end,
          "conv2d", "padding must be at most 2147483647")
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), nil, {stride = math.maxinteger}) end, "stride")
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), nil, {dilation = 2^40}) end, "dilation")
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), nil, {padding = math.mininteger}) end, "padding must be >= 0")
  -- A big kernel on a big padded map: the im2col buffer (3*300*300 x 1301*1301 floats) is refused.
  refused(function() return F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 300, 300), nil, {padding = 800}) end, "conv2d")
  -- Depthwise: a padding whose padded planes (per-thread scratch) exceed the machine.
  refused(function() return F.conv2d(torch.randn(1, 2, 1, 1), torch.randn(2, 1, 1, 1), nil, {padding = 1e6, groups = 2}) end, "conv2d")
end)

T.test("transforms.resize to a size the machine cannot hold", function()
  refused(function() return transforms.resize(100000):apply(torch.rand(1, 8, 8)) end, "resize", "more than this machine's memory")
  refused(function() return transforms.resize({1, 2^31 - 1}):apply(torch.rand(1, 8, 8)) end, "resize")
  refused(function() return transforms.resize(2^31) end, "Resize", "size must be in 1...2147483647")
  refused(function() return transforms.resize(0) end, "Resize", "size must be in")
  -- A wide image whose smaller edge goes to a big size: the longer edge overflows the bound.
  refused(function() return transforms.resize(2^30):apply(torch.rand(1, 1, 8)) end, "resize")
end)

T.test("adaptive_avg_pool2d to 2^31", function()
  refused(function() return F.adaptive_avg_pool2d(torch.randn(1, 3, 8, 8), 2^31) end, "adaptive_avg_pool2d", "output size must be at most 2147483647")
  refused(function() return F.adaptive_avg_pool2d(torch.randn(1, 3, 8, 8), 2^31 - 1) end, "adaptive_avg_pool2d")
  refused(function() return F.adaptive_avg_pool2d(torch.randn(1, 3, 8, 8), 0) end, "output size must be >= 1")
end)

T.test("center_crop(2^31) and friends", function()
  refused(function() return transforms.center_crop(2^31):apply(torch.rand(1, 8, 8)) end, "CenterCrop", "must be in 1...2147483647")
  refused(function() return transforms.center_crop(-1) end, "CenterCrop")
  refused(function() return transforms.center_crop(2^31 - 1):apply(torch.rand(1, 8, 8)) end, "crop")
  T.shape(transforms.center_crop(4):apply(torch.rand(1, 8, 8)), {1, 4, 4})
end)

T.test("random_crop(-5) is refused when made, not accepted", function()
  refused(function() return transforms.random_crop(-5) end, "RandomCrop", "height must be in 1...")
  refused(function() return transforms.random_crop(4, {padding = -1}) end, "RandomCrop", "padding")
  refused(function() return transforms.random_crop(4, {padding = 2^40}) end, "RandomCrop", "padding")
  refused(function() return transforms.random_crop(4, {fill = 0/0}) end, "fill must be finite")
  T.shape(transforms.random_crop(4, {padding = 1}):apply(torch.rand(1, 8, 8)), {1, 4, 4})
end)

T.test("rotate with a non-finite angle", function()
  refused(function() return transforms.rotate(1/0) end, "RandomRotation", "finite")
  refused(function() return transforms.rotate(0/0) end, "RandomRotation", "finite")
end)

T.test("pooling, linear and shape ops with huge sizes", function()
  local x = torch.randn(1, 3, 8, 8)
  refused(function() return F.max_pool2d(x, 2^31) end, "max_pool2d", "kernel size must be at most")
  refused(function() return F.max_pool2d(x, 2, {stride = math.maxinteger}) end, "max_pool2d", "stride")
  refused(function() return F.avg_pool2d(x, 2, {padding = 2^40}) end, "avg_pool2d", "padding")
  refused(function() return torch.zeros(2^40, 2^40) end, "zeros")
  refused(function() return torch.zeros(0, 2^62) end, "zeros", "dimension")
  refused(function() return torch.zeros(math.maxinteger) end, "zeros")
  refused(function() return torch.randn(2^20, 2^20, 8) end, "randn")
  refused(function() return x:reshape(2^62, -1) end, "reshape")
  refused(function() return x:expand(2^40, 3, 8, 8) end, "expand")
  refused(function() return torch.arange(0, 2^60) end, "arange")
end)

T.test("model construction above the memory limit", function()
  refused(function() return models.mobilenet_v2{classes = 1e9} end, "classes")
  refused(function() return models.mobilenet_v2{width_mult = 1e300} end, "width multiplier")
  refused(function() return models.mobilenet_v2{width_mult = 0/0} end, "width multiplier")
  refused(function() return models.efficientnet{depth_mult = 1/0} end, "multipliers")
  refused(function() return nn.Linear(2^20, 2^30) end, "Linear")
  refused(function() return nn.Conv2d(2^16, 2^16, 2^10) end, "Conv2d")
end)

-- Found by `sskd fuzz lua` (seed, call number).
T.test("fuzzer finds: random constructors with huge sizes", function()
  -- seed 7, call 671: the Int permutation was built before the size was checked.
  refused(function() return torch.randperm(2^32) end, "randperm")
  refused(function() return torch.randint(math.mininteger, math.maxinteger, {2}) end, "high - low")
  T.shape(torch.randint(-2^40, 2^40, {3}), {3})
  -- seed 11, call 1605 (once torch.save, dist and export_onnx joined the API): n - correction overflowed.
  refused(function() return torch.ones(2, 3):std(1, {keepdim = true, correction = math.mininteger}) end, "correction")
  refused(function() return torch.ones(2, 3):var(1, {correction = -1}) end, "correction")
end)

T.test("a plot whose values span more than a double", function()
  local dir = os.tmpname(); os.remove(dir)
  plot.save{path = dir .. ".png", title = "huge", series = {{name = "x", values = {1e308, -1e308, 0/0, 1/0, 3}}}}
  local f = io.open(dir .. ".png", "rb"); T.check(f ~= nil, "plot written"); f:close(); os.remove(dir .. ".png")
end)

return T.report()
