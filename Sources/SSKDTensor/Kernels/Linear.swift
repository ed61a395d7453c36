// Fully connected layer through sgemm.
//
// Shapes:
//   x [B, IN] (B = product of the leading dims), w [OUT, IN], b [OUT], y [B, OUT]
//   y  = x @ w^T + b
//   dx = dy @ w          [B, IN]
//   dw = dy^T @ x        [OUT, IN]
//   db = sum_B dy        [OUT]

func linearForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                   batch: Int, inFeatures: Int, outFeatures: Int) {
    if let bias {
        for r in 0..<batch { (out + r * outFeatures).update(from: bias, count: outFeatures) }
    }
    sgemm(transA: false, transB: true, m: batch, n: outFeatures, k: inFeatures, a: input, lda: inFeatures, b: weight, ldb: inFeatures,
          beta: bias == nil ? 0 : 1, c: out, ldc: outFeatures)
}

/// out[i, :] = sum_t a[i*ais + t*ats] * b[t, :] for i < m, t < k, with b [k, n] row-major: a GEMM
/// whose inner dimension or row count is tiny (a 10-class head: dx = dy @ w has k = 10, dw = dy^T @ x
/// has m = 10). Too small for OpenBLAS's packing to pay off; here each row of `out` is built in
/// registers, four rows by 16 columns at a time. Rows are independent, so any chunking gives the same result.
func smallGemmRows(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, ais: Int, ats: Int, _ b: UnsafePointer<Float>,
                   m: Int, n: Int, k: Int) {
    // Chunks of whole groups of four rows (a chunk of one or two rows would run only the slow
    // single-row path: on a 10-class head's backward, two threads were slower than one).
    parallelFor(m, grain: (Swift.max(grainFor(work: n * k), 4) + 3) / 4 * 4) { rows in
        var i = rows.lowerBound
        // Four rows at a time, 16 columns per step: every load of b feeds four FMAs.
        while i + 4 <= rows.upperBound {
            let c0 = a + i * ais, c1 = c0 + ais, c2 = c1 + ais, c3 = c2 + ais
            let d0 = out + i * n, d1 = d0 + n, d2 = d1 + n, d3 = d2 + n
            var j = 0
            while j + 16 <= n {
                var a0 = SIMD8<Float>(), b0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
                var a2 = SIMD8<Float>(), b2 = SIMD8<Float>(), a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
                for t in 0..<k {
                    let row = b + t * n + j, o = t * ats
                    let x0 = load8(row), x1 = load8(row + 8)
                    let s0 = SIMD8<Float>(repeating: c0[o]), s1 = SIMD8<Float>(repeating: c1[o])
                    let s2 = SIMD8<Float>(repeating: c2[o]), s3 = SIMD8<Float>(repeating: c3[o])
                    a0 = a0.addingProduct(x0, s0); b0 = b0.addingProduct(x1, s0)
                    a1 = a1.addingProduct(x0, s1); b1 = b1.addingProduct(x1, s1)
                    a2 = a2.addingProduct(x0, s2); b2 = b2.addingProduct(x1, s2)
                    a3 = a3.addingProduct(x0, s3); b3 = b3.addingProduct(x1, s3)
                }
                store8(a0, d0 + j); store8(b0, d0 + j + 8); store8(a1, d1 + j); store8(b1, d1 + j + 8)
                store8(a2, d2 + j); store8(b2, d2 + j + 8); store8(a3, d3 + j); store8(b3, d3 + j + 8)
                j += 16
            }
            for r in 0..<4 { smallGemmRowTail(out + (i + r) * n, a + (i + r) * ais, ats: ats, b, from: j, n: n, k: k) }
            i += 4
        }
        while i < rows.upperBound {
            smallGemmRowTail(out + i * n, a + i * ais, ats: ats, b, from: 0, n: n, k: k)
            i += 1
        }
    }
}

/// Columns from..<n of one row of `smallGemmRows` (same summation order as the blocked part).
@inline(__always) func smallGemmRowTail(_ dst: UnsafeMutablePointer<Float>, _ coef: UnsafePointer<Float>, ats: Int, _ b: UnsafePointer<Float>,
                                        from: Int, n: Int, k: Int) {
    var j = from
    while j + 8 <= n {
        var a0 = SIMD8<Float>()
        for t in 0..<k { a0 = a0.addingProduct(load8(b + t * n + j), SIMD8(repeating: coef[t * ats])) }
        store8(a0, dst + j)
        j += 8
    }
    while j < n {
        var s: Float = 0
        for t in 0..<k { s = s.addingProduct(coef[t * ats], b[t * n + j]) }
        dst[j] = s
        j += 1
    }
}

/// Heads with at most this many outputs take `smallGemmRows` in the backward (dx always; dw when
/// the batch is small too).
let smallHeadOutputs = 16

func linearBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                    dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    batch: Int, inFeatures: Int, outFeatures: Int) {
    if outFeatures <= smallHeadOutputs {
        // dx [B, IN] = dy [B, OUT] @ w [OUT, IN]
        if let dinput { smallGemmRows(dinput, dout, ais: outFeatures, ats: 1, weight, m: batch, n: inFeatures, k: outFeatures) }
        // dw [OUT, IN] = dy^T [OUT, B] @ x [B, IN]
        if let dweight, batch <= 64 {
            smallGemmRows(dweight, dout, ais: 1, ats: outFeatures, input, m: outFeatures, n: inFeatures, k: batch)
        } else if let dweight {
            sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch, a: dout, lda: outFeatures, b: input, ldb: inFeatures,
                  c: dweight, ldc: inFeatures)
        }
    } else {
        if let dinput {
            sgemm(transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures, a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
                  c: dinput, ldc: inFeatures)
        }
        if let dweight {
            sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch, a: dout, lda: outFeatures, b: input, ldb: inFeatures,
                  c: dweight, ldc: inFeatures)
        }
    }
    if let dbias {
        // Column sums of dy in row order (deterministic), accumulated in Double.
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: outFeatures)
        defer { acc.deallocate() }
        acc.update(repeating: 0, count: outFeatures)
        for r in 0..<batch { let row = dout + r * outFeatures; for j in 0..<outFeatures { acc[j] += Double(row[j]) } }
        for j in 0..<outFeatures { dbias[j] = Float(acc[j]) }
    }
}
