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
// chains to keep both FMA ports busy. The ragged end of a plane is taken as its last 16 pixels,
// overlapping the previous block: the overlap is recomputed with the same values, so no lane is
// masked and no read goes past the plane.
// OpenBLAS would pack x and the weights for every such product; on the 12x12 maps of a 96-pixel
// input those copies cost as much as the arithmetic (forward 1.2-1.9x faster there than sgemm).
//
// Planes of 33-40 pixels (the 6x6 maps) have their own kernel, `pointwiseDirect40`: a row there
// is five 8-lane vectors (90 % of lanes useful at 36 pixels, against 75 % for 16-pixel blocks),
// two rows per block, and K taken in chunks of 128 so that the chunk's 128 x 36 input panel
// (18 KB) stays in L1 while every row passes over it.

#if canImport(Glibc)
import Glibc
#endif

/// Which kernel runs 1x1 convolutions on maps of 64 or more pixels (see `ConvGeometry`).
public enum PointwiseKernel {
    /// The direct kernel (default), or OpenBLAS sgemm when false (`SSKD_POINTWISE=blas`, to compare).
    nonisolated(unsafe) public static var direct: Bool = getenv("SSKD_POINTWISE").map { String(cString: $0) != "blas" } ?? true
}

/// y [M, P] = a [M, K] @ x [K, P] (+ bias) for one image: `pointwiseDirect40` for P in 33...40,
/// else the 16-pixel blocks below (P >= 16).
func pointwiseProduct(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                      bias: UnsafePointer<Float>?, m: Int, k: Int, pixels p: Int) {
    if pointwise40Pixels.contains(p) { pointwiseDirect40(y, a, lda: lda, x, bias: bias, m: m, k: k, pixels: p) }
    else { pointwiseDirect(y, a, lda: lda, x, bias: bias, m: m, k: k, pixels: p) }
}

/// y [M, P] = a [M, K] @ x [K, P] (+ bias) for one image (P >= 16).
func pointwiseDirect(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>?, m: Int, k: Int, pixels p: Int) {
    precondition(p >= 16, "pointwiseDirect needs planes of 16+ pixels")   // internal: callers check the geometry
    // Pixel blocks of 16, the ragged end as the plane's last 16 pixels.
    var starts: [Int] = []
    var j = 0
    while j + 16 <= p { starts.append(j); j += 16 }
    if j < p { starts.append(p - 16) }
    // Pixel blocks outside, rows inside: the block's K x 16 input panel stays in L1 while every
    // row of a passes over it (a is re-read per pixel block: M*K floats per 16 pixels, against
    // K*P per 6 rows the other way round).
    for j0 in starts {
        var i = 0
        while i < m {
            let rows = Swift.min(6, m - i)
            if rows == 6 { block6x16(y + i * p + j0, a + i * lda, lda: lda, x + j0, bias.map { $0 + i }, k: k, p: p) }
            else { blockRx16(y + i * p + j0, a + i * lda, lda: lda, x + j0, bias.map { $0 + i }, rows: rows, k: k, p: p) }
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

/// A block of `rows` (< 6) rows by 16 pixels: the last rows of `pointwiseDirect`.
@inline(__always) private func blockRx16(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                                         _ bias: UnsafePointer<Float>?, rows: Int, k: Int, p: Int) {
    var h = 0
    while h < 16 {
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

// MARK: - Planes of 33-40 pixels (6x6 maps)

/// Plane sizes of `pointwiseDirect40`: five 8-lane vectors per row, the last pulled back.
let pointwise40Pixels = 33...40

/// Input planes per pass of `pointwiseDirect40` (128 x 36 floats = 18 KB, within L1). Measured at
/// 6x6, 1 thread: 5-7 % faster than one pass on the projections (K = 384-672), equal at K <= 128.
private let pointwise40Chunk = 128

/// y [M, P] = a [M, K] @ x [K, P] (+ bias) for one image with 32 < P <= 40. Each row is five 8-lane
/// vectors at pixels 0, 8, 16, 24 and P - 8 (the last overlaps the fourth and recomputes the
/// shared lanes with the same values).
func pointwiseDirect40(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, m: Int, k: Int, pixels p: Int) {
    precondition(pointwise40Pixels.contains(p), "pointwiseDirect40 needs planes of 33-40 pixels")   // internal: callers check the geometry
    var k0 = 0
    while k0 < k {
        let kc = Swift.min(pointwise40Chunk, k - k0)
        // The first chunk starts from the bias (or zero), later ones from the partial sums in y.
        let first = k0 == 0
        var i = 0
        while i < m {
            // Rows in pairs; an odd last row is paired with itself and stored once.
            let two = i + 1 < m
            block2x40(y + i * p, a + i * lda + k0, lda: two ? lda : 0, x + k0 * p, first ? bias.map { $0 + i } : nil,
                      k: kc, p: p, two: two, accumulate: !first)
            i += 2
        }
        k0 += kc
    }
}

/// Rows 0 and (when `two`) 1 of y, rows `p` apart: y[r, :] (+)= a[r, 0..<k] @ x[0..<k, :] (+ bias[r]).
@inline(__always) private func block2x40(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>,
                                         _ bias: UnsafePointer<Float>?, k: Int, p: Int, two: Bool, accumulate: Bool) {
    let last = p - 8
    let y0 = y, y1 = y + p
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>(), c04 = SIMD8<Float>()
    var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>(), c14 = SIMD8<Float>()
    if accumulate {
        c00 = load8(y0); c01 = load8(y0 + 8); c02 = load8(y0 + 16); c03 = load8(y0 + 24); c04 = load8(y0 + last)
        if two { c10 = load8(y1); c11 = load8(y1 + 8); c12 = load8(y1 + 16); c13 = load8(y1 + 24); c14 = load8(y1 + last) }
    } else if let bias {
        c00 = SIMD8(repeating: bias[0]); c01 = c00; c02 = c00; c03 = c00; c04 = c00
        if two { c10 = SIMD8(repeating: bias[1]); c11 = c10; c12 = c10; c13 = c10; c14 = c10 }
    }
    let a0 = a, a1 = a + lda
    var xr = x
    for t in 0..<k {
        let s0 = SIMD8<Float>(repeating: a0[t]), s1 = SIMD8<Float>(repeating: a1[t])
        var b = load8(xr); c00 = c00.addingProduct(b, s0); c10 = c10.addingProduct(b, s1)
        b = load8(xr + 8); c01 = c01.addingProduct(b, s0); c11 = c11.addingProduct(b, s1)
        b = load8(xr + 16); c02 = c02.addingProduct(b, s0); c12 = c12.addingProduct(b, s1)
        b = load8(xr + 24); c03 = c03.addingProduct(b, s0); c13 = c13.addingProduct(b, s1)
        b = load8(xr + last); c04 = c04.addingProduct(b, s0); c14 = c14.addingProduct(b, s1)
        xr += p
    }
    store8(c04, y0 + last); store8(c00, y0); store8(c01, y0 + 8); store8(c02, y0 + 16); store8(c03, y0 + 24)
    if two { store8(c14, y1 + last); store8(c10, y1); store8(c11, y1 + 8); store8(c12, y1 + 16); store8(c13, y1 + 24) }
}
