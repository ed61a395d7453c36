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
// Fused activation (training): out = act(y) is written instead of y, and the backward takes
// d(out); it recomputes y = x * scale + shift exactly as the forward did and forms
// dy = act'(y) * d(out) on the fly inside both of its passes. The results are bit for bit those of
// batch norm followed by the activation, with two full passes over the tensor (and the tensor y
// itself) saved.
//
// Tasks own runs of channels, one run per thread. Inside a task the planes are visited
// image-major (image 0's planes of the run, then image 1's, ...), i.e. in memory order: on small
// maps (6x6, 3x3) a channel-major walk would jump N times per channel between far-apart 36- or
// 144-byte planes, and every jump is a cache miss the prefetchers cannot see coming. The
// backward on larger planes does its two passes one channel at a time (the channel's planes stay
// in L2 for the second pass). Each channel still sums its N planes in image order, so results do
// not depend on the chunking (nor on the thread count).
// The statistics make one pass (sums shifted by the channel's first value, so the variance does
// not cancel), the output a second.

/// Planes above this size go through the backward's two passes one channel at a time, so that a
/// channel's planes are still in L2 for the second pass.
let batchNormChannelAtATime = 144

/// Lane partials of (sum d, sum d*d), d = x - shift, over one plane of `count` (>= 8) floats: two
/// chains each, and the ragged tail as the plane's last 8 floats with the counted lanes masked.
@inline(__always) func shiftedMoments(_ x: UnsafePointer<Float>, count: Int, shift: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), q0 = SIMD8<Float>(), q1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        let d0 = load8(x + i) - shift, d1 = load8(x + i + 8) - shift
        a0 += d0; q0 = q0.addingProduct(d0, d0)
        a1 += d1; q1 = q1.addingProduct(d1, d1)
        i += 16
    }
    if i + 8 <= count {
        let d = load8(x + i) - shift
        a0 += d; q0 = q0.addingProduct(d, d)
        i += 8
    }
    if i < count {
        let d = keepLast(load8(x + count - 8) - shift, count - i)
        a1 += d; q1 = q1.addingProduct(d, d)
    }
    return (a0 + a1, q0 + q1)
}

/// Per-channel batch mean and biased variance of x [N, C, HW].
/// Each plane's lane partials are widened to Double and summed over the N planes; one horizontal
/// sum per channel.
func batchNormStats(mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                    n: Int, c: Int, hw: Int) {
    parallelFor(c, grain: threadRunGrain(count: c, work: n * hw)) { chans in
        let lo = chans.lowerBound, cc = chans.count
        // [cc] running sums of d and d^2 (Double lanes), d = x - x[channel's first value].
        let acc = UnsafeMutablePointer<SIMD8<Double>>.allocate(capacity: 2 * cc)
        defer { acc.deallocate() }
        acc.initialize(repeating: SIMD8(), count: 2 * cc)
        for img in 0..<n {
            for j in 0..<cc {
                let ch = lo + j, shift = x[ch * hw], row = x + (img * c + ch) * hw
                if hw >= 8 {
                    let (a, q) = shiftedMoments(row, count: hw, shift: SIMD8(repeating: shift))
                    acc[j] += SIMD8<Double>(a); acc[cc + j] += SIMD8<Double>(q)
                } else {
                    for i in 0..<hw { let d = Double(row[i] - shift); acc[j][0] += d; acc[cc + j][0] += d * d }
                }
            }
        }
        let count = Double(n * hw)
        for j in 0..<cc {
            let ch = lo + j
            let m = acc[j].sum() / count
            mean[ch] = Float(m + Double(x[ch * hw]))
            variance[ch] = Float(Swift.max(acc[cc + j].sum() / count - m * m, 0))
        }
    }
}

/// The identity map: batch norm without a fused activation.
enum NoActivation: LaneMap, LaneGrad {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { v }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> { g }
}

