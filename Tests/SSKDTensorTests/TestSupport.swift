import XCTest
import SSKDTensor

/// A leaf requiring grad with values uniform in [low, high) from a fixed seed.
func leaf(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    try! Tensor.uniform(shape, low: low, high: high, generator: Generator(seed: seed)).requiringGrad()
}

/// A leaf requiring grad whose values are distinct and at least 0.05 apart (a shuffled ramp
/// centred on 0), so that max/min/relu/abs/clamp stay away from ties and kinks under the
/// finite-difference step.
func distinctLeaf(_ shape: [Int], seed: UInt64, spacing: Float = 0.05) -> Tensor {
    let n = shape.reduce(1, *)
    let perm = Generator(seed: seed).permutation(n)
    let vals = perm.map { (Float($0) - Float(n) / 2 + 0.5) * spacing }
    return try! Tensor(vals, shape: shape).requiringGrad()
}

/// Asserts that finite differences agree with autograd for `f` at `inputs`.
func assertGradcheck(_ inputs: [Tensor], atol: Float = 1e-3, rtol: Float = 1e-2, _ name: String = "",
                     file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) throws -> Tensor) {
    do {
        let report = try gradcheck(inputs, atol: atol, rtol: rtol, f)
        XCTAssertTrue(report.passed, "\(name): \(report)", file: file, line: line)
    } catch {
        XCTFail("\(name): gradcheck threw \(error)", file: file, line: line)
    }
}

/// Asserts elementwise |a - e| <= atol + rtol * |e| and equal shapes.
func assertClose(_ t: Tensor, _ expected: [Float], shape: [Int]? = nil, atol: Float = 1e-5, rtol: Float = 1e-5,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    if let shape { XCTAssertEqual(t.shape, shape, "\(message): shape", file: file, line: line) }
    XCTAssertEqual(t.count, expected.count, "\(message): count", file: file, line: line)
    guard t.count == expected.count else { return }
    for (i, (a, e)) in zip(t.toArray(), expected).enumerated() {
        if e.isNaN { XCTAssertTrue(a.isNaN, "\(message): [\(i)] expected nan, got \(a)", file: file, line: line); continue }
        if e.isInfinite { XCTAssertEqual(a, e, "\(message): [\(i)]", file: file, line: line); continue }
        if !(Swift.abs(a - e) <= atol + rtol * Swift.abs(e)) {
            XCTFail("\(message): [\(i)] got \(a), expected \(e)", file: file, line: line)
            return
        }
    }
}

/// Asserts that `body` throws a TensorError from op `op`, and returns it.
@discardableResult
func assertTensorError<T>(_ op: String, _ contains: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                          _ body: () throws -> T) -> TensorError? {
    do {
        _ = try body()
        XCTFail("expected a TensorError from \(op), nothing was thrown", file: file, line: line)
    } catch let e as TensorError {
        XCTAssertEqual(e.op, op, "wrong op in error: \(e)", file: file, line: line)
        XCTAssertTrue(e.description.hasPrefix(op + ":"), "message should name the op: \(e)", file: file, line: line)
        if let contains { XCTAssertTrue(e.message.contains(contains), "message '\(e.message)' should contain '\(contains)'", file: file, line: line) }
        return e
    } catch {
        XCTFail("expected TensorError from \(op), got \(error)", file: file, line: line)
    }
    return nil
}
