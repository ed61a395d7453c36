import XCTest
import SSKDTensor

/// Reductions over various axes, with and without keepdim: gradients and forward values.
final class ReduceGradTests: XCTestCase {
    let axesCases: [[Int]] = [[], [0], [1], [2], [-1], [0, 2], [1, 2], [0, 1, 2], [2, 0]]

    func testSumMeanGrad() {
        let x = leaf([2, 3, 4], seed: 100)
        for axes in axesCases {
            for keep in [false, true] {
                assertGradcheck([x], "sum \(axes) keep \(keep)") { try $0[0].sum(axes, keepdim: keep) }
                assertGradcheck([x], "mean \(axes) keep \(keep)") { try $0[0].mean(axes, keepdim: keep) }
            }
        }
        assertGradcheck([x], "sum int axis") { try $0[0].sum(1) }
        assertGradcheck([x], "mean int axis keepdim") { try $0[0].mean(-2, keepdim: true) }
    }

    func testMaxMinGrad() {
        let x = distinctLeaf([2, 3, 4], seed: 101)
        for axes in axesCases {
            for keep in [false, true] {
                assertGradcheck([x], "max \(axes) keep \(keep)") { try $0[0].max(axes, keepdim: keep) }
                assertGradcheck([x], "min \(axes) keep \(keep)") { try $0[0].min(axes, keepdim: keep) }
            }
        }
    }

    func testVarianceStdGrad() {
        let x = leaf([3, 4, 2], seed: 102)
        for axes in axesCases {
            for keep in [false, true] {
                for c in [0, 1] {
                    assertGradcheck([x], "var \(axes) keep \(keep) c \(c)") { try $0[0].variance(axes, correction: c, keepdim: keep) }
                }
                assertGradcheck([x], "std \(axes) keep \(keep)") { try $0[0].std(axes, keepdim: keep) }
            }
        }
    }

    func testSumToGrad() throws {
        let x = leaf([2, 3, 4], seed: 104)
        for target in [[3, 4], [1, 4], [3, 1], [2, 1, 4], [1], [], [2, 3, 4]] {
            assertGradcheck([x], "sum_to \(target)") { try $0[0].sumTo(target) }
            XCTAssertEqual(try x.sumTo(target).shape, target)
        }
        assertTensorError("sum_to") { try x.sumTo([2, 4]) }
        assertTensorError("sum_to") { try x.sumTo([5, 2, 3, 4]) }
    }

    func testReductionsOnScalarTensors() throws {
        let s = leaf([], seed: 103)
        assertGradcheck([s], "sum 0-dim") { try $0[0].sum() }
        assertGradcheck([s], "sum 0-dim dim 0") { try $0[0].sum(0) }
        assertGradcheck([s], "max 0-dim dim -1") { try $0[0].max(-1) }
        assertGradcheck([s], "mean 0-dim") { try $0[0].mean([0], keepdim: true) }
        XCTAssertEqual(try s.sum(0).shape, [])
        XCTAssertEqual(try s.argmax(0).item(), 0)
    }

    func testForwardValues() throws {
        let x = try Tensor([1, 5, 3, 4, 2, 6], shape: [2, 3])
        assertClose(try x.sum(), [21], shape: [])
        assertClose(try x.sum(0), [5, 7, 9], shape: [3])
        assertClose(try x.sum(1, keepdim: true), [9, 12], shape: [2, 1])
        assertClose(try x.sum([0, 1], keepdim: true), [21], shape: [1, 1])
        assertClose(try x.mean(0), [2.5, 3.5, 4.5])
        assertClose(try x.max(1), [5, 6])
        assertClose(try x.min(0, keepdim: true), [1, 2, 3], shape: [1, 3])
        assertClose(try x.max(), [6], shape: [])
        assertClose(try x.argmax(1), [1, 2], shape: [2])
        assertClose(try x.argmin(0, keepdim: true), [0, 1, 0], shape: [1, 3])
        assertClose(try x.argmax(), [5], shape: [])
        assertClose(try x.argmin(keepdim: true), [0], shape: [1, 1])
        assertClose(try x.variance(1), [4, 4])
        assertClose(try x.variance(1, correction: 0), [8.0 / 3, 8.0 / 3])
        assertClose(try x.std(), [Float(3.5).squareRoot()])
        // Ties: argmax takes the first; the max gradient is shared between tied entries.
        let t = try Tensor([2, 7, 7, 1]).requiringGrad()
        XCTAssertEqual(try t.argmax().item(), 1)
        try t.max().backward()
        assertClose(t.grad!, [0, 0.5, 0.5, 0])
        // NaN propagates through max/min (and wins argmax), like PyTorch.
        let n = try Tensor([1, .nan, 3, 2])
        XCTAssertTrue(try n.max().item().isNaN)
        XCTAssertTrue(try n.min().item().isNaN)
        XCTAssertTrue(try n.reshape([2, 2]).max(1).toArray()[0].isNaN)
        XCTAssertEqual(try n.argmax().item(), 1)
        XCTAssertEqual(try n.reshape([2, 2]).argmax(1).toArray(), [1, 0])
        // Reductions over a zero-size dim.
        let e = try Tensor.zeros([0, 3])
        assertClose(try e.sum(0), [0, 0, 0], shape: [3])
        XCTAssertEqual(try e.sum(1).shape, [0])
    }

    func testLargeReductionsAreAccurate() throws {
        // A naive running Float sum of 2M tenths ends thousands off (near 200000 the spacing of
        // floats is 1/64); the blocked partials keep it within a few units.
        let ones = try Tensor.ones([2_000_000])
        XCTAssertEqual(try ones.sum().item(), 2_000_000)
        let tenths = try Tensor.full([2_000_000], 0.1)
        XCTAssertEqual(Double(try tenths.sum().item()), 200_000, accuracy: 2)
        XCTAssertEqual(Double(try tenths.mean().item()), 0.1, accuracy: 1e-5)
        let x = try Tensor.arange(0, 300_000).reshape([3, 100_000])
        assertClose(try x.max(1), [99_999, 199_999, 299_999])
        assertClose(try x.min(1), [0, 100_000, 200_000])
    }
}
