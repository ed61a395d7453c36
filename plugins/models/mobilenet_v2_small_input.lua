-- model_variants.mobilenet_v2_small_input{classes = 10, in_channels = 3, dropout = 0.2, strides = 1} -> Module
-- MobileNetV2 for small images (28x28, 32x32), the CIFAR-style change: the stem convolution has
-- stride 1 instead of 2, and with strides = 2 also the first stride-2 block (features.2, 16 -> 24
-- channels) keeps the resolution. torchvision's MobileNetV2 takes a 28x28 input down to 1x1 by
-- its last stage; this one ends on 2x2 (strides = 1) or 4x4 (strides = 2), at about 4x or 16x
-- the compute. The replaced convolutions get torchvision's initialisation (kaiming normal, fan
-- out); state-dict keys stay torchvision's, so ImageNet weights still load (every shape is equal).
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3, dropout = 0.2, strides = 1}, "model_variants.mobilenet_v2_small_input")
  if o.strides ~= 1 and o.strides ~= 2 then
    error(("bad option 'strides' to 'model_variants.mobilenet_v2_small_input' (1 or 2 expected, got %s)"):format(tostring(o.strides)), 2)
  end
  local m = models.mobilenet_v2{classes = o.classes, in_channels = o.in_channels, dropout = o.dropout}
  local function conv(cin, cout, groups)
    local c = nn.Conv2d(cin, cout, 3, {stride = 1, padding = 1, groups = groups, bias = false})
    -- torchvision: kaiming_normal_(mode="fan_out") for every convolution; PyTorch's fan out of a
    -- [cout, cin/groups, 3, 3] weight is cout * 9 whatever the groups.
    local fan_out = cout * 9
    torch.no_grad(function() c.weight:copy_(torch.randn(c.weight.shape) * math.sqrt(2 / fan_out)) end)
    return c
  end
  m:set("features.0.0", conv(o.in_channels, 32, 1))
  if o.strides == 2 then m:set("features.2.conv.1.0", conv(96, 96, 96)) end
  return m
end
