import XCTest
import SSKDTensor

/// Broadcasting and reductions over many random shapes against naive index arithmetic.
final class BroadcastPropertyTests: XCTestCase {
    /// Row-major multi-indices of `shape`.
    func indices(_ shape: [Int]) -> [[Int]] {
        var out: [[Int]] = [[]]
        for n in shape { out = out.flatMap { p in (0..<n).map { p + [$0] } } }
        return out
    }

    /// Value of `t` at the broadcast index `idx` (right-aligned, size-1 dims pinned to 0).
    func at(_ t: Tensor, _ idx: [Int]) throws -> Float {
        let own = Array(idx.suffix(t.dim)).enumerated().map { t.shape[$0.offset] == 1 ? 0 : $0.element }
        return try t.value(at: own)
    }

    func testRandomBroadcastsMatchNaive() throws {
        let g = Generator(seed: 77)
        for trial in 0..<150 {
            let rank = 1 + g.nextInt(4)
            let full = (0..<rank).map { _ in 1 + g.nextInt(4) }
            // Each operand drops some leading dims and sets some dims to 1.
            func operand() -> [Int] {
                let drop = g.nextInt(rank + 1)
                return full.dropFirst(drop).map { g.nextInt(3) == 0 ? 1 : $0 }
            }
            let sa = operand(), sb = operand()
            let a = try Tensor.randn(sa, generator: g), b = try Tensor.randn(sb, generator: g)
            let out = try a * b + b
            let shape = try broadcastShapes(sa, sb)
            XCTAssertEqual(out.shape, shape, "trial \(trial): \(sa) \(sb)")
            for idx in indices(shape) {
                let x = try at(a, idx), y = try at(b, idx)
                XCTAssertEqual(try out.value(at: idx), x * y + y, accuracy: 1e-5, "trial \(trial): \(sa) \(sb) at \(idx)")
            }
            // And the gradients sum back over the broadcast dims.
            let la = a.detach().requiringGrad(), lb = b.detach().requiringGrad()
            try (la * lb).sum().backward()
            var ga = [Float](repeating: 0, count: a.count)
            let stridesA = a.strides
            for idx in indices(shape) {
                let own = Array(idx.suffix(a.dim)).enumerated().map { a.shape[$0.offset] == 1 ? 0 : $0.element }
                ga[zip(own, stridesA).reduce(0) { $0 + $1.0 * $1.1 }] += try at(b, idx)
            }
            assertClose(la.grad!, ga, shape: sa, atol: 1e-4, "trial \(trial): grad of \(sa) against \(sb)")
            XCTAssertEqual(lb.grad!.shape, sb)
        }
    }

    func testRandomReductionsMatchNaive() throws {
        let g = Generator(seed: 78)
        for trial in 0..<120 {
            let rank = 1 + g.nextInt(4)
            let shape = (0..<rank).map { _ in 1 + g.nextInt(4) }
            let axes = (0..<rank).filter { _ in g.nextInt(2) == 0 }
            let keep = g.nextInt(2) == 0
            let x = try Tensor.randn(shape, generator: g)
            let s = try x.sum(axes, keepdim: keep), m = try x.max(axes, keepdim: keep)
            let reduced = axes.isEmpty ? Array(0..<rank) : axes
            var sums: [[Int]: Float] = [:], maxes: [[Int]: Float] = [:]
            for idx in indices(shape) {
                let key = idx.enumerated().map { reduced.contains($0.offset) ? 0 : $0.element }
                sums[key, default: 0] += try x.value(at: idx)
                maxes[key] = Swift.max(maxes[key] ?? -.infinity, try x.value(at: idx))
            }
            let keptShape = shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
            XCTAssertEqual(s.count, sums.count, "trial \(trial)")
            let flatS = try s.reshape(keptShape), flatM = try m.reshape(keptShape)
            for (key, v) in sums {
                XCTAssertEqual(try flatS.value(at: key), v, accuracy: 1e-4, "trial \(trial): sum \(shape) over \(axes) keep \(keep)")
                XCTAssertEqual(try flatM.value(at: key), maxes[key]!, "trial \(trial): max \(shape) over \(axes)")
            }
            XCTAssertEqual(s.shape, keep ? keptShape : shape.enumerated().filter { !reduced.contains($0.offset) }.map { $0.element })
        }
    }
}
