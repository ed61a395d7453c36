import XCTest
@testable import SSKDTensor

/// Dropout / stochastic-depth statistics, batch-norm running statistics, and argument errors.
final class KernelsBehaviourTests: XCTestCase {
    // MARK: dropout

    func testDropoutStatistics() throws {
        let x = try Tensor.ones([200, 100])
        for p: Float in [0.1, 0.2, 0.5, 0.8] {
            let y = try dropout(x, p: p, training: true, generator: Generator(seed: 11))
            var dropped = 0
            for i in 0..<y.count {
                if y.data[i] == 0 { dropped += 1 } else { XCTAssertEqual(y.data[i], 1 / (1 - p), accuracy: 1e-6) }
            }
            let frac = Float(dropped) / Float(y.count)
            // 20000 Bernoulli draws: the standard deviation of the fraction is <= 0.0036.
            XCTAssertEqual(frac, p, accuracy: 0.02, "dropped fraction at p = \(p)")
        }
    }

    func testDropoutEvalSeedAndEdges() throws {
        let x = try Tensor.randn([4, 50], generator: Generator(seed: 1))
        XCTAssertTrue(try dropout(x, p: 0.5, training: false) === x, "eval is the identity")
        XCTAssertTrue(try dropout(x, p: 0, training: true) === x, "p = 0 is the identity")
        let a = try dropout(x, p: 0.3, training: true, generator: Generator(seed: 9))
        let b = try dropout(x, p: 0.3, training: true, generator: Generator(seed: 9))
        let c = try dropout(x, p: 0.3, training: true, generator: Generator(seed: 10))
        XCTAssertEqual(a.toArray(), b.toArray(), "same seed, same mask")
        XCTAssertNotEqual(a.toArray(), c.toArray())
        XCTAssertEqual(try dropout(x, p: 1, training: true).toArray(), [Float](repeating: 0, count: x.count))
        XCTAssertThrowsError(try dropout(x, p: 1.5, training: true))
        XCTAssertThrowsError(try dropout(x, p: -0.1, training: true))
    }

    func testDropoutGradientUsesTheMask() throws {
        let x = try Tensor.ones([1000]).requiringGrad()
        let y = try dropout(x, p: 0.25, training: true, generator: Generator(seed: 2))
        try y.sum().backward()
        XCTAssertEqual(try XCTUnwrap(x.grad).toArray(), y.toArray(), "d(sum y)/dx = mask * 1/(1-p) = y for x = 1")
    }

    // MARK: stochastic depth

    func testStochasticDepthRowMode() throws {
        let n = 4000, p: Float = 0.2
        let x = try Tensor.ones([n, 2, 3, 3])
        let y = try stochasticDepth(x, p: p, mode: .row, training: true, generator: Generator(seed: 4))
        var dropped = 0
        for s in 0..<n {
            let row = Array(UnsafeBufferPointer(start: y.data + s * 18, count: 18))
            // A whole sample is either dropped or kept and scaled by 1/(1-p).
            XCTAssertEqual(Set(row).count, 1, "sample \(s) is not uniformly masked")
            if row[0] == 0 { dropped += 1 } else { XCTAssertEqual(row[0], 1 / (1 - p), accuracy: 1e-6) }
        }
        XCTAssertEqual(Float(dropped) / Float(n), p, accuracy: 0.03)
    }

