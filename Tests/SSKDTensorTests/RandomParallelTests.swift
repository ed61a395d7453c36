import XCTest
import SSKDTensor

/// Seeded generators, distribution moments, and thread-count independence of the kernels.
final class RandomParallelTests: XCTestCase {
    func testSameSeedSameNumbers() throws {
        let a = try Tensor.randn([1000], generator: Generator(seed: 42))
        let b = try Tensor.randn([1000], generator: Generator(seed: 42))
        let c = try Tensor.randn([1000], generator: Generator(seed: 43))
        XCTAssertEqual(a.toArray(), b.toArray())
        XCTAssertNotEqual(a.toArray(), c.toArray())
        Generator.manualSeed(7)
        let r1 = try Tensor.rand([10]).toArray()
        Generator.manualSeed(7)
        XCTAssertEqual(try Tensor.rand([10]).toArray(), r1)
    }

    func testGeneratorStateRoundTrip() throws {
        let g = Generator(seed: 9)
        _ = g.nextNormal()  // leaves a spare normal cached
        let saved = g.state
        let expected = (0..<5).map { _ in g.nextNormal() }
        let h = Generator(seed: 0)
        try h.setState(saved)
        XCTAssertEqual((0..<5).map { _ in h.nextNormal() }, expected)
    }

    func testDerivedAndIntegers() {
        let p = Generator(seed: 3).permutation(50)
        XCTAssertEqual(p.sorted(), Array(0..<50))
        XCTAssertNotEqual(p, Array(0..<50))
        let g = Generator(seed: 4)
        for _ in 0..<1000 { let v = g.nextInt(7); XCTAssertTrue(v >= 0 && v < 7) }
        let d1 = Generator.derived(seed: 1, 2).nextUInt64(), d2 = Generator.derived(seed: 1, 3).nextUInt64()
        XCTAssertNotEqual(d1, d2)
        XCTAssertEqual(d1, Generator.derived(seed: 1, 2).nextUInt64())
    }

    func testMoments() throws {
        let n = 100_000
        func moments(_ t: Tensor) throws -> (Float, Float) { (try t.mean().item(), try t.variance().item()) }
        let (um, uv) = try moments(Tensor.rand([n], generator: Generator(seed: 1)))
        XCTAssertEqual(um, 0.5, accuracy: 0.01)
        XCTAssertEqual(uv, 1.0 / 12, accuracy: 0.003)
        let (nm, nv) = try moments(Tensor.randn([n], generator: Generator(seed: 2)))
        XCTAssertEqual(nm, 0, accuracy: 0.02)
        XCTAssertEqual(nv, 1, accuracy: 0.03)
        let (gm, gv) = try moments(Tensor.normal([n], mean: 3, std: 2, generator: Generator(seed: 3)))
        XCTAssertEqual(gm, 3, accuracy: 0.04)
        XCTAssertEqual(gv, 4, accuracy: 0.12)
        let u = try Tensor.uniform([n], low: -2, high: 6, generator: Generator(seed: 4))
        XCTAssertGreaterThanOrEqual(try u.min().item(), -2)
        XCTAssertLessThan(try u.max().item(), 6)
        XCTAssertEqual(try u.mean().item(), 2, accuracy: 0.05)
        // Normal tails: about 4.55% beyond 2 sigma.
        let z = try Tensor.randn([n], generator: Generator(seed: 5))
        let tail = try z.abs().gt(2).mean().item()
        XCTAssertEqual(tail, 0.0455, accuracy: 0.004)
    }