/// y = x * scale[c] + shift[c] over x [N, C, HW]; `F(y)` is stored when an activation is fused.
/// When x and y cannot stay in the cache together, y is written around it (`streamsPastCache`;
/// planes of a multiple of 8 floats keep every store aligned).
func channelAffine<F: LaneMap>(_: F.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                               scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, n: Int, c: Int, hw: Int) {
    if hw % 8 == 0 && streamsPastCache(y, bytesTouched: 8 * n * c * hw) {
        channelAffine(F.self, StreamingStore.self, y, x, scale: scale, shift: shift, n: n, c: c, hw: hw)
    } else {
        channelAffine(F.self, CachedStore.self, y, x, scale: scale, shift: shift, n: n, c: c, hw: hw)
    }
}

@inline(__always) func channelAffine<F: LaneMap, S: LaneStore>(_: F.Type, _: S.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                                             scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, n: Int, c: Int, hw: Int) {
    parallelFor(n * c, grain: threadRunGrain(count: n * c, work: hw)) { planes in
        for p in planes {
            let ch = p % c
            let a = SIMD8<Float>(repeating: scale[ch]), b = SIMD8<Float>(repeating: shift[ch])
            let src = x + p * hw, dst = y + p * hw
            guard hw >= 8 else {
                for i in 0..<hw { dst[i] = F.apply(SIMD8(repeating: src[i] * scale[ch] + shift[ch]))[0] }
                continue
            }
            var i = 0
            while i + 8 <= hw { S.store(F.apply(b.addingProduct(load8(src + i), a)), dst + i); i += 8 }
            // Ragged tail: redo the plane's last 8 values (the overlap gets the same results).
            if i < hw { store8(F.apply(b.addingProduct(load8(src + hw - 8), a)), dst + hw - 8) }
        }
        S.finish()
    }
}

/// Per-channel (scale, shift) of the normalisation: y = x * scale + shift.
func batchNormScaleShift(_ scale: UnsafeMutablePointer<Float>, _ shift: UnsafeMutablePointer<Float>, mean: UnsafePointer<Float>,
                         invstd: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, c: Int) {
    for ch in 0..<c {
        let gamma = weight?[ch] ?? 1, beta = bias?[ch] ?? 0
        scale[ch] = invstd[ch] * gamma
        shift[ch] = beta - mean[ch] * scale[ch]
    }
}

/// Forward: normalises x with `mean` / `invstd` and the optional affine parameters, then applies
/// the fused activation `F` (`NoActivation` for plain batch norm).
func batchNormForward<F: LaneMap>(_: F.Type = NoActivation.self, out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, invstd: UnsafePointer<Float>,
                                  weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, n: Int, c: Int, hw: Int) {
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
    defer { scale.deallocate() }
    let shift = scale + c
    batchNormScaleShift(scale, shift, mean: mean, invstd: invstd, weight: weight, bias: bias, c: c)
    channelAffine(F.self, out, input, scale: scale, shift: shift, n: n, c: c, hw: hw)
}