    func testStochasticDepthBatchModeEvalAndEdges() throws {
        let x = try Tensor.randn([8, 3, 2, 2], generator: Generator(seed: 3))
        var kept = 0, zeroed = 0
        for seed in 0..<200 {
            let y = try stochasticDepth(x, p: 0.5, mode: .batch, training: true, generator: Generator(seed: UInt64(seed)))
            let ratio = Set((0..<y.count).map { x.data[$0] == 0 ? -1 : y.data[$0] / x.data[$0] })
            XCTAssertEqual(ratio.count, 1, "batch mode scales every sample alike")
            if y.data[0] == 0 { zeroed += 1 } else { kept += 1; XCTAssertEqual(ratio.first!, 2, accuracy: 1e-5) }
        }
        XCTAssertGreaterThan(kept, 60); XCTAssertGreaterThan(zeroed, 60)
        XCTAssertTrue(try stochasticDepth(x, p: 0.5, training: false) === x)
        XCTAssertTrue(try stochasticDepth(x, p: 0, training: true) === x)
        // p = 1: survival rate 0, every sample dropped and nothing divided by zero.
        let all = try stochasticDepth(x, p: 1, training: true)
        XCTAssertEqual(all.toArray(), [Float](repeating: 0, count: x.count))
        let a = try stochasticDepth(x, p: 0.5, training: true, generator: Generator(seed: 77))
        let b = try stochasticDepth(x, p: 0.5, training: true, generator: Generator(seed: 77))
        XCTAssertEqual(a.toArray(), b.toArray())
        XCTAssertThrowsError(try stochasticDepth(x, p: 2, training: true))
    }

    // MARK: batch norm running statistics