    func testResultsDoNotDependOnThreadCount() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        let n = 1 << 21  // > 1M elements: several parallel chunks
        let x = try Tensor.randn([n], generator: Generator(seed: 11))
        let y = try Tensor.randn([n], generator: Generator(seed: 12))
        let m = try x.reshape([512, n / 512])
        let bias = try Tensor.randn([n / 512], generator: Generator(seed: 13))
        func compute() throws -> [[Float]] {
            [try (x + y).toArray(), try x.exp().toArray(), try (m * bias).toArray(),
             [try x.sum().item(), try x.mean().item(), try x.max().item(), try x.variance().item()],
             try m.sum(0).toArray(), try m.sum(1).toArray(), try m.max(0).toArray(),
             try m.softmax(1).toArray(), try m.logsumexp(0).toArray(), try m.t().toArray(),
             try x.reshape([64, 128, 256]).sum([0, 2]).toArray(), try x.reshape([64, 128, 256]).mean([0, 1]).toArray()]
        }
        try Runtime.setThreads(1)
        XCTAssertEqual(Runtime.threads, 1)
        let one = try compute()
        try Runtime.setThreads(2)
        let two = try compute()
        try Runtime.setThreads(3)
        let three = try compute()
        for i in one.indices {
            XCTAssertEqual(one[i], two[i], "result \(i) differs between 1 and 2 threads")
            XCTAssertEqual(one[i], three[i], "result \(i) differs between 1 and 3 threads")
        }
    }

    /// sgemm splits a large product across our threads (OpenBLAS itself runs single-threaded).
    /// OpenBLAS's micro-kernels round an element differently at a block's edge, so thread counts
    /// agree to float rounding, and a repeated run at the same count agrees bit for bit. Both split
    /// directions, all four transpose cases, a ragged split, alpha and accumulation into C.
    func testMatmulAndConvAgreeAcrossThreadCounts() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        let g = Generator(seed: 21)
        let wide = try Tensor.randn([40, 4601], generator: g)        // n split (ragged)
        let w = try Tensor.randn([240, 40], generator: g)
        let tall = try Tensor.randn([1000, 72], generator: g)        // m split (n small)
        let r = try Tensor.randn([72, 24], generator: g)
        let x = try Tensor.randn([8, 24, 12, 12], generator: g)
        let cw = try Tensor.randn([96, 24, 1, 1], generator: g)
        func compute() throws -> [[Float]] {
            var out = [try w.matmul(wide).toArray(), try tall.matmul(r).toArray()]
            // Transposed operands straight through sgemm, with beta = 1.
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (m, n, k) = (130, 300, 50)
                let a = try Tensor.randn([m * k], generator: Generator(seed: 5)), b = try Tensor.randn([k * n], generator: Generator(seed: 6))
                let c = try Tensor.randn([m * n], generator: Generator(seed: 7))
                sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.data, lda: ta ? m : k, b: b.data, ldb: tb ? k : n,
                      beta: 1, c: c.data, ldc: n)
                out.append(c.toArray())
            }
            let xg = x.detach(); xg.requiresGrad = true
            let wg = cw.detach(); wg.requiresGrad = true
            let y = try conv2d(xg, wg)
            try (y * y).sum().backward()
            out += [y.toArray(), xg.grad!.toArray(), wg.grad!.toArray()]
            return out
        }
        try Runtime.setThreads(1)
        let one = try compute()
        try Runtime.setThreads(2)
        let two = try compute()
        let twoAgain = try compute()
        try Runtime.setThreads(3)
        let three = try compute()
        for i in one.indices {
            let scale = one[i].map { Swift.abs($0) }.max() ?? 1
            let d2 = zip(one[i], two[i]).map { Swift.abs($0 - $1) }.max() ?? 0
            let d3 = zip(one[i], three[i]).map { Swift.abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(Swift.max(d2, d3), 1e-5 * scale, "result \(i) differs between 1 and 2 / 3 threads by \(d2) / \(d3) (scale \(scale))")
            XCTAssertTrue(two[i] == twoAgain[i], "result \(i) differs between two runs at 2 threads")
        }
    }

    /// A parallel loop inside a parallel task runs serially in that task (no oversubscription),
    /// and the caller's thread is not left marked.
    func testNestedParallelLoopsRunSeriallyInTheirTask() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        try Runtime.setThreads(2)
        XCTAssertEqual(Runtime.availableThreads, 2)
        var inner = [Int](repeating: 0, count: 4)
        inner.withUnsafeMutableBufferPointer { out in
            parallelTasks(4) { i in
                out[i] = Runtime.availableThreads
                var chunks = 0
                parallelFor(1 << 20, grain: 1 << 10) { _ in chunks += 1 }   // unsynchronised: must be serial
                if chunks != 1 { out[i] = -chunks }
            }
        }
        XCTAssertEqual(inner, [1, 1, 1, 1])
        XCTAssertEqual(Runtime.availableThreads, 2)
    }

    /// Batch norm in training (plain and fused with silu) gives the same bits at 1, 2 and 3 threads:
    /// output, running statistics and all gradients, on planes above and below the size where the
    /// backward switches to one channel at a time.
    func testBatchNormDoesNotDependOnThreadCount() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        func run(_ shape: [Int], _ activation: FusedActivation?) throws -> [[Float]] {
            let c = shape[1]
            let x = try Tensor.randn(shape, generator: Generator(seed: 21)).requiringGrad()
            let w = try Tensor.randn([c], generator: Generator(seed: 22)).requiringGrad()
            let b = try Tensor.randn([c], generator: Generator(seed: 23)).requiringGrad()
            let rm = try Tensor.zeros([c]), rv = try Tensor.ones([c])
            let y = try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: w, bias: b, training: true, activation: activation)
            try y.backward(try Tensor.randn(shape, generator: Generator(seed: 24)))
            return [y.toArray(), rm.toArray(), rv.toArray(), x.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()]
        }
        for shape in [[3, 13, 15, 14], [5, 11, 6, 5]] {
            for activation in [nil, FusedActivation.silu] {
                var results: [[[Float]]] = []
                for threads in [1, 2, 3] {
                    try Runtime.setThreads(threads)
                    results.append(try run(shape, activation))
                }
                XCTAssertEqual(results[0], results[1], "\(shape) \(String(describing: activation)): 1 vs 2 threads")
                XCTAssertEqual(results[0], results[2], "\(shape) \(String(describing: activation)): 1 vs 3 threads")
            }
        }
    }

    /// The worker pool runs every task of every job exactly once: thousands of back-to-back jobs
    /// of 2...300 tasks, from two host threads at once (one gets the pool, the other falls back),
    /// across thread-count changes, with the caller's grad mode in every task.
    func testWorkerPoolRunsEveryTaskOnceFromConcurrentCallers() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        for threads in [3, 2, 4] {
            try Runtime.setThreads(threads)
            var failures = [Int](repeating: 0, count: 2)
            failures.withUnsafeMutableBufferPointer { failures in
                let failures = failures
                DispatchQueue.concurrentPerform(iterations: 2) { caller in
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: 300)
                    defer { hits.deallocate() }
                    var bad = 0
                    let grad = caller == 0
                    GradMode.isEnabled = grad
                    defer { GradMode.isEnabled = true }
                    for job in 0..<2000 {
                        let count = 2 + (job * 37 + caller * 11) % 299
                        hits.initialize(repeating: 0, count: count)
                        if job % 2 == 0 {
                            parallelTasks(count) { i in hits[i] += GradMode.isEnabled == grad ? 1 : 1000 }
                        } else {
                            parallelFor(count * 64, grain: 64) { r in hits[r.lowerBound / 64] += r.count == 64 && GradMode.isEnabled == grad ? 1 : 1000 }
                        }
                        for i in 0..<count where hits[i] != 1 { bad += 1 }
                    }
                    failures[caller] = bad
                }
            }
            XCTAssertEqual(failures, [0, 0], "threads \(threads)")
        }
    }

    func testCreation() throws {
        assertClose(try Tensor.arange(0, 1, step: 0.25), [0, 0.25, 0.5, 0.75], shape: [4])
        assertClose(try Tensor.arange(5, 1, step: -2), [5, 3])
        assertClose(try Tensor.arange(3), [0, 1, 2])
        assertClose(try Tensor.full([2], 7), [7, 7])
        assertClose(try Tensor.ones([2, 1]), [1, 1], shape: [2, 1])
        assertClose(try Tensor.zeros([]), [0], shape: [])
        assertClose(try Tensor.scalar(3), [3], shape: [])
        assertClose(try Tensor(rows: [[1, 2], [3, 4]]), [1, 2, 3, 4], shape: [2, 2])
        let z = try Tensor.zeros([2, 2])
        assertClose(try Tensor.zeros(like: z), [0, 0, 0, 0], shape: [2, 2])
        assertClose(try Tensor.ones(like: z), [1, 1, 1, 1])
        z.fill_(2)
        assertClose(z, [2, 2, 2, 2])
        try z.copy_(from: Tensor([1, 2, 3, 4], shape: [2, 2]))
        assertClose(z, [1, 2, 3, 4])
        XCTAssertEqual(try z.value(at: [1, 1]), 4)
    }

    func testMemoryStatsTrackLiveBytes() throws {
        let before = MemoryStats.liveBytes
        var t: Tensor? = try Tensor.zeros([1 << 16])
        XCTAssertGreaterThanOrEqual(MemoryStats.liveBytes - before, 4 << 16)
        XCTAssertGreaterThanOrEqual(MemoryStats.peakBytes, MemoryStats.liveBytes)
        _ = t
        t = nil
        XCTAssertLessThan(MemoryStats.liveBytes - before, 4 << 16)
    }
}