/// Backward in training mode (batch statistics). `dweight`/`dbias` get sum(dy * xhat) / sum(dy);
/// `dinput` (if non-nil) the full gradient through the batch statistics. With a fused activation
/// `G`, `dout` is the gradient of act(y) and dy = G(dout, y) is formed on the fly (y recomputed
/// from x with the forward's own scale and shift, which need `bias`).
func batchNormBackwardTraining<G: LaneGrad>(_: G.Type = NoActivation.self, dinput: UnsafeMutablePointer<Float>?,
                                            dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                                            dout: UnsafePointer<Float>, input: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                            invstd: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>? = nil,
                                            n: Int, c: Int, hw: Int) {
    let count = Float(n * hw)
    let fused = G.self != NoActivation.self
    // A costly gradient (silu: an exp and a division) is kept in `dinput` (as scratch) by pass 1
    // for pass 2 instead of computed twice; relu / relu6 recompute theirs (a compare).
    let keep: UnsafeMutablePointer<Float>? = G.isCostly ? dinput : nil
    let affine = UnsafeMutablePointer<Float>.allocate(capacity: fused ? 2 * c : 0)
    defer { affine.deallocate() }
    if fused { batchNormScaleShift(affine, affine + c, mean: mean, invstd: invstd, weight: weight, bias: bias, c: c) }
    // dx goes around the cache when x, dy and dx cannot stay in it together (`streamsPastCache`),
    // unless pass 1 kept dy in it: those lines are in the cache already, and streaming over them
    // made EfficientNet-B0's training step (silu) slower at 1 thread in 5 of 7 A/B pairs.
    let stream = keep == nil && hw % 8 == 0 && dinput.map { streamsPastCache($0, bytesTouched: 12 * n * c * hw) } ?? false
    // One run of channels per thread; on planes above `batchNormChannelAtATime` the run goes one
    // channel at a time (both passes), so that the channel's planes are still in L2 for pass 2.
    @inline(__always) func backwardChannels(_ chans: Range<Int>) {
        let lo = chans.lowerBound, cc = chans.count
        // Pass 1: per channel, sum dy and sum dy * (x - mean) (Double lanes, planes in image order).
        let acc = UnsafeMutablePointer<SIMD8<Double>>.allocate(capacity: 2 * cc)
        let coef = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 4 * cc)   // mean, k, c0, c1 per channel
        defer { acc.deallocate(); coef.deallocate() }
        acc.initialize(repeating: SIMD8(), count: 2 * cc)
        for img in 0..<n {
            for j in 0..<cc {
                let ch = lo + j, off = (img * c + ch) * hw, mu = mean[ch]
                let sc = fused ? affine[ch] : 0, sh = fused ? affine[c + ch] : 0
                if hw >= 8 {
                    let (a, b) = gradMoments(G.self, dout + off, input + off, count: hw, mean: SIMD8(repeating: mu),
                                             scale: SIMD8(repeating: sc), shift: SIMD8(repeating: sh), keep: keep.map { $0 + off })
                    acc[j] += SIMD8<Double>(a); acc[cc + j] += SIMD8<Double>(b)
                } else {
                    for i in 0..<hw {
                        let g = fusedGrad(G.self, dout[off + i], input[off + i], sc, sh)
                        keep?[off + i] = g
                        acc[j][0] += Double(g); acc[cc + j][0] += Double(g * (input[off + i] - mu))
                    }
                }
            }
        }
        for j in 0..<cc {
            let ch = lo + j, istd = invstd[ch]
            let sumDy = Float(acc[j].sum()), sumDyXhat = Float(acc[cc + j].sum()) * istd
            dbias?[ch] = sumDy
            dweight?[ch] = sumDyXhat
            // dx = gamma*invstd * (dy - sumDy/M - (x - mean) * invstd * sumDyXhat/M) = k * (dy + c0 + (x - mean) * c1)
            let gamma = weight?[ch] ?? 1
            coef[4 * j] = SIMD8(repeating: mean[ch])
            coef[4 * j + 1] = SIMD8(repeating: gamma * istd)
            coef[4 * j + 2] = SIMD8(repeating: -sumDy / count)
            coef[4 * j + 3] = SIMD8(repeating: -istd * sumDyXhat / count)
        }
        guard let dinput else { return }
        // Pass 2, again image-major.
        for img in 0..<n {
            for j in 0..<cc {
                let ch = lo + j, off = (img * c + ch) * hw
                let xr = input + off, gr = dout + off, dr = dinput + off
                let mv = coef[4 * j], kv = coef[4 * j + 1], c0v = coef[4 * j + 2], c1v = coef[4 * j + 3]
                let sc = fused ? affine[ch] : 0, sh = fused ? affine[c + ch] : 0
                let kept = keep != nil
                guard hw >= 8 else {
                    for i in 0..<hw {
                        let g = kept ? dr[i] : fusedGrad(G.self, gr[i], xr[i], sc, sh)
                        dr[i] = kv[0] * (g + c0v[0] + (xr[i] - mv[0]) * c1v[0])
                    }
                    continue
                }
                let scv = SIMD8<Float>(repeating: sc), shv = SIMD8<Float>(repeating: sh)
                @inline(__always) func grad(_ i: Int) -> SIMD8<Float> {
                    if kept { return load8(dr + i) }
                    let x = load8(xr + i)
                    return G.apply(load8(gr + i), shv.addingProduct(x, scv))
                }
                // The ragged tail redoes the plane's last 8 values (same results on the overlap);
                // its kept dy is read before the main loop overwrites part of it.
                let t = hw - 8, tailGrad = hw % 8 != 0 ? grad(t) : SIMD8<Float>()
                @inline(__always) func dx(_ g: SIMD8<Float>, _ i: Int) -> SIMD8<Float> { ((g + c0v).addingProduct(load8(xr + i) - mv, c1v)) * kv }
                var i = 0
                if stream {
                    while i + 8 <= hw { StreamingStore.store(dx(grad(i), i), dr + i); i += 8 }
                } else {
                    while i + 8 <= hw { store8(dx(grad(i), i), dr + i); i += 8 }
                }
                if i < hw { store8(dx(tailGrad, t), dr + t) }
            }
        }
    }
    parallelFor(c, grain: threadRunGrain(count: c, work: 2 * n * hw)) { run in
        if hw > batchNormChannelAtATime { for ch in run { backwardChannels(ch..<(ch + 1)) } } else { backwardChannels(run) }
        if stream { StreamingStore.finish() }
    }
}