    func testBatchNormRunningStatsAndEvalUseThem() throws {
        // Channel 0 holds 1...8 (mean 4.5, biased var 5.25, unbiased 6), channel 1 holds 2 * that.
        let vals: [Float] = (1...8).map(Float.init)
        var data: [Float] = []
        for img in 0..<2 { data += Array(vals[(img * 4)..<(img * 4 + 4)]); data += vals[(img * 4)..<(img * 4 + 4)].map { $0 * 2 } }
        let x = try Tensor(data, shape: [2, 2, 2, 2])
        let rm = try Tensor.zeros([2]), rv = try Tensor.ones([2])
        let y = try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: nil, bias: nil, training: true, momentum: 0.1)
        XCTAssertEqual(rm.toArray()[0], 0.45, accuracy: 1e-6)
        XCTAssertEqual(rm.toArray()[1], 0.9, accuracy: 1e-6)
        XCTAssertEqual(rv.toArray()[0], 0.9 + 0.1 * 6, accuracy: 1e-5)
        XCTAssertEqual(rv.toArray()[1], 0.9 + 0.1 * 24, accuracy: 1e-5)
        XCTAssertEqual(y.data[0], (1 - 4.5) / (5.25 + 1e-5).squareRoot(), accuracy: 1e-5)
        // Eval: (x - running_mean) / sqrt(running_var + eps).
        let e = try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: nil, bias: nil, training: false)
        XCTAssertEqual(e.data[0], (1 - 0.45) / (1.5 + 1e-5).squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(rm.toArray()[0], 0.45, accuracy: 1e-6, "eval leaves running stats alone")
    }

    // MARK: errors

    func assertError(_ op: String, file: StaticString = #filePath, line: UInt = #line, _ f: () throws -> Tensor) {
        XCTAssertThrowsError(try f(), file: file, line: line) { e in
            guard let te = e as? TensorError else { return XCTFail("not a TensorError: \(e)", file: file, line: line) }
            XCTAssertEqual(te.op, op, "\(te)", file: file, line: line)
        }
    }

    func testArgumentErrors() throws {
        let x = try Tensor.zeros([2, 4, 5, 5])
        let w = try Tensor.zeros([6, 4, 3, 3])
        assertError("conv2d") { try conv2d(try Tensor.zeros([4, 5]), w) }
        assertError("conv2d") { try conv2d(x, try Tensor.zeros([6, 3, 3, 3])) }                  // channel mismatch
        assertError("conv2d") { try conv2d(x, try Tensor.zeros([6, 2, 3, 3]), groups: 3) }       // 4 % 3 != 0
        assertError("conv2d") { try conv2d(x, try Tensor.zeros([5, 2, 3, 3]), groups: 2) }       // 5 % 2 != 0
        assertError("conv2d") { try conv2d(x, w, bias: try Tensor.zeros([5])) }
        assertError("conv2d") { try conv2d(x, w, stride: [0]) }
        assertError("conv2d") { try conv2d(x, w, padding: [1, 1, 1]) }
        assertError("conv2d") { try conv2d(x, w, padding: [-1]) }
        assertError("conv2d") { try conv2d(x, w, dilation: [3]) }                                 // 7x7 window on 5x5
        assertError("conv2d") { try conv2d(x, w, groups: 0) }
        assertError("batch_norm") { try batchNorm2d(x, runningMean: try Tensor.zeros([3]), runningVar: try Tensor.ones([3]), weight: nil, bias: nil, training: true) }
        assertError("batch_norm") { try batchNorm2d(x, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: false) }
        assertError("batch_norm") { try batchNorm2d(try Tensor.zeros([1, 4, 1, 1]), runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true) }
        assertError("batch_norm") { try batchNorm2d(x, runningMean: nil, runningVar: nil, weight: try Tensor.ones([2]), bias: nil, training: true) }
        assertError("linear") { try linear(try Tensor.zeros([3, 5]), try Tensor.zeros([4, 6])) }
        assertError("linear") { try linear(try Tensor.zeros([3, 5]), try Tensor.zeros([4, 5]), bias: try Tensor.zeros([3])) }
        assertError("linear") { try linear(try Tensor.zeros([3, 5]), try Tensor.zeros([20])) }
        assertError("max_pool2d") { try maxPool2d(x, kernel: [3], padding: [2]) }                 // pad > kernel / 2
        assertError("max_pool2d") { try maxPool2d(x, kernel: [7]) }
        assertError("max_pool2d") { try maxPool2d(try Tensor.zeros([5, 5]), kernel: [2]) }
        assertError("avg_pool2d") { try avgPool2d(x, kernel: [2], stride: [0]) }
        assertError("adaptive_avg_pool2d") { try adaptiveAvgPool2d(x, outputSize: [0]) }
        assertError("adaptive_avg_pool2d") { try adaptiveAvgPool2d(x, outputSize: [1, 2, 3]) }
    }

    func testVectorExpAndSigmoidAccuracy() throws {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            var v = SIMD8<Float>()
            for l in 0..<8 { v[l] = x + Float(l) * 0.0137 }
            let e = exp8(v)
            for l in 0..<8 { worst = Swift.max(worst, Swift.abs(e[l] / expf(v[l]) - 1)) }
            x += 0.1
        }
        XCTAssertLessThan(worst, 1e-6, "exp8 relative error")
        let s = sigmoid8(SIMD8<Float>(-200, -90, -20, -1, 0, 1, 20, 200))
        let want: [Float] = [0, 0, 2.0611537e-9, 0.26894143, 0.5, 0.7310586, 1, 1]
        for l in 0..<8 { XCTAssertEqual(s[l], want[l], accuracy: 1e-7 + 1e-6 * want[l]) }
        XCTAssertTrue(exp8(SIMD8<Float>(repeating: .nan))[0].isNaN)
        let big = try Tensor([-1000, 1000, -3, 3, 6, .infinity], shape: [6])
        let silu = try big.silu().toArray(), want2: [Float] = [0, 1000, -0.14227763, 2.8577223, 5.985164, .infinity]
        for (a, b) in zip(silu, want2) { XCTAssertTrue(a == b || Swift.abs(a - b) <= 1e-6 * Swift.max(1, Swift.abs(b)), "silu \(silu)") }
        XCTAssertEqual(try big.hardswish().toArray(), [0, 1000, 0, 3, 6, .infinity])
        XCTAssertEqual(try big.relu6().toArray(), [0, 6, 0, 3, 6, 6])
    }

    func testUnbatchedConvAndMaxPoolNaN() throws {
        let x = try Tensor.randn([3, 6, 6], generator: Generator(seed: 5))
        let w = try Tensor.randn([2, 3, 3, 3], generator: Generator(seed: 6))
        let y3 = try conv2d(x, w, padding: [1])
        let y4 = try conv2d(x.reshape([1, 3, 6, 6]), w, padding: [1])
        XCTAssertEqual(y3.shape, [2, 6, 6])
        XCTAssertEqual(y3.toArray(), y4.toArray())
        let z = try Tensor([1, .nan, 3, 4], shape: [1, 1, 2, 2])
        let m = try maxPool2d(z, kernel: [2])
        XCTAssertTrue(m.data[0].isNaN, "NaN propagates through max pooling like PyTorch: \(m.toArray()) from \(z.toArray())")
    }

    func testResultsIndependentOfThreadCount() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        func run() throws -> [Float] {
            var all: [Float] = []
            // 13x13 maps take the phase-split depthwise path, 5x5 maps the channel-blocked one.
            for (side, c) in [(13, 8), (5, 19)] {
                let x = try Tensor.randn([4, c, side, side], generator: Generator(seed: 1)).requiringGrad()
                let w = try Tensor.randn([c, 1, 3, 3], generator: Generator(seed: 2)).requiringGrad()
                let h = try conv2d(x, w, padding: [1], groups: c)
                let y = try batchNorm2d(h, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
                try (y * y).sum().backward()
                all += y.toArray() + x.grad!.toArray() + w.grad!.toArray()
            }
            return all
        }
        try Runtime.setThreads(1)
        let a = try run()
        try Runtime.setThreads(2)
        XCTAssertEqual(a, try run())
    }

    /// Activations whose streams exceed the cache write with streaming stores; they give the same
    /// bits as ordinary stores, at 1 and 2 threads, with ragged tails, in place, and on an
    /// unaligned output (which takes ordinary stores).
    func testStreamingStoresGiveTheSameResults() throws {
        let savedThreads = Runtime.threads, savedBytes = streamingFootprintBytes
        defer { try? Runtime.setThreads(savedThreads); streamingFootprintBytes = savedBytes }
        XCTAssertGreaterThanOrEqual(lastLevelCacheBytes(), 1 << 20, "the last-level cache size read from sysfs")
        // 3 x 7 x 1901 = 39921 floats: two runs at 2 threads, neither a multiple of 32 floats.
        let x = try Tensor.randn([3, 7, 1901], generator: Generator(seed: 4)).mul(4)
        x.data[5] = .nan; x.data[6] = 6; x.data[7] = 0; x.data[8] = -3
        let dy = try Tensor.randn(x.shape, generator: Generator(seed: 5))
        // (output, x, dy, count); the forwards ignore dy.
        typealias Kernel = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void
        let kernels: [(String, Kernel)] = [
            ("relu6", { y, x, _, n in relu6Forward(y, x, count: n) }),
            ("relu6 backward", { dx, x, dy, n in relu6Backward(dx, dy, x, count: n) }),
            ("silu", { y, x, _, n in siluForward(y, x, count: n) }),
            ("silu backward", { dx, x, dy, n in siluBackward(dx, dy, x, count: n) }),
            ("hardswish backward", { dx, x, dy, n in hardswishBackward(dx, dy, x, count: n) }),
        ]
        func run(offset: Int) -> [[UInt32]] {
            kernels.map { _, kernel in
                // 64-byte aligned, as tensor storage is: offset 0 takes the streaming stores.
                let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 * (x.count + 8), alignment: 64)
                defer { raw.deallocate() }
                let out = raw.bindMemory(to: Float.self, capacity: x.count + 8)
                kernel(out + offset, x.data, dy.data, x.count)
                return (0..<x.count).map { out[offset + $0].bitPattern }
            }
        }
        for threads in [1, 2] {
            try Runtime.setThreads(threads)
            streamingFootprintBytes = Int.max
            let cached = run(offset: 0)
            streamingFootprintBytes = 0
            let streamed = run(offset: 0), unaligned = run(offset: 1)
            // The first differing index (the arrays are 40K long: too long for a failure message).
            func mismatch(_ a: [UInt32], _ b: [UInt32]) -> Int? { a.indices.first { a[$0] != b[$0] } }
            for (k, (name, _)) in kernels.enumerated() {
                XCTAssertNil(mismatch(cached[k], streamed[k]), "\(name) at \(threads) threads: streaming stores")
                XCTAssertNil(mismatch(cached[k], unaligned[k]), "\(name) at \(threads) threads: unaligned output")
            }
            // In place (relu6_ and silu_ pass y == x).
            let a = try x.clone(), b = try x.clone()
            streamingFootprintBytes = Int.max
            try a.relu6_(); try a.silu_()
            streamingFootprintBytes = 0
            try b.relu6_(); try b.silu_()
            XCTAssertNil(mismatch(a.toArray().map(\.bitPattern), b.toArray().map(\.bitPattern)), "in place at \(threads) threads")
            // Batch norm's output and gradients (plain, and with relu6 / silu fused), eval and
            // training; planes of 16 floats stream, planes of 15 (ragged) take ordinary stores.
            for shape in [[3, 5, 4, 4], [3, 5, 3, 5]] {
                let xb = try Tensor.randn(shape, generator: Generator(seed: 6)).mul(3)
                let w = try Tensor.randn([5], generator: Generator(seed: 7)), bb = try Tensor.randn([5], generator: Generator(seed: 8))
                let rm = try Tensor.randn([5], generator: Generator(seed: 9)), rv = try Tensor.rand([5], generator: Generator(seed: 10)).add(0.5)
                let dyb = try Tensor.randn(shape, generator: Generator(seed: 11))
                // Outputs, and in training the gradients of x, weight and bias.
                func outputs() throws -> [UInt32] {
                    var all: [Float] = []
                    for activation: FusedActivation? in [nil, .relu6, .silu] {
                        for training in [false, true] {
                            let xg = try xb.clone().requiringGrad(), wg = try w.clone().requiringGrad(), bg = try bb.clone().requiringGrad()
                            let y = try batchNorm2d(xg, runningMean: rm.clone(), runningVar: rv.clone(), weight: wg, bias: bg,
                                                    training: training, activation: activation)
                            try (y * dyb).sum().backward()
                            all += y.toArray() + xg.grad!.toArray() + wg.grad!.toArray() + bg.grad!.toArray()
                        }
                    }
                    return all.map(\.bitPattern)
                }
                streamingFootprintBytes = Int.max
                let cachedBN = try outputs()
                streamingFootprintBytes = 0
                XCTAssertNil(mismatch(cachedBN, try outputs()), "batch norm \(shape) at \(threads) threads")
            }
        }
    }

    /// The small-plane depthwise forward (3x3 maps under 3x3 and 5x5 kernels sum over input pixels) gives
    /// the bits of the K-tap sliding-window kernel, which adds the padding taps' zeros in the same
    /// order. Strided or dilated convolutions go through `blockedForwardPixels`, whose last outputs
    /// sum in two chains: there the two agree to rounding.
    func testSmallPlaneDepthwiseMatchesTapKernel() throws {
        let saved = DepthwiseKernel.smallPlane
        defer { DepthwiseKernel.smallPlane = saved }
        let cases: [(x: [Int], w: [Int], stride: Int, padding: Int, dilation: Int)] = [
            ([3, 20, 3, 3], [20, 1, 5, 5], 1, 2, 1),    // EfficientNet-B0 stage 6 at 96x96: 2.5 channel blocks
            ([2, 12, 3, 3], [12, 1, 3, 3], 1, 1, 1),    // stage 7: as many pixels as taps
            ([2, 8, 2, 3], [8, 1, 5, 5], 1, 2, 1),      // fewer than 8 pixels
            ([2, 9, 4, 4], [9, 1, 5, 5], 2, 2, 1),      // stride 2: 2x2 outputs
            ([1, 8, 2, 3], [8, 1, 3, 3], 1, 2, 2),      // dilation 2
        ]
        for c in cases {
            XCTAssertTrue(isSmallPlaneDepthwise(try ConvGeometry(input: c.x, weight: c.w, bias: nil, stride: [c.stride], padding: [c.padding],
                                                                 dilation: [c.dilation], groups: c.x[1])), "\(c.x) takes the small-plane path")
            let x = try Tensor.randn(c.x, generator: Generator(seed: 1))
            let w = try Tensor.randn(c.w, generator: Generator(seed: 2)), b = try Tensor.randn([c.w[0]], generator: Generator(seed: 3))
            func run() throws -> [UInt32] {
                try conv2d(x, w, bias: b, stride: [c.stride], padding: [c.padding], dilation: [c.dilation], groups: c.x[1]).toArray().map(\.bitPattern)
            }
            DepthwiseKernel.smallPlane = false
            let taps = try run()
            DepthwiseKernel.smallPlane = true
            let small = try run(), label = "\(c.x) under \(c.w), stride \(c.stride), dilation \(c.dilation)"
            if c.stride == 1 && c.dilation == 1 {
                XCTAssertEqual(taps, small, label)
            } else {
                for (a, b) in zip(taps, small) {
                    XCTAssertEqual(Float(bitPattern: a), Float(bitPattern: b), accuracy: 1e-5, label)
                }
            }
        }
    }

    /// The direct stem forward against im2col + sgemm (`StemKernel.direct` off) on the same
    /// inputs, at 1 and 2 threads: results agree to float rounding (the sums run in another order;
    /// measured 1.5e-7 to 3.8e-7 of the largest output).
    func testStemConvMatchesIm2col() throws {
        let saved = (StemKernel.direct, Runtime.threads)
        defer { StemKernel.direct = saved.0; try? Runtime.setThreads(saved.1) }
        let cases: [(x: [Int], w: [Int], stride: Int, padding: [Int], bias: Bool)] = [
            ([3, 3, 96, 96], [32, 3, 3, 3], 2, [1], false),         // the MobileNetV2 / EfficientNet-B0 stem
            ([2, 3, 21, 45], [7, 3, 3, 3], 2, [1], true),           // 23 outputs a row, 7 = 4 + 3 channels
            ([2, 4, 9, 30], [9, 4, 5, 5], 1, [2, 1, 2, 1], true),   // stride 1, 4 channels, asymmetric padding
            ([1, 1, 12, 8], [3, 1, 3, 3], 1, [0], false),           // rows of exactly 6 outputs: not taken
        ]
        for threads in [1, 2] {
            try Runtime.setThreads(threads)
            for c in cases {
                let g = try ConvGeometry(input: c.x, weight: c.w, bias: nil, stride: [c.stride], padding: c.padding, dilation: [1], groups: 1)
                XCTAssertEqual(isStemConv(g), g.ow >= 8, "\(c.x): rows of \(g.ow)")
                let x = try Tensor.randn(c.x, generator: Generator(seed: 1))
                let w = try Tensor.randn(c.w, generator: Generator(seed: 2))
                let b = c.bias ? try Tensor.randn([c.w[0]], generator: Generator(seed: 3)) : nil
                func run() throws -> [Float] { try conv2d(x, w, bias: b, stride: [c.stride], padding: c.padding).toArray() }
                StemKernel.direct = false
                let reference = try run()
                StemKernel.direct = true
                let direct = try run()
                XCTAssertEqual(reference.count, direct.count)
                let scale = reference.map(abs).max() ?? 1
                for (i, (a, d)) in zip(reference, direct).enumerated() where abs(a - d) > 1e-6 * scale {
                    XCTFail("\(c.x) under \(c.w), \(threads) threads: output \(i) is \(d), im2col gives \(a)"); break
                }
            }
        }
    }
}
