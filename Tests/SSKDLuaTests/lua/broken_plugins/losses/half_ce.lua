-- losses.half_ce(s, t, y, alpha, T) -> half the cross-entropy (a working user plugin)
return function(s, t, y) return F.cross_entropy(s, y) * 0.5 end
