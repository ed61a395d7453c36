import XCTest
@testable import SSKDTensor

/// The separable max / avg pooling kernels (SIMD interior columns, scalar edges) against the
/// direct window-by-window kernels, over geometries where the vector blocks run (wide rows, odd
/// and even widths, overlapping last blocks) and where they don't, with padding, ceil mode,
/// count_include_pad false, ties, NaN and -infinity.
final class PoolingFastPathTests: XCTestCase {
    /// (H, W) of the planes: short rows (scalar only), rows with one or several 8-column blocks.
    let sizes = [(5, 7), (9, 18), (11, 19), (6, 24), (16, 33), (7, 40)]

    /// Every kernel 1...4 (square and two oblong), stride 1, 2, 3 and (2, 1), every legal padding,
    /// floor and ceil mode; geometries whose output would be empty are skipped.
    func geometries(planes: Int, _ h: Int, _ w: Int) -> [PoolGeometry] {
        var out: [PoolGeometry] = []
        for k in [[1, 1], [2, 2], [3, 3], [4, 4], [2, 3], [3, 1]] {
            for s in [[1, 1], [2, 2], [3, 3], [2, 1]] {
                for ph in 0...(k[0] / 2) {
                    for pw in 0...(k[1] / 2) {
                        for ceil in [false, true] {
                            if let g = try? PoolGeometry(op: "test", input: [planes, h, w], kernel: k, stride: s, padding: [ph, pw],
                                                         dilation: [1], ceilMode: ceil) { out.append(g) }
                        }
                    }
                }
            }
        }
        return out
    }

    func describe(_ g: PoolGeometry) -> String {
        "[\(g.planes), \(g.h), \(g.w)] k(\(g.kh), \(g.kw)) s(\(g.sh), \(g.sw)) p(\(g.ph), \(g.pw)) -> [\(g.oh), \(g.ow)]"
    }

    func testVectorColumnsRunOnWideRows() throws {
        // The hot geometry (kernel 3, stride 2, padding 1) on 48 columns: all but the first column
        // go through 8-wide blocks, the last block overlapping the one before.
        let g = try PoolGeometry(op: "test", input: [1, 48, 48], kernel: [3], stride: [2], padding: [1], dilation: [1], ceilMode: false)
        XCTAssertEqual(poolVectorColumns(g), 1..<24)
        let narrow = try PoolGeometry(op: "test", input: [1, 9, 9], kernel: [3], stride: [2], padding: [1], dilation: [1], ceilMode: false)
        XCTAssertTrue(poolVectorColumns(narrow).isEmpty)
        let stride3 = try PoolGeometry(op: "test", input: [1, 9, 90], kernel: [3], stride: [3], padding: [1], dilation: [1], ceilMode: false)
        XCTAssertTrue(poolVectorColumns(stride3).isEmpty, "stride 3 runs the scalar loop")
    }

    // MARK: max_pool2d

    /// Small integers (many ties), signed zeros, about 4% NaN and 4% -infinity.
    func tiesAndNaNs(_ n: Int, seed: UInt64) -> [Float] {
        let gen = Generator(seed: seed)
        return (0..<n).map { _ in
            let u = gen.nextFloat()
            if u < 0.04 { return .nan }
            if u < 0.08 { return -.infinity }
            if u < 0.12 { return -0.0 }
            return Float(Int(gen.nextFloat() * 5)) - 2
        }
    }

    func assertMaxPoolMatchesDirect(_ x: [Float], _ g: PoolGeometry, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let n = g.planes * g.oh * g.ow
        var (y0, y1) = ([Float](repeating: 7, count: n), [Float](repeating: 7, count: n))
        var (i0, i1) = ([Int32](repeating: -1, count: n), [Int32](repeating: -1, count: n))
        x.withUnsafeBufferPointer { xb in
            maxPool2dForwardDirect(out: &y0, indices: &i0, input: xb.baseAddress!, g)
            maxPool2dForwardSeparable(out: &y1, indices: &i1, input: xb.baseAddress!, g)
        }
        for e in 0..<n where y0[e].bitPattern != y1[e].bitPattern || i0[e] != i1[e] {
            XCTFail("\(what) \(describe(g)): output \(e) is \(y1[e]) at \(i1[e]), direct scan gives \(y0[e]) at \(i0[e])", file: file, line: line)
            return
        }
    }

