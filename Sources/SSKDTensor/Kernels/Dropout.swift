// Dropout and stochastic depth (regularisers that zero activations at random in training).
//
// Shapes:
//   dropout:          x, y, scale [count]; scale[i] = 0 (dropped, probability p) or 1/(1-p)
//   stochastic depth: x, y [N, R] (R = product of the non-batch dims); rowScale [N] (mode row)
//                     or one value (mode batch), each 0 or 1/(1-p) (no scaling when 1-p == 0,
//                     as torchvision)
// Masks are drawn sequentially from the caller's Generator, one uniform per element (dropout) or
// per sample (row mode), so the same seed gives the same mask at any thread count.

/// Draws the dropout scale mask: 0 with probability `p`, else 1/(1-p).
func dropoutMask(_ scale: UnsafeMutablePointer<Float>, count: Int, p: Float, generator: Generator) {
    let keep: Float = p < 1 ? 1 / (1 - p) : 0
    for i in 0..<count { scale[i] = generator.nextFloat() < p ? 0 : keep }
}

/// y = x * scale (also the backward: dx = dy * scale).
func maskedScale(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, count: Int) {
    parallelStream(count) { r in
        var i = r.lowerBound
        while i + 8 <= r.upperBound { store8(load8(x + i) * load8(scale + i), y + i); i += 8 }
        while i < r.upperBound { y[i] = x[i] * scale[i]; i += 1 }
    }
}

/// y[n, :] = x[n, :] * rowScale[n] for x [N, R] (also the backward).
func rowScale(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, rows: Int, cols: Int) {
    parallelFor(rows, grain: grainFor(work: cols)) { rs in
        for r in rs {
            let s = scale[r], src = x + r * cols, dst = y + r * cols
            let sv = SIMD8<Float>(repeating: s)
            var i = 0
            while i + 32 <= cols {
                store8(load8(src + i) * sv, dst + i); store8(load8(src + i + 8) * sv, dst + i + 8)
                store8(load8(src + i + 16) * sv, dst + i + 16); store8(load8(src + i + 24) * sv, dst + i + 24)
                i += 32
            }
            while i + 8 <= cols { store8(load8(src + i) * sv, dst + i); i += 8 }
            while i < cols { dst[i] = src[i] * s; i += 1 }
        }
    }
}
