-- model_variants.mobilenet_v2_140{classes = 10, in_channels = 3, dropout = 0.2} -> Module
-- MobileNetV2 at width multiplier 1.4 (torchvision's rounding of channels to multiples of 8).
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3, dropout = 0.2}, "model_variants.mobilenet_v2_140")
  return models.mobilenet_v2{width_mult = 1.4, classes = o.classes, in_channels = o.in_channels, dropout = o.dropout}
end
