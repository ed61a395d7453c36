// Batch normalisation over [N, C, H, W] (statistics per channel over N*H*W values).
//
// Shapes:
//   x, y, dx, dy   [N, C, HW]
//   mean, invstd   [C]   batch statistics (training) or running ones (eval); invstd = 1/sqrt(var + eps)
//   weight, bias   [C]   optional affine parameters (gamma = 1, beta = 0 when absent)
//   M = N * HW           values per channel
//
// Training:  y = (x - mean) * invstd * gamma + beta, with the biased batch variance;
//            running_mean = (1 - momentum) * running_mean + momentum * mean
//            running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased, as PyTorch)
// Backward (training), with xhat = (x - mean) * invstd:
//            dbeta = sum dy,  dgamma = sum dy * xhat
//            dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
// Eval is a per-channel affine map: dx = dy * gamma * invstd.
//
// Every kernel runs one channel per task and reads each channel's N planes in order: the
// statistics make one pass (sums shifted by the channel's first value, so the variance does not
// cancel), the output a second.

/// Per-channel batch mean and biased variance of x [N, C, HW].
func batchNormStats(mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                    n: Int, c: Int, hw: Int) {
    parallelFor(c, grain: grainFor(work: n * hw)) { chans in
        for ch in chans {
            let shift = x[ch * hw]
            let sv = SIMD8<Float>(repeating: shift)
            var s = 0.0, ss = 0.0
            for img in 0..<n {
                let row = x + (img * c + ch) * hw
                var a = SIMD8<Float>(), q = SIMD8<Float>()
                var i = 0
                while i + 8 <= hw {
                    let d = load8(row + i) - sv
                    a += d
                    q = q.addingProduct(d, d)
                    i += 8
                }
                var rs = hsum(a), rq = hsum(q)
                while i < hw { let d = Double(row[i] - shift); rs += d; rq += d * d; i += 1 }
                s += rs; ss += rq
            }
            let count = Double(n * hw)
            let m = s / count
            mean[ch] = Float(m + Double(shift))
            variance[ch] = Float(Swift.max(ss / count - m * m, 0))
        }
    }
}

/// y = x * scale[c] + shift[c] over x [N, C, HW].
func channelAffine(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                   n: Int, c: Int, hw: Int) {
    parallelFor(n * c, grain: grainFor(work: hw)) { planes in
        for p in planes {
            let ch = p % c
            let a = SIMD8<Float>(repeating: scale[ch]), b = SIMD8<Float>(repeating: shift[ch])
            let src = x + p * hw, dst = y + p * hw
            var i = 0
            while i + 8 <= hw { store8(b.addingProduct(load8(src + i), a), dst + i); i += 8 }
            while i < hw { dst[i] = src[i] * scale[ch] + shift[ch]; i += 1 }
        }
    }
}

/// Forward: normalises x with `mean` / `invstd` and the optional affine parameters.
func batchNormForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, mean: UnsafePointer<Float>, invstd: UnsafePointer<Float>,
                      weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, n: Int, c: Int, hw: Int) {
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
    defer { scale.deallocate() }
    let shift = scale + c
    for ch in 0..<c {
        let gamma = weight?[ch] ?? 1, beta = bias?[ch] ?? 0
        scale[ch] = invstd[ch] * gamma
        shift[ch] = beta - mean[ch] * scale[ch]
    }
    channelAffine(out, input, scale: scale, shift: shift, n: n, c: c, hw: hw)
}

/// Backward in training mode (batch statistics). `dweight`/`dbias` get sum(dy * xhat) / sum(dy);
/// `dinput` (if non-nil) the full gradient through the batch statistics.
func batchNormBackwardTraining(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                               dout: UnsafePointer<Float>, input: UnsafePointer<Float>, mean: UnsafePointer<Float>, invstd: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>?, n: Int, c: Int, hw: Int) {
    let count = Float(n * hw)
    parallelFor(c, grain: grainFor(work: 2 * n * hw)) { chans in
        for ch in chans {
            let mu = mean[ch], istd = invstd[ch]
            let mv = SIMD8<Float>(repeating: mu)
            // Pass 1: sum dy and sum dy * (x - mean).
            var sdy = 0.0, sdyx = 0.0
            for img in 0..<n {
                let xr = input + (img * c + ch) * hw, gr = dout + (img * c + ch) * hw
                var a = SIMD8<Float>(), b = SIMD8<Float>()
                var i = 0
                while i + 8 <= hw {
                    let gv = load8(gr + i)
                    a += gv
                    b = b.addingProduct(gv, load8(xr + i) - mv)
                    i += 8
                }
                var ra = hsum(a), rb = hsum(b)
                while i < hw { ra += Double(gr[i]); rb += Double(gr[i] * (xr[i] - mu)); i += 1 }
                sdy += ra; sdyx += rb
            }
            let sumDy = Float(sdy), sumDyXhat = Float(sdyx) * istd
            dbias?[ch] = sumDy
            dweight?[ch] = sumDyXhat
            guard let dinput else { continue }
            // Pass 2: dx = gamma*invstd * (dy - sumDy/M - (x - mean) * invstd * sumDyXhat/M)
            let gamma = weight?[ch] ?? 1
            let k = gamma * istd
            let c0 = -sumDy / count                    // constant term inside the bracket
            let c1 = -istd * sumDyXhat / count          // coefficient of (x - mean)
            let kv = SIMD8<Float>(repeating: k), c0v = SIMD8<Float>(repeating: c0), c1v = SIMD8<Float>(repeating: c1)
            for img in 0..<n {
                let off = (img * c + ch) * hw
                let xr = input + off, gr = dout + off, dr = dinput + off
                var i = 0
                while i + 8 <= hw {
                    let inner = (load8(gr + i) + c0v).addingProduct(load8(xr + i) - mv, c1v)
                    store8(inner * kv, dr + i)
                    i += 8
                }
                while i < hw { dr[i] = k * (gr[i] + c0 + (xr[i] - mu) * c1); i += 1 }
            }
        }
    }
}

/// Backward in eval mode (fixed statistics): a per-channel affine map.
func batchNormBackwardEval(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, input: UnsafePointer<Float>, mean: UnsafePointer<Float>, invstd: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>?, n: Int, c: Int, hw: Int) {
    if dweight != nil || dbias != nil {
        // Same sums as in training; only dx differs.
        batchNormBackwardTraining(dinput: nil, dweight: dweight, dbias: dbias, dout: dout, input: input, mean: mean, invstd: invstd,
                                  weight: weight, n: n, c: c, hw: hw)
    }
    guard let dinput else { return }
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
    defer { scale.deallocate() }
    let zero = scale + c
    for ch in 0..<c { scale[ch] = (weight?[ch] ?? 1) * invstd[ch]; zero[ch] = 0 }
    channelAffine(dinput, dout, scale: scale, shift: zero, n: n, c: c, hw: hw)
}
