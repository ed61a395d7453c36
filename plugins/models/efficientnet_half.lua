-- model_variants.efficientnet_half{classes = 10, in_channels = 3} -> Module
-- EfficientNet-B0 at half width and half depth (~0.66 M parameters with 10 classes): a fast student.
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3, dropout = 0.2}, "model_variants.efficientnet_half")
  return models.efficientnet{width_mult = 0.5, depth_mult = 0.5, classes = o.classes, in_channels = o.in_channels, dropout = o.dropout}
end
