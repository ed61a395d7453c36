-- model_variants.efficientnet_b0_small_input{classes = 10, in_channels = 3} -> Module
-- EfficientNet-B0 for small images (28x28, 32x32): the stem convolution has stride 1 instead of
-- 2, so a 28x28 input ends on a 2x2 map instead of 1x1 (about 4x the compute of plain B0 at that
-- size). State-dict keys stay torchvision's.
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3}, "model_variants.efficientnet_b0_small_input")
  local m = models.efficientnet_b0{classes = o.classes, in_channels = o.in_channels}
  m:set("features.0.0", nn.Conv2d(o.in_channels, 32, 3, {stride = 1, padding = 1, bias = false}))
  return m
end