/// dy of one value under a fused activation: G(dout, x * scale + shift), computed the way the
/// forward's scalar path computed y (for planes under 8 values).
@inline(__always) func fusedGrad<G: LaneGrad>(_: G.Type, _ dout: Float, _ x: Float, _ scale: Float, _ shift: Float) -> Float {
    G.self == NoActivation.self ? dout : G.apply(SIMD8(repeating: dout), SIMD8(repeating: x * scale + shift))[0]
}

/// Lane partials of (sum g, sum g * (x - mean)) over one plane of `count` (>= 8) floats (tails as
/// in `shiftedMoments`), with g = G(dout, x * scale + shift).
@inline(__always) func gradMoments<G: LaneGrad>(_: G.Type, _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                                                mean: SIMD8<Float>, scale: SIMD8<Float>, shift: SIMD8<Float>,
                                                keep: UnsafeMutablePointer<Float>? = nil) -> (SIMD8<Float>, SIMD8<Float>) {
    // g is also stored at `keep` when given.
    @inline(__always) func grad(_ i: Int, _ xv: SIMD8<Float>) -> SIMD8<Float> {
        let g = G.apply(load8(dout + i), shift.addingProduct(xv, scale))
        if let keep { store8(g, keep + i) }
        return g
    }
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        let x0 = load8(x + i), x1 = load8(x + i + 8)
        let g0 = grad(i, x0), g1 = grad(i + 8, x1)
        a0 += g0; b0 = b0.addingProduct(g0, x0 - mean)
        a1 += g1; b1 = b1.addingProduct(g1, x1 - mean)
        i += 16
    }
    if i + 8 <= count {
        let x0 = load8(x + i)
        let g0 = grad(i, x0)
        a0 += g0; b0 = b0.addingProduct(g0, x0 - mean)
        i += 8
    }
    if i < count {
        let xt = load8(x + count - 8)
        let gt = keepLast(grad(count - 8, xt), count - i)
        a1 += gt; b1 = b1.addingProduct(gt, xt - mean)
    }
    return (a0 + a1, b0 + b1)
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
    channelAffine(NoActivation.self, dinput, dout, scale: scale, shift: zero, n: n, c: c, hw: hw)
}
