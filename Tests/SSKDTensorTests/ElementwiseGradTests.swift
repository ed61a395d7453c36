import Foundation
import XCTest
import SSKDTensor

/// Finite-difference checks of every elementwise op, including broadcasting and scalar operands.
final class ElementwiseGradTests: XCTestCase {
    /// Shape pairs covering equal shapes, [3,1]+[1,4], [2,3,4]*[4], a 0-dim operand, leading-dim broadcast.
    let pairs: [([Int], [Int])] = [([2, 3], [2, 3]), ([3, 1], [1, 4]), ([2, 3, 4], [4]), ([2, 3], []), ([], [3, 2]), ([2, 1, 3], [4, 1])]

    func testAddSubMulGrad() {
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = leaf(sa, seed: UInt64(10 + i)), b = leaf(sb, seed: UInt64(20 + i))
            assertGradcheck([a, b], "add \(sa) \(sb)") { try $0[0] + $0[1] }
            assertGradcheck([a, b], "sub \(sa) \(sb)") { try $0[0] - $0[1] }
            assertGradcheck([a, b], "mul \(sa) \(sb)") { try $0[0] * $0[1] }
        }
    }

    func testDivGrad() {
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = leaf(sa, seed: UInt64(30 + i)), b = leaf(sb, seed: UInt64(40 + i), low: 0.5, high: 2)
            assertGradcheck([a, b], "div \(sa) \(sb)") { try $0[0] / $0[1] }
        }
    }

    func testPowTensorGrad() {
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = leaf(sa, seed: UInt64(50 + i), low: 0.5, high: 2), b = leaf(sb, seed: UInt64(60 + i), low: -1.5, high: 2.5)
            assertGradcheck([a, b], "pow \(sa) \(sb)") { try $0[0].pow($0[1]) }
        }
    }

    func testOnlyOneOperandRequiresGrad() {
        let a = leaf([3, 1], seed: 1), b = try! Tensor.uniform([1, 4], low: 0.5, high: 1.5, generator: Generator(seed: 2))
        assertGradcheck([a, b], "mul const rhs") { try $0[0] * $0[1] }
        assertGradcheck([a, b], "div const rhs") { try $0[0] / $0[1] }
        assertGradcheck([b, a], "pow const base") { try $0[0].pow($0[1]) }
    }

    func testSameTensorBothOperands() {
        let a = leaf([2, 3], seed: 3)
        assertGradcheck([a], "x*x") { try $0[0] * $0[0] }
        assertGradcheck([a], "x+x") { try $0[0] + $0[0] }
    }

    func testPowScalarGrad() {
        let x = leaf([2, 3], seed: 4, low: 0.5, high: 2)
        for e: Float in [0, 0.5, 1, 2, 3, -1, -0.5, 1.7] {
            assertGradcheck([x], "pow \(e)") { try $0[0].pow(e) }
        }
        let y = leaf([5], seed: 5)  // negative bases, integral exponents
        for e: Float in [2, 3] { assertGradcheck([y], "pow neg base \(e)") { try $0[0].pow(e) } }
    }

    func testScalarOpsGrad() {
        let x = leaf([2, 3], seed: 6, low: 0.5, high: 2)
        assertGradcheck([x], "add s") { try $0[0] + 1.5 }
        assertGradcheck([x], "sub s") { try $0[0] - 1.5 }
        assertGradcheck([x], "mul s") { try $0[0] * -2.5 }
        assertGradcheck([x], "div s") { try $0[0] / 4 }
        assertGradcheck([x], "rsub s") { try 3 - $0[0] }
        assertGradcheck([x], "rdiv s") { try 3 / $0[0] }
        assertGradcheck([x], "radd s") { try 2 + $0[0] }
        assertGradcheck([x], "rmul s") { try 2 * $0[0] }
    }

    func testUnaryGrad() {
        let x = leaf([3, 4], seed: 7, low: -2, high: 2)
        let pos = leaf([3, 4], seed: 8, low: 0.2, high: 3)
        let kinked = distinctLeaf([3, 4], seed: 9, spacing: 0.1)  // no value within 0.05 of 0
        assertGradcheck([x], "neg") { try $0[0].neg() }
        assertGradcheck([x], "prefix -") { try -$0[0] }
        assertGradcheck([x], "exp") { try $0[0].exp() }
        assertGradcheck([pos], "log") { try $0[0].log() }
        assertGradcheck([pos], "log1p") { try $0[0].log1p() }
        assertGradcheck([pos], "sqrt") { try $0[0].sqrt() }
        assertGradcheck([x], "square") { try $0[0].square() }
        assertGradcheck([kinked], "abs") { try $0[0].abs() }
        assertGradcheck([x], "sigmoid") { try $0[0].sigmoid() }
        assertGradcheck([x], "tanh") { try $0[0].tanh() }
        assertGradcheck([kinked], "relu") { try $0[0].relu() }
        assertGradcheck([x], "clone") { try $0[0].clone() }
    }

    func testClampGrad() {
        // distinctLeaf values are odd multiples of 0.05: bounds at multiples of 0.1 are never within 0.05.
        let x = distinctLeaf([4, 5], seed: 11, spacing: 0.1)
        assertGradcheck([x], "clamp both") { try $0[0].clamp(min: -0.4, max: 0.6) }
        assertGradcheck([x], "clamp min") { try $0[0].clamp(min: 0.2) }
        assertGradcheck([x], "clamp max") { try $0[0].clamp(max: -0.2) }
    }

    func testMaximumMinimumGrad() {
        let a = distinctLeaf([3, 4], seed: 12), b = leaf([4], seed: 13, low: -0.33, high: 0.33)
        // a sits on odd multiples of 0.025, b on multiples of 0.05: no pair is within the finite-difference step.
        let b2 = try! Tensor(b.toArray().map { ($0 / 0.05).rounded() * 0.05 }, shape: [4]).requiringGrad()
        assertGradcheck([a, b2], "maximum") { try $0[0].maximum($0[1]) }
        assertGradcheck([a, b2], "minimum") { try $0[0].minimum($0[1]) }
    }

    func testWhereAndMaskedFillGrad() throws {
        let cond = try Tensor([1, 0, 1, 0, 0, 1], shape: [2, 3])
        let a = leaf([2, 3], seed: 14), b = leaf([3], seed: 15)
        assertGradcheck([a, b], "where") { try Tensor.where(cond, $0[0], $0[1]) }
        let mask = try Tensor([0, 1, 0], shape: [3])
        assertGradcheck([a], "masked_fill") { try $0[0].maskedFill(mask, -1) }
    }

    func testForwardValues() throws {
        let a = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = try Tensor([10, 20, 30], shape: [3])
        assertClose(try a + b, [11, 22, 33, 14, 25, 36], shape: [2, 3])
        assertClose(try a - b, [-9, -18, -27, -6, -15, -24])
        assertClose(try a * b, [10, 40, 90, 40, 100, 180])
        assertClose(try b / a, [10, 10, 10, 2.5, 4, 5])
        let col = try Tensor([1, 2, 3], shape: [3, 1]), row = try Tensor([10, 20, 30, 40], shape: [1, 4])
        assertClose(try col + row, [11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43], shape: [3, 4])
        assertClose(try a.pow(Tensor.scalar(2)), [1, 4, 9, 16, 25, 36])
        assertClose(try a.pow(0.5), [1, 2, 3, 4, 5, 6].map { Float($0).squareRoot() })
        assertClose(try a.clamp(min: 2, max: 4), [2, 2, 3, 4, 4, 4])
        assertClose(try Tensor([-1, 0, 2]).relu(), [0, 0, 2])
        assertClose(try Tensor([-1, 0, 2]).abs(), [1, 0, 2])
        assertClose(try Tensor([0]).sigmoid(), [0.5])
        assertClose(try Tensor([-100, 100]).sigmoid(), [0, 1])
        assertClose(try Tensor([1e-8]).log1p(), [1e-8], rtol: 1e-6)
        // Division by zero is IEEE division, as in PyTorch.
        let z = try Tensor([1, -1, 0]) / 0
        XCTAssertEqual(z.toArray()[0], .infinity)
        XCTAssertEqual(z.toArray()[1], -.infinity)
        XCTAssertTrue(z.toArray()[2].isNaN)
        // clamp with min > max gives max everywhere, like torch.clamp.
        assertClose(try a.clamp(min: 5, max: 2), [2, 2, 2, 2, 2, 2])
    }

    func testComparisons() throws {
        let a = try Tensor([1, 2, 3, 4], shape: [2, 2]), b = try Tensor([2, 2], shape: [2])
        assertClose(try a.eq(b), [0, 1, 0, 0])
        assertClose(try a.ne(b), [1, 0, 1, 1])
        assertClose(try a.gt(b), [0, 0, 1, 1])
        assertClose(try a.ge(b), [0, 1, 1, 1])
        assertClose(try a.lt(b), [1, 0, 0, 0])
        assertClose(try a.le(b), [1, 1, 0, 0])
        assertClose(try a.gt(2.5), [0, 0, 1, 1])
        assertClose(try a.le(2), [1, 1, 0, 0])
        assertClose(try a.eq(3), [0, 0, 1, 0])
        assertClose(try a.ne(3), [1, 1, 0, 1])
        assertClose(try a.ge(4), [0, 0, 0, 1])
        assertClose(try a.lt(1), [0, 0, 0, 0])
        let x = a.detach().requiringGrad()
        XCTAssertNil(try x.gt(2).gradFn, "comparisons are not differentiable")
        XCTAssertFalse(try x.eq(b).requiresGrad)
        let w = try Tensor.where(a.gt(2), a, Tensor.scalar(0))
        assertClose(w, [0, 0, 3, 4])
        assertClose(try a.maskedFill(a.lt(3), 9), [9, 9, 3, 4])
        assertClose(try a.maximum(b), [2, 2, 3, 4])
        assertClose(try a.minimum(b), [1, 2, 2, 2])
        XCTAssertTrue(try Tensor([.nan]).maximum(Tensor([1])).toArray()[0].isNaN)
        XCTAssertTrue(try a.allclose(a.add(1e-6)))
        XCTAssertFalse(try a.allclose(a.add(1e-3)))
        XCTAssertTrue(try a.allclose(Tensor([1, 2, 3, 4]).reshape([2, 2])))
        XCTAssertFalse(try Tensor([.nan]).allclose(Tensor([.nan])))
        XCTAssertTrue(try Tensor([.nan, .infinity]).allclose(Tensor([.nan, .infinity]), equalNaN: true))
        assertTensorError("allclose") { try a.allclose(Tensor([1, 2, 3])) }
    }
}

