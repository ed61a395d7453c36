-- model_variants.mobilenet_v2_050{classes = 10, in_channels = 3, dropout = 0.2} -> Module
-- MobileNetV2 at width multiplier 0.5 (torchvision's rounding of channels to multiples of 8).
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3, dropout = 0.2}, "model_variants.mobilenet_v2_050")
  return models.mobilenet_v2{width_mult = 0.5, classes = o.classes, in_channels = o.in_channels, dropout = o.dropout}
end
