-- model_variants.tiny{classes = 10} -> a table standing in for a model (a working user plugin)
return function(opts) return {classes = (opts or {}).classes or 10} end
