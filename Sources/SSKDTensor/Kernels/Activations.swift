// Pointwise activations of MobileNetV2 (relu6) and EfficientNet-B0 (silu, sigmoid in squeeze-and-
// excitation), plus the hard variants of MobileNetV3. relu and sigmoid are in Elementwise.swift.
//
// Shapes: x, y, dy, dx are flat buffers of `count` floats.
//   relu6(x)       = min(max(x, 0), 6)            d/dx = 1 on 0 < x < 6 (PyTorch's hardtanh rule)
//   silu(x)        = x * sigmoid(x)               d/dx = s * (1 + x * (1 - s))
//   hardsigmoid(x) = relu6(x + 3) / 6             d/dx = 1/6 on -3 < x < 3
//   hardswish(x)   = x * relu6(x + 3) / 6         d/dx = 0 for x < -3, x/3 + 1/2 for x <= 3, 1 above

/// y = f(x) over `count` floats, 8 lanes at a time (the tail goes through a zero-filled vector).
@inline(__always) func mapForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                                  _ f: (SIMD8<Float>) -> SIMD8<Float>) {
    parallelFor(count) { r in
        var i = r.lowerBound
        while i + 8 <= r.upperBound { store8(f(load8(x + i)), y + i); i += 8 }
        if i < r.upperBound {
            var v = SIMD8<Float>()
            for l in 0..<(r.upperBound - i) { v[l] = x[i + l] }
            let o = f(v)
            for l in 0..<(r.upperBound - i) { y[i + l] = o[l] }
        }
    }
}

/// dx = f(dy, x) over `count` floats, 8 lanes at a time.
@inline(__always) func mapBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                                   _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) {
    parallelFor(count) { r in
        var i = r.lowerBound
        while i + 8 <= r.upperBound { store8(f(load8(dy + i), load8(x + i)), dx + i); i += 8 }
        if i < r.upperBound {
            var g = SIMD8<Float>(), v = SIMD8<Float>()
            for l in 0..<(r.upperBound - i) { g[l] = dy[i + l]; v[l] = x[i + l] }
            let o = f(g, v)
            for l in 0..<(r.upperBound - i) { dx[i + l] = o[l] }
        }
    }
}

/// e^x for 8 lanes (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n built in
/// the exponent bits); relative error about 2 ulp. Inputs are clamped to [-87.3, 88.3], where
/// e^x stays a normal float; NaN stays NaN.
@inline(__always) func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let x = v.replacing(with: -87.3, where: v .< -87.3).replacing(with: 88.3, where: v .> 88.3)
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
    let bits = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127
    let scale = unsafeBitCast(bits &<< 23, to: SIMD8<Float>.self)
    return (p * scale).replacing(with: v, where: v .!= v)
}

/// 1 / (1 + e^-x) for 8 lanes.
@inline(__always) func sigmoid8(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + exp8(-x)) }

func relu6Forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    // NaN passes through like PyTorch's hardtanh (comparisons with NaN are false).
    mapForward(y, x, count: count) { v in v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6) }
}

func relu6Backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in SIMD8<Float>().replacing(with: g, where: (v .> 0) .& (v .< 6)) }
}

func siluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in v * sigmoid8(v) }
}

func siluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in
        let s = sigmoid8(v)
        return g * s * (1 + v * (1 - s))
    }
}

func hardsigmoidForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in
        (v * (1.0 / 6.0) + 0.5).replacing(with: 0, where: v .<= -3).replacing(with: 1, where: v .>= 3)
    }
}

func hardsigmoidBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in SIMD8<Float>().replacing(with: g * (1.0 / 6.0), where: (v .> -3) .& (v .< 3)) }
}

func hardswishForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in
        (v * (v + 3) * (1.0 / 6.0)).replacing(with: 0, where: v .<= -3).replacing(with: v, where: v .>= 3)
    }
}

func hardswishBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in
        (g * (v * (1.0 / 3.0) + 0.5)).replacing(with: 0, where: v .< -3).replacing(with: g, where: v .> 3)
    }
}