    func testMaxPoolSeparableMatchesDirectScan() {
        var checked = 0
        for (h, w) in sizes {
            for g in geometries(planes: 3, h, w) {
                let x = tiesAndNaNs(3 * h * w, seed: UInt64(checked))
                assertMaxPoolMatchesDirect(x, g, "ties / NaN / -inf")
                // Distinct values: the maximum's position is unique.
                let perm = Generator(seed: UInt64(checked) + 1000).permutation(3 * h * w)
                assertMaxPoolMatchesDirect(perm.map { Float($0) - Float(h * w) }, g, "distinct")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 500)
    }

    func testMaxPoolFirstNaNAndFirstTieWin() throws {
        // One plane, 4 x 20, kernel 3 stride 2 padding 1: output columns 1...8 are a vector block.
        var x = [Float](repeating: 0, count: 4 * 20)
        x[1 * 20 + 5] = 3; x[0 * 20 + 6] = 3            // window (r 0 / 1, q 3): rows 0-1 / 1-3, cols 5-7
        x[1 * 20 + 9] = .nan; x[2 * 20 + 10] = .nan     // window (r 1, q 5): rows 1-3, cols 9-11
        x[2 * 20 + 13] = .nan; x[2 * 20 + 14] = 9      // window (r 1, q 7): rows 1-3, cols 13-15
        let g = try PoolGeometry(op: "test", input: [1, 4, 20], kernel: [3], stride: [2], padding: [1], dilation: [1], ceilMode: false)
        XCTAssertEqual(poolVectorColumns(g), 1..<10)
        assertMaxPoolMatchesDirect(x, g, "hand-made")
        var y = [Float](repeating: 0, count: 20), ix = [Int32](repeating: -1, count: 20)
        maxPool2dForward(out: &y, indices: &ix, input: x, g)
        XCTAssertEqual(y[3], 3); XCTAssertEqual(ix[3], 0 * 20 + 6, "row-major scan: (0, 6) comes before (1, 5)")
        XCTAssertEqual(y[10 + 3], 3); XCTAssertEqual(ix[10 + 3], 1 * 20 + 5, "rows 1...3: the 3 at (1, 5) is first")
        XCTAssertTrue(y[5].isNaN); XCTAssertEqual(ix[5], 1 * 20 + 9)
        XCTAssertTrue(y[10 + 5].isNaN); XCTAssertEqual(ix[10 + 5], 1 * 20 + 9, "the first NaN of the window wins")
        XCTAssertTrue(y[10 + 7].isNaN); XCTAssertEqual(ix[10 + 7], 2 * 20 + 13, "a NaN beats a later 9")
        XCTAssertEqual(y[0], 0); XCTAssertEqual(ix[0], 0, "all-zero window: the first zero")
        // The public op routes through the same kernel.
        let t = try maxPool2d(try Tensor(x, shape: [1, 1, 4, 20]), kernel: [3], stride: [2], padding: [1])
        XCTAssertEqual(t.shape, [1, 1, 2, 10])
        XCTAssertEqual(t.toArray().map(\.bitPattern), y.map(\.bitPattern))
    }

    func testMaxPoolBackwardScattersPerPlane() throws {
        for (h, w) in sizes {
            for g in geometries(planes: 2, h, w) {
                let x = tiesAndNaNs(2 * h * w, seed: UInt64(h * 100 + w))
                let n = g.planes * g.oh * g.ow
                var y = [Float](repeating: 0, count: n), ix = [Int32](repeating: 0, count: n)
                maxPool2dForward(out: &y, indices: &ix, input: x, g)
                let dy = (0..<n).map { Float($0 % 7) - 3 }
                var expected = [Float](repeating: 0, count: x.count)
                for e in 0..<n { expected[(e / (g.oh * g.ow)) * h * w + Int(ix[e])] += dy[e] }
                var dx = [Float](repeating: .nan, count: x.count)
                maxPool2dBackward(dinput: &dx, dout: dy, indices: ix, g)
                XCTAssertEqual(dx, expected, describe(g))
            }
        }
    }

    func testMaxPoolGradcheckOnVectorPath() throws {
        let gen = Generator(seed: 5)
        for (shape, k, s, p, ceil) in [([1, 2, 5, 21], [3], [2], [1], false), ([1, 1, 6, 20], [3], [2], [1], true),
                                       ([2, 1, 4, 12], [3], [1], [1], false), ([1, 2, 5, 22], [2], [2], [0], true),
                                       ([1, 1, 5, 25], [4], [2], [2], false)] {
            let n = shape.reduce(1, *)
            let x = try Tensor(gen.permutation(n).map { Float($0) * 0.05 }, shape: shape).requiringGrad()
            assertGradcheck([x], "max_pool2d \(shape) k\(k) s\(s) p\(p) ceil \(ceil)") { t in
                try maxPool2d(t[0], kernel: k, stride: s, padding: p, ceilMode: ceil)
            }
        }
    }

    // MARK: avg_pool2d

    /// |a - e| <= 1e-6 * |e| + 1e-7 elementwise.
    func assertClose(_ a: [Float], _ e: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for i in a.indices where !(abs(a[i] - e[i]) <= 1e-6 * abs(e[i]) + 1e-7) {
            XCTFail("\(what): element \(i) is \(a[i]), reference \(e[i])", file: file, line: line)
            return
        }
    }

    func testAvgPoolSeparableMatchesReference() {
        var checked = 0
        for (h, w) in sizes {
            for g in geometries(planes: 3, h, w) {
                let gen = Generator(seed: UInt64(checked))
                let x = (0..<(3 * h * w)).map { _ in gen.nextNormal() }
                let dy = (0..<(g.planes * g.oh * g.ow)).map { _ in gen.nextNormal() }
                for cip in [true, false] {
                    var (y0, y1) = ([Float](repeating: 7, count: dy.count), [Float](repeating: 7, count: dy.count))
                    avgPool2dForwardReference(out: &y0, input: x, g, countIncludePad: cip)
                    avgPool2dForward(out: &y1, input: x, g, countIncludePad: cip)
                    assertClose(y1, y0, "forward \(describe(g)) count_include_pad \(cip)")
                    var (dx0, dx1) = ([Float](repeating: 7, count: x.count), [Float](repeating: 7, count: x.count))
                    avgPool2dBackwardReference(dinput: &dx0, dout: dy, g, countIncludePad: cip)
                    avgPool2dBackward(dinput: &dx1, dout: dy, g, countIncludePad: cip)
                    assertClose(dx1, dx0, "backward \(describe(g)) count_include_pad \(cip)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 500)
    }

    func testAvgPoolGradcheckOnVectorPath() throws {
        let gen = Generator(seed: 6)
        for (shape, k, s, p, ceil, cip) in [([1, 2, 5, 21], [3], [2], [1], false, true), ([1, 1, 6, 20], [3], [2], [1], true, false),
                                            ([2, 1, 4, 12], [3], [1], [1], false, false), ([1, 2, 5, 22], [2], [2], [0], true, true),
                                            ([1, 1, 5, 25], [4], [2], [2], true, false), ([1, 1, 3, 17], [1], [2], [0], false, true)] {
            let x = try Tensor.randn(shape, generator: gen).requiringGrad()
            assertGradcheck([x], "avg_pool2d \(shape) k\(k) s\(s) p\(p) ceil \(ceil) cip \(cip)") { t in
                try avgPool2d(t[0], kernel: k, stride: s, padding: p, ceilMode: ceil, countIncludePad: cip)
            }
        }
    }

    /// Global average pooling reads four quarters of a thread's planes side by side
    /// (`lanePartials4`), eight planes at a time, then the rest one group or plane at a time. Each
    /// plane must get the bits it gets alone (`[1, 1, h, w]` takes the one-plane path), at 1 and 2
    /// threads, and the mean in Double to float rounding.
    func testGlobalAvgPoolQuartersMatchOnePlaneAtATime() throws {
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        // (planes as N x C, H, W): 16 floats a plane exactly; ragged tails of 1, 4 and 1 floats
        // after whole blocks; leftover groups of 8 and single planes after the quarters.
        let shapes = [[4, 9, 4, 4], [5, 13, 5, 5], [2, 40, 6, 6], [3, 50, 7, 7], [2, 70, 24, 24]]
        for shape in shapes {
            let (planes, hw) = (shape[0] * shape[1], shape[2] * shape[3])
            let x = try Tensor.randn(shape, generator: Generator(seed: UInt64(planes)))
            let values = x.toArray()
            var alone = [Float](), reference = [Double]()
            for p in 0..<planes {
                let plane = Array(values[(p * hw)..<((p + 1) * hw)])
                alone.append(try adaptiveAvgPool2d(try Tensor(plane, shape: [1, 1, shape[2], shape[3]]), outputSize: [1]).toArray()[0])
                reference.append(plane.reduce(0.0) { $0 + Double($1) } / Double(hw))
            }
            for threads in [1, 2] {
                try Runtime.setThreads(threads)
                let y = try adaptiveAvgPool2d(x, outputSize: [1]).toArray()
                XCTAssertEqual(y.count, planes)
                for p in 0..<planes where y[p] != alone[p] || abs(Double(y[p]) - reference[p]) > 1e-5 {
                    XCTFail("\(shape), \(threads) threads: plane \(p) is \(y[p]), alone \(alone[p]), in Double \(reference[p])"); break
                }
            }
        }
    }
}
