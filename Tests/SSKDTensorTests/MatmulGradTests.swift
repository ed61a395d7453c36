import XCTest
import SSKDTensor

/// matmul in all of torch.matmul's shape cases: gradients and values.
final class MatmulGradTests: XCTestCase {
    let cases: [([Int], [Int], [Int])] = [
        ([3, 4], [4, 5], [3, 5]),          // 2-D
        ([4], [4], []),                    // dot
        ([3, 4], [4], [3]),                // matrix-vector
        ([4], [4, 5], [5]),                // vector-matrix
        ([2, 3, 4], [2, 4, 5], [2, 3, 5]), // batched
        ([2, 3, 4], [4, 5], [2, 3, 5]),    // batched by 2-D (folded into one sgemm)
        ([3, 4], [2, 4, 5], [2, 3, 5]),    // 2-D by batched
        ([2, 1, 3, 4], [3, 4, 2], [2, 3, 3, 2]), // broadcast batch dims
        ([4], [2, 4, 3], [2, 3]),          // vector by batched
        ([2, 3, 4], [4], [2, 3]),          // batched by vector
        ([1, 3, 4], [2, 4, 2], [2, 3, 2]), // batch of 1 broadcast
    ]

    func testMatmulGradAndShapes() throws {
        for (i, (sa, sb, so)) in cases.enumerated() {
            let a = leaf(sa, seed: UInt64(200 + i)), b = leaf(sb, seed: UInt64(300 + i))
            XCTAssertEqual(try a.matmul(b).shape, so, "matmul \(sa) @ \(sb)")
            assertGradcheck([a, b], "matmul \(sa) @ \(sb)") { try $0[0].matmul($0[1]) }
        }
    }

    func testMatmulAgainstNaiveLoops() throws {
        let a = leaf([2, 3, 4], seed: 400), b = leaf([2, 4, 5], seed: 401)
        let c = try a.matmul(b)
        for bi in 0..<2 { for i in 0..<3 { for j in 0..<5 {
            var s: Float = 0
            for k in 0..<4 { s += try a.value(at: [bi, i, k]) * b.value(at: [bi, k, j]) }
            XCTAssertEqual(try c.value(at: [bi, i, j]), s, accuracy: 1e-5)
        } } }
        // The folded path ([B, m, k] @ [k, n]) equals a per-batch product.
        let w = leaf([4, 5], seed: 402)
        let folded = try a.matmul(w)
        for bi in 0..<2 {
            let per = try a.narrow(0, start: bi, length: 1).squeeze(0).matmul(w)
            assertClose(try folded.narrow(0, start: bi, length: 1).squeeze(0), per.toArray())
        }
    }

    func testEmptyInnerDimension() throws {
        let a = try Tensor.zeros([2, 0]), b = try Tensor.zeros([0, 3])
        assertClose(try a.matmul(b), [0, 0, 0, 0, 0, 0], shape: [2, 3])
        XCTAssertEqual(try Tensor.zeros([0, 4]).matmul(Tensor.zeros([4, 2])).shape, [0, 2])
    }
}
