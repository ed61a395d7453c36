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

func linearBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                    dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    batch: Int, inFeatures: Int, outFeatures: Int) {
    if let dinput {
        sgemm(transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures, a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
              c: dinput, ldc: inFeatures)
    }
    if let dweight {
        sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch, a: dout, lda: outFeatures, b: input, ldb: inFeatures,
              c: dweight, ldc: inFeatures)
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
