// Pointwise activations of MobileNetV2 (relu6) and EfficientNet-B0 (silu, sigmoid in squeeze-and-
// excitation), plus the hard variants of MobileNetV3. relu and sigmoid are in Elementwise.swift.
//
// Shapes: x, y, dy, dx are flat buffers of `count` floats.
//   relu6(x)       = min(max(x, 0), 6)            d/dx = 1 on 0 < x < 6 (PyTorch's hardtanh rule)
//   silu(x)        = x * sigmoid(x)               d/dx = s * (1 + x * (1 - s))
//   hardsigmoid(x) = relu6(x + 3) / 6             d/dx = 1/6 on -3 < x < 3
//   hardswish(x)   = x * relu6(x + 3) / 6         d/dx = 0 for x < -3, x/3 + 1/2 for x <= 3, 1 above

/// An elementwise map on 8 lanes. Kernels take the map as a type, so every call site gets a
/// specialised loop with the map inlined (a closure would cost an indirect call per vector).
protocol LaneMap { static func apply(_ x: SIMD8<Float>) -> SIMD8<Float> }
/// An elementwise gradient on 8 lanes: dx = apply(dy, x).
protocol LaneGrad {
    static func apply(_ dy: SIMD8<Float>, _ x: SIMD8<Float>) -> SIMD8<Float>
    /// Whether `apply` costs enough (an exp, a division) that a kernel needing it twice per value
    /// should store it once instead (batch norm's fused backward).
    static var isCostly: Bool { get }
}

extension LaneGrad {
    static var isCostly: Bool { false }
}

/// y = F(x) over `count` floats, 8 lanes at a time (the tail goes through a zero-filled vector).
/// When x and y cannot stay in the cache together, y is written around it (`streamsPastCache`).
@inline(__always) func mapForward<F: LaneMap>(_: F.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    // In place, x and y are one stream.
    if streamsPastCache(y, bytesTouched: (UnsafePointer(y) == x ? 4 : 8) * count) {
        mapForward(F.self, StreamingStore.self, y, x, count: count)
    } else {
        mapForward(F.self, CachedStore.self, y, x, count: count)
    }
}

@inline(__always) func mapForward<F: LaneMap, S: LaneStore>(_: F.Type, _: S.Type, _ y: UnsafeMutablePointer<Float>,
                                                          _ x: UnsafePointer<Float>, count: Int) {
    parallelStream(count) { r in
        // The run's two halves go side by side (`splitRun`), then the rest of the second half.
        let (a, b, half) = splitRun(r, S.self)
        var i = 0
        while i < half {
            S.store(F.apply(load8(x + a + i)), y + a + i); S.store(F.apply(load8(x + a + i + 8)), y + a + i + 8)
            S.store(F.apply(load8(x + b + i)), y + b + i); S.store(F.apply(load8(x + b + i + 8)), y + b + i + 8)
            i += 16
        }
        i = b + half
        while i + 32 <= r.upperBound {
            S.store(F.apply(load8(x + i)), y + i); S.store(F.apply(load8(x + i + 8)), y + i + 8)
            S.store(F.apply(load8(x + i + 16)), y + i + 16); S.store(F.apply(load8(x + i + 24)), y + i + 24)
            i += 32
        }
        while i + 8 <= r.upperBound { store8(F.apply(load8(x + i)), y + i); i += 8 }
        if i < r.upperBound {
            var v = SIMD8<Float>()
            for l in 0..<(r.upperBound - i) { v[l] = x[i + l] }
            let o = F.apply(v)
            for l in 0..<(r.upperBound - i) { y[i + l] = o[l] }
        }
        S.finish()
    }
}

/// dx = F(dy, x) over `count` floats, 8 lanes at a time; dx goes around the cache like
/// `mapForward`'s y.
@inline(__always) func mapBackward<F: LaneGrad>(_: F.Type, _ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                               _ x: UnsafePointer<Float>, count: Int) {
    if streamsPastCache(dx, bytesTouched: 12 * count) {
        mapBackward(F.self, StreamingStore.self, dx, dy, x, count: count)
    } else {
        mapBackward(F.self, CachedStore.self, dx, dy, x, count: count)
    }
}

@inline(__always) func mapBackward<F: LaneGrad, S: LaneStore>(_: F.Type, _: S.Type, _ dx: UnsafeMutablePointer<Float>,
                                                            _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    parallelStream(count) { r in
        // In order, unlike mapForward: with dy and x read, dx written, this is already three
        // streams, and walking two halves side by side gained nothing for relu6 (paired A/B over
        // 7 rounds: 0.99-1.03x) and cost silu's backward 6-8 % on 32x672x6x6.
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
            S.store(F.apply(load8(dy + i), load8(x + i)), dx + i); S.store(F.apply(load8(dy + i + 8), load8(x + i + 8)), dx + i + 8)
            i += 16
        }
        while i + 8 <= r.upperBound { store8(F.apply(load8(dy + i), load8(x + i)), dx + i); i += 8 }
        if i < r.upperBound {
            var g = SIMD8<Float>(), v = SIMD8<Float>()
            for l in 0..<(r.upperBound - i) { g[l] = dy[i + l]; v[l] = x[i + l] }
            let o = F.apply(g, v)
            for l in 0..<(r.upperBound - i) { dx[i + l] = o[l] }
        }
        S.finish()
    }
}

