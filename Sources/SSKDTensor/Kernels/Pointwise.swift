// Direct 1x1 convolution on NCHW images: a register-blocked product that reads each image where
// it lies, with no packing of the input and no unpacking of the output.
//
// Shapes (one image):
//   a [M, K]    row-major, row stride `lda` (the weight [O, C], or its transpose [C, O] for dx)
//   x [K, P]    the image's K planes of P = H*W pixels
//   y [M, P]    the output planes (+ bias[m])
//   y[m, p] = bias[m] + sum_k a[m, k] * x[k, p]
//
// The micro-kernel holds a 6 x 16 block of y in twelve 8-lane accumulators: per k it loads 16
// pixels of one input plane and broadcasts 6 weights (12 FMAs for 8 loads), enough independent
// chains to keep both FMA ports busy. A pixel block that does not fill 16 lanes is taken as the
// plane's last 8 or 16 pixels, overlapping the previous block: the overlap is recomputed with the
// same values, so planes of 8 pixels or more need no masking and never read past their end.
// OpenBLAS would pack x and the weights for every such product; on the 12x12 and 6x6 maps of a
// 96-pixel input those copies cost as much as the arithmetic.

#if canImport(Glibc)
import Glibc
#endif

/// Which kernel runs 1x1 convolutions on maps of 16 or more pixels.
public enum PointwiseKernel {
    /// The direct kernel (default), or OpenBLAS sgemm when false (`SSKD_POINTWISE=blas`, to compare).
    nonisolated(unsafe) public static var direct: Bool = getenv("SSKD_POINTWISE").map { String(cString: $0) != "blas" } ?? true
}

/// y [M, P] = a [M, K] @ x [K, P] (+ bias) for one image (P >= 8).
func pointwiseDirect(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>?, m: Int, k: Int, pixels p: Int) {
    // Pixel blocks: 16 wide, then the ragged end as the last 16 (or 8) pixels of the plane.
    var starts: [(Int, Bool)] = []   // (first pixel, 16 wide?)
    var j = 0
    while j + 16 <= p { starts.append((j, true)); j += 16 }
    if j < p { starts.append(p >= 16 ? (p - 16, true) : (p - 8, false)) }
    if p > 8 && p < 16 { starts.append((0, false)) }   // 9..15 pixels: [0, 8) and [p - 8, p)
    // Pixel blocks outside, rows inside: the block's K x 16 input panel stays in L1 while every
    // row of a passes over it (a is re-read per pixel block: M*K floats per 16 pixels, against
    // K*P per 6 rows the other way round).
    for (j0, wide) in starts {
        var i = 0
        while i < m {
            let rows = Swift.min(6, m - i)
            if rows == 6 && wide { block6x16(y + i * p + j0, a + i * lda, lda: lda, x + j0, bias.map { $0 + i }, k: k, p: p) }
            else { blockRx8(y + i * p + j0, a + i * lda, lda: lda, x + j0, bias.map { $0 + i }, rows: rows, k: k, p: p, width: wide ? 16 : 8) }
            i += rows
        }
    }
}

/// A 6 x 16 block: y[r, 0..<16] for r < 6, rows `p` apart.
@inline(__always) private func block6x16(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                                         _ bias: UnsafePointer<Float>?, k: Int, p: Int) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
    var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
    var c40 = SIMD8<Float>(), c41 = SIMD8<Float>(), c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
    let a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda
    var xr = x
    for t in 0..<k {
        let b0 = load8(xr), b1 = load8(xr + 8)
        var s = SIMD8<Float>(repeating: a0[t]); c00 = c00.addingProduct(b0, s); c01 = c01.addingProduct(b1, s)
        s = SIMD8<Float>(repeating: a1[t]); c10 = c10.addingProduct(b0, s); c11 = c11.addingProduct(b1, s)
        s = SIMD8<Float>(repeating: a2[t]); c20 = c20.addingProduct(b0, s); c21 = c21.addingProduct(b1, s)
        s = SIMD8<Float>(repeating: a3[t]); c30 = c30.addingProduct(b0, s); c31 = c31.addingProduct(b1, s)
        s = SIMD8<Float>(repeating: a4[t]); c40 = c40.addingProduct(b0, s); c41 = c41.addingProduct(b1, s)
        s = SIMD8<Float>(repeating: a5[t]); c50 = c50.addingProduct(b0, s); c51 = c51.addingProduct(b1, s)
        xr += p
    }
    if let bias {
        c00 += bias[0]; c01 += bias[0]; c10 += bias[1]; c11 += bias[1]; c20 += bias[2]; c21 += bias[2]
        c30 += bias[3]; c31 += bias[3]; c40 += bias[4]; c41 += bias[4]; c50 += bias[5]; c51 += bias[5]
    }
    store8(c00, y); store8(c01, y + 8)
    store8(c10, y + p); store8(c11, y + p + 8)
    store8(c20, y + 2 * p); store8(c21, y + 2 * p + 8)
    store8(c30, y + 3 * p); store8(c31, y + 3 * p + 8)
    store8(c40, y + 4 * p); store8(c41, y + 4 * p + 8)
    store8(c50, y + 5 * p); store8(c51, y + 5 * p + 8)
}

/// A block of `rows` (<= 6) rows by `width` (8 or 16) pixels: the edges of `pointwiseDirect`.
@inline(__always) private func blockRx8(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                                        _ bias: UnsafePointer<Float>?, rows: Int, k: Int, p: Int, width: Int) {
    var h = 0
    while h < width {
        var r = 0
        while r < rows {
            // Two rows at a time (one when a single row is left).
            let two = r + 1 < rows
            var c0 = SIMD8<Float>(), c1 = SIMD8<Float>()
            let r0 = a + r * lda, r1 = two ? r0 + lda : r0
            var xr = x + h
            for t in 0..<k {
                let b = load8(xr)
                c0 = c0.addingProduct(b, SIMD8(repeating: r0[t]))
                c1 = c1.addingProduct(b, SIMD8(repeating: r1[t]))
                xr += p
            }
            if let bias { c0 += bias[r]; if two { c1 += bias[r + 1] } }
            store8(c0, y + r * p + h)
            if two { store8(c1, y + (r + 1) * p + h) }
            r += two ? 2 : 1
        }
        h += 8
    }
}
