-- model_variants.efficientnet_scaled{phi = -1, classes = 10, in_channels = 3, dropout = 0.2} -> Module
-- EfficientNet compound scaling beyond B0: depth x 1.2^phi, width x 1.1^phi (the paper's
-- alpha, beta). phi = 0 is B0; negative phi gives smaller students (phi = -2: ~0.69 depth, 0.83 width).
return function(opts)
  local o = sskd.options(opts, {phi = -1, classes = 10, in_channels = 3, dropout = 0.2, stochastic_depth_prob = 0.2},
                         "model_variants.efficientnet_scaled")
  return models.efficientnet{
    width_mult = 1.1 ^ o.phi, depth_mult = 1.2 ^ o.phi, classes = o.classes, in_channels = o.in_channels,
    dropout = o.dropout, stochastic_depth_prob = o.stochastic_depth_prob,
  }
end