/// e^x for 8 lanes (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n built in
/// the exponent bits as 2^(n/2) * 2^(n - n/2) so results down in the denormal range stay exact to
/// the last denormal bit); relative error about 1 ulp. Overflows to +inf above 88.72, underflows to
/// 0 below -103.9; NaN stays NaN.
@inline(__always) func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let x = v.replacing(with: -104, where: v .< -104).replacing(with: 89, where: v .> 89)
    // Round x / ln2 to the nearest integer with the 1.5 * 2^23 trick: its low bits hold n.
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let t = magic.addingProduct(x, SIMD8(repeating: 1.442_695_04))
    let n = t - magic
    var r = x.addingProduct(n, SIMD8(repeating: -0.693_359_375))
    r = r.addingProduct(n, SIMD8(repeating: 2.121_944_4e-4))
    var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = (p * r * r + r) + 1
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
    return ((p * s1) * s2).replacing(with: v, where: v .!= v)
}

/// e^x for 8 lanes of x <= 0 (or NaN): `exp8` without the overflow clamp and the NaN select
/// (a NaN flows through the polynomial on its own). Same accuracy, fewer instructions.
@inline(__always) func expNonPositive8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let x = v.replacing(with: -104, where: v .< -104)
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let t = magic.addingProduct(x, SIMD8(repeating: 1.442_695_04))
    let n = t - magic
    var r = x.addingProduct(n, SIMD8(repeating: -0.693_359_375))
    r = r.addingProduct(n, SIMD8(repeating: 2.121_944_4e-4))
    // The polynomial in fused multiply-adds (Swift does not contract a * b + c on its own).
    var p = SIMD8<Float>(repeating: 1.398_199_950_7e-3).addingProduct(SIMD8(repeating: 1.987_569_15e-4), r)
    p = SIMD8(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = SIMD8(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = SIMD8(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = SIMD8(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    p = r.addingProduct(p, r * r) + 1
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
    return (p * s1) * s2
}

/// The pieces of a sigmoid shared by silu's forward and backward, from ONE exp and ONE division:
/// e = e^-|x|, r = 1 / (1 + e); then sigmoid(x) = r for x >= 0 and e*r for x < 0, and
/// 1 - sigmoid(x) = e*r for x >= 0 and r for x < 0 (each without cancellation).
@inline(__always) func sigmoidParts8(_ x: SIMD8<Float>) -> (s: SIMD8<Float>, oneMinusS: SIMD8<Float>) {
    // -|x| by setting the sign bit.
    let negAbs = unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) | 0x8000_0000, to: SIMD8<Float>.self)
    let e = expNonPositive8(negAbs)
    let r = 1 / (1 + e), er = e * r
    let negative = x .< 0
    return (r.replacing(with: er, where: negative), er.replacing(with: r, where: negative))
}

/// 1 / (1 + e^-x) for 8 lanes (tiny values for very negative x stay exact).
@inline(__always) func sigmoid8(_ x: SIMD8<Float>) -> SIMD8<Float> { sigmoidParts8(x).s }

/// relu as `Tensor.relu` computes it (NaN -> 0; the gradient passes where x > 0), for fusion.
enum Relu: LaneMap, LaneGrad {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8<Float>().replacing(with: v, where: v .> 0)
    }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8<Float>().replacing(with: g, where: v .> 0)
    }
}

enum Relu6: LaneMap, LaneGrad {
    // NaN passes through like PyTorch's hardtanh (comparisons with NaN are false).
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> {
        v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6)
    }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8<Float>().replacing(with: g, where: (v .> 0) .& (v .< 6))
    }
}

enum Silu: LaneMap, LaneGrad {
    static var isCostly: Bool { true }
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { v * sigmoid8(v) }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        let (s, oneMinusS) = sigmoidParts8(v)
        return g * s * SIMD8(repeating: 1).addingProduct(v, oneMinusS)
    }
}

enum Sigmoid: LaneMap {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { sigmoid8(v) }
}

enum Hardsigmoid: LaneMap, LaneGrad {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> {
        (v * (1.0 / 6.0) + 0.5).replacing(with: 0, where: v .<= -3).replacing(with: 1, where: v .>= 3)
    }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8<Float>().replacing(with: g * (1.0 / 6.0), where: (v .> -3) .& (v .< 3))
    }
}

enum Hardswish: LaneMap, LaneGrad {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> {
        (v * (v + 3) * (1.0 / 6.0)).replacing(with: 0, where: v .<= -3).replacing(with: v, where: v .>= 3)
    }
    @inline(__always) static func apply(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        (g * (v * (1.0 / 3.0) + 0.5)).replacing(with: 0, where: v .< -3).replacing(with: g, where: v .> 3)
    }
}

func relu6Forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) { mapForward(Relu6.self, y, x, count: count) }
func relu6Backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(Relu6.self, dx, dy, x, count: count)
}
func siluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) { mapForward(Silu.self, y, x, count: count) }
func siluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(Silu.self, dx, dy, x, count: count)
}
func sigmoidForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) { mapForward(Sigmoid.self, y, x, count: count) }
func hardsigmoidForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(Hardsigmoid.self, y, x, count: count)
}
func hardsigmoidBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(Hardsigmoid.self, dx, dy, x, count: count)
}
func hardswishForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(Hardswish.self, y, x, count: count)
}
func hardswishBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(Hardswish.self, dx, dy, x, count: count)
}
