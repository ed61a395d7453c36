-- model_variants.small_cnn{classes = 10, in_channels = 3, width = 32, dropout = 0} -> Module
-- A small CNN for quick experiments: three conv-BN-ReLU stages (width, 2x, 4x channels; max-pool
-- after the first two), global average pooling and a linear classifier. Any input size >= 4x4.
return function(opts)
  local o = sskd.options(opts, {classes = 10, in_channels = 3, width = 32, dropout = 0}, "model_variants.small_cnn")
  local w = o.width
  local function stage(cin, cout, pool)
    local layers = {nn.Conv2d(cin, cout, 3, {padding = 1, bias = false}), nn.BatchNorm2d(cout), nn.ReLU()}
    if pool then layers[#layers + 1] = nn.MaxPool2d(2) end
    return nn.Sequential(layers)
  end
  local head = {nn.AdaptiveAvgPool2d(1), nn.Flatten()}
  if o.dropout > 0 then head[#head + 1] = nn.Dropout(o.dropout) end
  head[#head + 1] = nn.Linear(4 * w, o.classes)
  return nn.Sequential{
    stage(o.in_channels, w, true),
    stage(w, 2 * w, true),
    stage(2 * w, 4 * w, false),
    nn.Sequential(head),
  }
end
