import XCTest
@testable import SSKDTensor

/// Finite-difference gradient checks of every CNN kernel and option (small odd shapes).
final class KernelsGradTests: XCTestCase {
    let gen = Generator(seed: 7)

    func randn(_ shape: [Int], _ scale: Float = 1) throws -> Tensor { try Tensor.randn(shape, generator: gen).mul(scale).requiringGrad() }

    func assertGrad(_ inputs: [Tensor], _ what: String, eps: Float = 1e-3, atol: Float = 1e-3, rtol: Float = 1e-2,
                    file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) throws -> Tensor) throws {
        let report = try gradcheck(inputs, eps: eps, atol: atol, rtol: rtol, f)
        XCTAssertTrue(report.passed, "\(what): \(report)", file: file, line: line)
    }

    // MARK: conv2d

    func conv(_ x: [Int], _ w: [Int], bias: Bool, stride: [Int] = [1], padding: [Int] = [0], dilation: [Int] = [1], groups: Int = 1,
              file: StaticString = #filePath, line: UInt = #line) throws {
        var ins = [try randn(x), try randn(w, 0.5)]
        if bias { ins.append(try randn([w[0]])) }
        try assertGrad(ins, "conv2d x\(x) w\(w) s\(stride) p\(padding) d\(dilation) g\(groups) bias \(bias)", file: file, line: line) { t in
            try conv2d(t[0], t[1], bias: t.count > 2 ? t[2] : nil, stride: stride, padding: padding, dilation: dilation, groups: groups)
        }
    }

    func testConvDense() throws {
        try conv([2, 3, 5, 7], [4, 3, 3, 3], bias: true, padding: [1])
        try conv([1, 3, 7, 9], [2, 3, 3, 3], bias: false, stride: [2], padding: [1])          // stride 2 on odd input
        try conv([1, 2, 6, 7], [3, 2, 2, 3], bias: true, stride: [2, 1], padding: [1, 0])
        try conv([1, 2, 7, 6], [2, 2, 3, 2], bias: false, padding: [0, 2, 1, 0], dilation: [2, 1])  // per-side padding, dilation
    }

    func testConvPointwise() throws {
        try conv([2, 5, 4, 3], [6, 5, 1, 1], bias: true)                  // batched GEMM (small map)
        try conv([2, 2, 17, 16], [3, 2, 1, 1], bias: true)                // one GEMM per image (HW > 256)
        try conv([1, 3, 4, 4], [2, 3, 1, 1], bias: false)                 // single image
        try conv([1, 4, 5, 5], [3, 4, 1, 1], bias: false, stride: [2])
        try conv([1, 4, 3, 3], [2, 4, 1, 1], bias: true, padding: [1])
    }

    /// Every conv path gives each thread a slice of images (dw summed per slice): uneven slices
    /// (5 images on 3 threads) and more threads than images, for the batched pointwise, per-image
    /// pointwise, im2col and grouped paths.
    func testConvSlicedAcrossThreads() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        for threads in [3, 1] {
            try Runtime.setThreads(threads)
            try conv([5, 3, 3, 4], [4, 3, 1, 1], bias: true)                 // batched pointwise
            try conv([2, 4, 2, 3], [3, 4, 1, 1], bias: false)
            try conv([5, 2, 17, 16], [3, 2, 1, 1], bias: true)               // one GEMM per image
            try conv([5, 3, 5, 7], [4, 3, 3, 3], bias: true, padding: [1])   // im2col
            try conv([2, 4, 5, 6], [6, 2, 3, 3], bias: false, stride: [2], padding: [1], groups: 2)
            try conv([3, 3, 2, 2], [14, 3, 1, 1], bias: true)                // more channels than columns:
            try conv([3, 14, 2, 2], [3, 14, 1, 1], bias: false)              //   whole batch, rows split
        }
    }

    /// The direct pointwise kernels (maps of 64+ pixels, and of 33-40) against OpenBLAS on the same
    /// inputs: pixel counts that fill 16-wide blocks exactly or leave a ragged end, output counts
    /// that leave row tails of 1 to 5, expansions and projections (dx on the direct kernel when
    /// C >= O, and for expansions on 64-256 pixels), with and without bias; on 33-40 pixels, odd row
    /// counts and more than 128 input planes (K in chunks of 128); then finite differences.
    func testDirectPointwiseMatchesGemm() throws {
        defer { PointwiseKernel.direct = true }
        for (x, w) in [([2, 5, 8, 8], [6, 5, 1, 1]), ([3, 4, 8, 9], [7, 4, 1, 1]), ([2, 9, 9, 9], [11, 9, 1, 1]),
                       ([1, 3, 7, 11], [16, 3, 1, 1]), ([2, 13, 12, 12], [9, 13, 1, 1]), ([1, 2, 17, 5], [5, 2, 1, 1]),
                       ([2, 17, 8, 10], [4, 17, 1, 1]), ([1, 12, 9, 8], [12, 12, 1, 1]), ([2, 4, 12, 12], [13, 4, 1, 1]),
                       ([2, 5, 6, 6], [7, 5, 1, 1]), ([3, 7, 6, 6], [2, 7, 1, 1]), ([2, 3, 3, 11], [1, 3, 1, 1]),
                       ([2, 3, 5, 8], [5, 3, 1, 1]), ([2, 300, 6, 6], [5, 300, 1, 1]), ([2, 130, 5, 7], [131, 130, 1, 1]),
                       ([2, 3, 6, 6], [257, 3, 1, 1])] {
            for bias in [true, false] {
                let g = Generator(seed: 9)
                let xt = try Tensor.randn(x, generator: g), wt = try Tensor.randn(w, generator: g), bt = try Tensor.randn([w[0]], generator: g)
                let dy = try Tensor.randn([x[0], w[0], x[2], x[3]], generator: g)
                func run(direct: Bool) throws -> [[Float]] {
                    PointwiseKernel.direct = direct
                    let xi = xt.detach().requiringGrad(), wi = wt.detach().requiringGrad(), bi = bias ? bt.detach().requiringGrad() : nil
                    let y = try conv2d(xi, wi, bias: bi)
                    try (y * dy).sum().backward()
                    return [y.toArray(), xi.grad!.toArray(), wi.grad!.toArray()]
                }
                let (direct, blas) = (try run(direct: true), try run(direct: false))
                for i in blas.indices {
                    let scale = blas[i].map { Swift.abs($0) }.max() ?? 1
                    let err = zip(direct[i], blas[i]).map { Swift.abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(err, 1e-5 * Swift.max(scale, 1), "x\(x) w\(w) bias \(bias): result \(i) differs by \(err)")
                }
            }
        }
        try conv([2, 3, 8, 9], [7, 3, 1, 1], bias: true)
        try conv([1, 13, 4, 17], [8, 13, 1, 1], bias: false)
        try conv([2, 3, 6, 6], [5, 3, 1, 1], bias: true)          // 33-40 pixels: five vectors a row
        try conv([2, 5, 3, 12], [3, 5, 1, 1], bias: false)
    }

    func testConvGrouped() throws {
        try conv([2, 4, 5, 6], [6, 2, 3, 3], bias: true, padding: [1], groups: 2)
        try conv([1, 6, 7, 5], [3, 2, 3, 3], bias: false, stride: [2], padding: [1], groups: 3)
        try conv([1, 4, 4, 4], [4, 2, 1, 1], bias: true, groups: 2)
    }

    /// Few input channels with rows of 8+ outputs: the direct stem forward (StemConv.swift), checked
    /// against the im2col backward's gradients. Three vectors per row plus one, a ragged row, a
    /// partial block of output channels, stride 1 and 2, asymmetric padding.
    func testConvStem() throws {
        try conv([2, 3, 7, 35], [5, 3, 3, 3], bias: true, stride: [2], padding: [1])        // 18 outputs: 3 vectors, ragged
        try conv([1, 1, 5, 40], [4, 1, 3, 3], bias: false, padding: [1])                    // 40 outputs: 3 + 2 vectors
        try conv([1, 2, 6, 21], [3, 2, 5, 5], bias: true, stride: [2], padding: [2, 1, 2, 1])
    }

    func testConvOnOnePixelMaps() throws {
        // 1x1 convolutions on 1x1 maps (squeeze-and-excitation) run as linear layers.
        try conv([3, 5, 1, 1], [7, 5, 1, 1], bias: true)      // small head: register-blocked backward
        try conv([2, 3, 1, 1], [20, 3, 1, 1], bias: true)     // sgemm backward
        try conv([2, 6, 1, 1], [4, 6, 1, 1], bias: false)
    }

    func testConvDepthwise() throws {
        try conv([2, 3, 7, 9], [3, 1, 3, 3], bias: true, padding: [1], groups: 3)
        try conv([1, 3, 9, 11], [3, 1, 3, 3], bias: false, stride: [2], padding: [1], groups: 3)   // stride 2, odd
        try conv([1, 2, 8, 13], [2, 1, 5, 5], bias: true, padding: [2], groups: 2)
        try conv([1, 2, 9, 19], [2, 1, 5, 5], bias: false, stride: [2], padding: [2], groups: 2)   // SIMD path + tail
        try conv([1, 2, 7, 8], [2, 1, 3, 3], bias: false, stride: [2], padding: [0, 1, 0, 1], groups: 2)  // TF-style asymmetric
        try conv([1, 2, 7, 9], [4, 1, 3, 3], bias: true, padding: [2], dilation: [2], groups: 2)   // multiplier 2, dilation
        try conv([1, 2, 6, 7], [2, 1, 2, 4], bias: true, stride: [1, 3], padding: [1, 2, 0, 3], groups: 2) // generic kernel
        // Larger maps (> 144 outputs) take the phase-split kernels: 3x3 and 5x5 (taps in groups of
        // four plus leftovers for dw; dx four vectors per step plus a tail), stride 1 and 2.
        try conv([2, 2, 13, 14], [2, 1, 3, 3], bias: true, padding: [1], groups: 2)
        try conv([1, 2, 14, 15], [2, 1, 5, 5], bias: false, padding: [2], groups: 2)
        try conv([1, 2, 25, 27], [2, 1, 5, 5], bias: true, stride: [2], padding: [2], groups: 2)
        // Small maps (<= 144 outputs) run eight channels per vector: 11 = one full and one partial block.
        try conv([2, 11, 4, 5], [11, 1, 3, 3], bias: true, padding: [1], groups: 11)
        try conv([1, 9, 5, 5], [9, 1, 5, 5], bias: false, stride: [2], padding: [2], groups: 9)
        try conv([2, 10, 2, 3], [10, 1, 3, 3], bias: true, padding: [1], groups: 10)   // fewer than 8 pixels per plane
        // Sliding windows over pairs of output rows, with an odd last row: 3-wide blocks (OW 6) and
        // 4-wide blocks with a ragged end (OW 9).
        try conv([1, 9, 5, 6], [9, 1, 5, 5], bias: true, padding: [2], groups: 9)
        try conv([1, 8, 7, 9], [8, 1, 3, 3], bias: false, padding: [1], groups: 8)
        // Planes no larger than the kernel sum over input pixels (blockedForwardSmallPlane): 3x3
        // under 5x5 and 3x3, fewer than 8 pixels, stride 2, dilation.
        try conv([2, 11, 3, 3], [11, 1, 5, 5], bias: true, padding: [2], groups: 11)
        try conv([2, 9, 3, 3], [9, 1, 3, 3], bias: false, padding: [1], groups: 9)
        try conv([1, 9, 2, 3], [9, 1, 5, 5], bias: false, padding: [2], groups: 9)
        try conv([1, 8, 3, 4], [8, 1, 5, 5], bias: true, stride: [2], padding: [2], groups: 8)
        try conv([1, 3, 2, 3], [3, 1, 3, 3], bias: true, padding: [2], dilation: [2], groups: 3)
    }

    // MARK: batch norm
    // Batch norm rescales a whole channel by one rounded 1/sqrt(var + eps): in Float32 that
    // rounding moves every output of the channel coherently, so finite differences need a larger
    // step (the function is smooth, so the O(eps^2) truncation error stays tiny).

    func testBatchNormTraining() throws {
        let rm = try Tensor.zeros([3]), rv = try Tensor.ones([3])
        try assertGrad([try randn([3, 3, 4, 5]), try randn([3]), try randn([3])], "bn train affine", eps: 1e-2) { t in
            try batchNorm2d(t[0], runningMean: rm, runningVar: rv, weight: t[1], bias: t[2], training: true)
        }
        try assertGrad([try randn([2, 2, 3, 3], 3)], "bn train plain", eps: 1e-2) { t in
            try batchNorm2d(t[0], runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
        }
        try assertGrad([try randn([5, 4]), try randn([4])], "bn train 2-D, weight only", eps: 1e-2) { t in
            try batchNorm2d(t[0], runningMean: nil, runningVar: nil, weight: t[1], bias: nil, training: true)
        }
    }

    /// Batch norm with a fused activation gives exactly what the norm followed by the activation
    /// gives (outputs, running statistics and every gradient, bit for bit): planes of 8+ values
    /// with a ragged tail, planes under 8 values, with and without the affine parameters, training
    /// and eval. Plus a finite-difference check of the fused silu (smooth everywhere).
    func testBatchNormFusedActivationMatchesTwoOps() throws {
        for shape in [[3, 4, 3, 5], [4, 3, 2, 3], [2, 2, 4, 4]] {
            for act in [FusedActivation.relu, .relu6, .silu] {
                for affine in [true, false] {
                    for training in [true, false] {
                        let g = Generator(seed: 11)
                        let x0 = try Tensor.randn(shape, generator: g).mul(3)
                        let w0 = try Tensor.randn([shape[1]], generator: g), b0 = try Tensor.randn([shape[1]], generator: g)
                        let dy = try Tensor.randn(shape, generator: g)
                        func run(fused: Bool) throws -> [[Float]] {
                            let x = x0.detach().requiringGrad()
                            let w = affine ? w0.detach().requiringGrad() : nil, b = affine ? b0.detach().requiringGrad() : nil
                            let rm = try Tensor.zeros([shape[1]]).add(0.1), rv = try Tensor.ones([shape[1]]).mul(2)
                            var y: Tensor
                            if fused {
                                y = try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: w, bias: b, training: training, activation: act)
                            } else {
                                y = try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: w, bias: b, training: training)
                                switch act { case .relu: y = try y.relu(); case .relu6: y = try y.relu6(); case .silu: y = try y.silu() }
                            }
                            try (y * dy).sum().backward()
                            return [y.toArray(), rm.toArray(), rv.toArray(), x.grad!.toArray(), w?.grad?.toArray() ?? [], b?.grad?.toArray() ?? []]
                        }
                        let (fused, plain) = (try run(fused: true), try run(fused: false))
                        for i in plain.indices {
                            XCTAssertEqual(fused[i], plain[i], "\(act) \(shape) affine \(affine) training \(training): result \(i) differs")
                        }
                    }
                }
            }
        }
        try assertGrad([try randn([3, 3, 4, 5]), try randn([3]), try randn([3])], "bn train + silu", eps: 1e-2) { t in
            try batchNorm2d(t[0], runningMean: nil, runningVar: nil, weight: t[1], bias: t[2], training: true, activation: .silu)
        }
    }

    func testBatchNormEval() throws {
        let rm = try Tensor([0.1, -0.2, 0.3]), rv = try Tensor([0.5, 1.5, 2.0])
        try assertGrad([try randn([2, 3, 3, 4]), try randn([3]), try randn([3])], "bn eval affine", eps: 1e-2) { t in
            try batchNorm2d(t[0], runningMean: rm, runningVar: rv, weight: t[1], bias: t[2], training: false)
        }
        XCTAssertEqual(rm.toArray(), [0.1, -0.2, 0.3], "eval must not touch running stats")
    }

    // MARK: pooling

    /// Distinct, well separated values so a perturbation of eps never changes which one is largest.
    func spread(_ shape: [Int]) throws -> Tensor {
        let n = shape.reduce(1, *)
        let perm = gen.permutation(n)
        return try Tensor(perm.map { Float($0) * 0.05 - Float(n) * 0.025 }, shape: shape).requiringGrad()
    }

    func testMaxPool() throws {
        for (shape, k, s, p, d, ceil) in [([2, 2, 7, 9], [3], [2], [1], [1], false), ([1, 2, 7, 7], [2], [2], [0], [1], true),
                                          ([1, 1, 8, 10], [3], [2], [1], [1], true), ([1, 2, 7, 8], [3], [1], [1], [2], false),
                                          ([1, 1, 6, 7], [2, 3], [1, 2], [1, 1], [1], false)] {
            try assertGrad([try spread(shape)], "max_pool2d \(shape) k\(k) s\(s) p\(p) d\(d) ceil \(ceil)") { t in
                try maxPool2d(t[0], kernel: k, stride: s, padding: p, dilation: d, ceilMode: ceil)
            }
        }
    }

    func testAvgPool() throws {
        for (shape, k, s, p, ceil, cip) in [([2, 2, 7, 9], [3], [2], [1], false, true), ([1, 2, 7, 9], [3], [2], [1], false, false),
                                            ([1, 2, 8, 8], [3], [2], [1], true, true), ([1, 1, 7, 9], [2], [2], [0], true, false),
                                            ([3, 5, 6], [2, 3], [1, 2], [1, 1], false, true)] {
            try assertGrad([try randn(shape)], "avg_pool2d \(shape) k\(k) s\(s) p\(p) ceil \(ceil) cip \(cip)") { t in
                try avgPool2d(t[0], kernel: k, stride: s, padding: p, ceilMode: ceil, countIncludePad: cip)
            }
        }
    }

    func testAdaptiveAvgPool() throws {
        for (shape, size) in [([2, 3, 5, 7], [1]), ([1, 2, 7, 10], [3, 4]), ([1, 2, 4, 3], [5, 5]), ([2, 5, 5], [2, 3])] {
            try assertGrad([try randn(shape)], "adaptive_avg_pool2d \(shape) -> \(size)") { t in
                try adaptiveAvgPool2d(t[0], outputSize: size)
            }
        }
    }

    // MARK: activations, linear, dropout

    func testActivations() throws {
        // Away from the kinks (-3, 0, 3, 6), where the derivative is undefined.
        var values: [Float] = []
        for i in 0..<60 { values.append(-8.05 + Float(i) * 0.27) }
        for v in values { XCTAssertGreaterThan(Swift.min(abs(v + 3), abs(v), abs(v - 3), abs(v - 6)), 0.009) }
        let x = try Tensor(values, shape: [3, 4, 5]).requiringGrad()
        try assertGrad([x], "relu6") { try $0[0].relu6() }
        try assertGrad([x], "silu") { try $0[0].silu() }
        try assertGrad([x], "hardswish") { try $0[0].hardswish() }
        try assertGrad([x], "hardsigmoid") { try $0[0].hardsigmoid() }
    }

    func testLinear() throws {
        try assertGrad([try randn([4, 5]), try randn([3, 5]), try randn([3])], "linear") { t in try linear(t[0], t[1], bias: t[2]) }
        try assertGrad([try randn([2, 3, 5]), try randn([4, 5])], "linear 3-D no bias") { t in try linear(t[0], t[1]) }
        try assertGrad([try randn([5]), try randn([2, 5]), try randn([2])], "linear 1-D") { t in try linear(t[0], t[1], bias: t[2]) }
        // Small heads (<= 16 outputs) take the register-blocked backward: 4-row blocks, 16-column steps, tails.
        try assertGrad([try randn([6, 37]), try randn([5, 37]), try randn([5])], "linear small head") { t in try linear(t[0], t[1], bias: t[2]) }
    }

    func testDropoutAndStochasticDepthGradients() throws {
        // The same seed gives the same mask at every evaluation, so finite differences apply.
        let x = try randn([4, 3, 2, 2])
        try assertGrad([x], "dropout") { t in try dropout(t[0], p: 0.4, training: true, generator: Generator(seed: 3)) }
        try assertGrad([x], "stochastic depth row") { t in
            try stochasticDepth(t[0], p: 0.5, mode: .row, training: true, generator: Generator(seed: 5))
        }
        try assertGrad([x], "stochastic depth batch") { t in
            try stochasticDepth(t[0], p: 0.3, mode: .batch, training: true, generator: Generator(seed: 1))
        }
    }

    /// A small conv -> BN -> relu6 -> depthwise -> BN -> silu -> pool -> linear chain.
    func testChainedBlock() throws {
        let x = try randn([2, 3, 7, 7]), w1 = try randn([4, 3, 3, 3], 0.5), w2 = try randn([4, 1, 3, 3], 0.5), wl = try randn([2, 4])
        try assertGrad([x, w1, w2, wl], "chain", eps: 1e-2, atol: 2e-3, rtol: 2e-2) { t in
            var h = try conv2d(t[0], t[1], stride: [2], padding: [1])
            h = try batchNorm2d(h, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true).relu6()
            h = try conv2d(h, t[2], padding: [1], groups: 4)
            h = try batchNorm2d(h, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true).silu()
            h = try adaptiveAvgPool2d(h, outputSize: [1]).reshape([2, 4])
            return try linear(h, t[3])
        }
    }
}