/// exp and sigmoid against double-precision libm across the float range, edges included.
final class ExpAccuracyTests: XCTestCase {
    func testExpAcrossTheFloatRange() throws {
        var xs: [Float] = stride(from: Float(-90), through: 90, by: 0.00731).map { $0 }
        xs += [-.infinity, .infinity, -200, -103.9, -87.5, -87, 88, 88.5, 88.72, 88.73, 0, -0.0, 1e-30, -1e-30]
        let y = try Tensor(xs).exp().toArray()
        for (x, v) in zip(xs, y) {
            let ref = Foundation.exp(Double(x))
            if ref > Double(Float.greatestFiniteMagnitude) { XCTAssertEqual(v, .infinity, "exp(\(x))"); continue }
            let err = Swift.abs(Double(v) - ref)
            // 2 ulp relative, or the spacing of denormals near zero.
            XCTAssertLessThanOrEqual(err, Swift.max(2.4e-7 * ref, 1.5e-45), "exp(\(x)) = \(v), expected \(ref)")
        }
        XCTAssertTrue(try Tensor([.nan, 1, 2, 3, 4, 5, 6, 7]).exp().toArray()[0].isNaN)
        let s = try Tensor(xs.filter { $0.isFinite }).sigmoid().toArray()
        for (x, v) in zip(xs.filter { $0.isFinite }, s) {
            let ref = 1 / (1 + Foundation.exp(-Double(x)))
            XCTAssertLessThanOrEqual(Swift.abs(Double(v) - ref), Swift.max(3e-7 * ref, 1.5e-45), "sigmoid(\(x))")
        }
    }
}
