import XCTest
import SSKDTensor

/// Shape and indexing ops: gradients, forward values and view semantics.
final class ShapeOpsGradTests: XCTestCase {
    func testViewLikeOpsGrad() {
        let x = leaf([2, 3, 4], seed: 500)
        assertGradcheck([x], "reshape") { try $0[0].reshape([4, -1]) }
        assertGradcheck([x], "view") { try $0[0].view([6, 4]) }
        assertGradcheck([x], "flatten") { try $0[0].flatten() }
        assertGradcheck([x], "flatten 1...2") { try $0[0].flatten(start: 1, end: 2) }
        assertGradcheck([x], "unsqueeze") { try $0[0].unsqueeze(1) }
        assertGradcheck([x], "unsqueeze -1") { try $0[0].unsqueeze(-1) }
        let y = leaf([2, 1, 3, 1], seed: 501)
        assertGradcheck([y], "squeeze all") { try $0[0].squeeze() }
        assertGradcheck([y], "squeeze 1") { try $0[0].squeeze(1) }
        assertGradcheck([y], "squeeze non-1 dim is identity") { try $0[0].squeeze(2) }
        assertGradcheck([x], "contiguous") { $0[0].contiguous() }
    }

    func testPermuteTransposeGrad() {
        let x = leaf([2, 3, 4], seed: 502)
        for p in [[0, 1, 2], [2, 0, 1], [1, 0, 2], [0, 2, 1], [2, 1, 0], [-1, 0, 1]] {
            assertGradcheck([x], "permute \(p)") { try $0[0].permute(p) }
        }
        assertGradcheck([x], "transpose 0 2") { try $0[0].transpose(0, 2) }
        assertGradcheck([x], "transpose -1 -2") { try $0[0].transpose(-1, -2) }
        let m = leaf([3, 5], seed: 503)
        assertGradcheck([m], "t") { try $0[0].t() }
        let v = leaf([4], seed: 504)
        assertGradcheck([v], "t of 1-D") { try $0[0].t() }
    }

    func testExpandGrad() {
        let x = leaf([3, 1], seed: 505)
        assertGradcheck([x], "expand new leading dim") { try $0[0].expand([2, 3, 4]) }
        assertGradcheck([x], "expand -1") { try $0[0].expand([-1, 5]) }
        assertGradcheck([x], "expand to own shape") { try $0[0].expand([3, 1]) }
        XCTAssertTrue(try x.expand([3, -1]).isLeaf, "expanding to the same shape must not record self as its own input")
        let s = leaf([], seed: 506)
        assertGradcheck([s], "expand 0-dim") { try $0[0].expand([2, 2]) }
    }

    func testNarrowSliceIndexSelectGatherGrad() throws {
        let x = leaf([4, 5], seed: 507)
        assertGradcheck([x], "narrow") { try $0[0].narrow(1, start: 1, length: 3) }
        assertGradcheck([x], "narrow negative start") { try $0[0].narrow(0, start: -2, length: 2) }
        assertGradcheck([x], "slice step 2") { try $0[0].slice(1, start: 0, end: 5, step: 2) }
        assertGradcheck([x], "slice negative bounds") { try $0[0].slice(0, start: -3, end: -1) }
        assertGradcheck([x], "slice clamped bounds") { try $0[0].slice(1, start: 2, end: 100) }
        assertGradcheck([x], "index_select repeats") { try $0[0].indexSelect(0, [3, 0, 3, -1]) }
        assertGradcheck([x], "index_select dim 1") { try $0[0].indexSelect(1, [4, 2]) }
        let idx = try Tensor([0, 2, 2, 1, 0, 4, 3, 3], shape: [2, 4])
        assertGradcheck([x], "gather dim 1") { try $0[0].gather(1, idx) }
        let idx0 = try Tensor([3, 0, 1, 1, 2, 2, 0, 3], shape: [2, 4])
        assertGradcheck([x], "gather dim 0 (smaller index)") { try $0[0].gather(0, idx0) }
    }

    func testCatStackGrad() {
        let a = leaf([2, 3], seed: 508), b = leaf([2, 1], seed: 509), c = leaf([2, 2], seed: 510)
        assertGradcheck([a, b, c], "cat dim 1") { try Tensor.cat($0, dim: 1) }
        assertGradcheck([a, b, c], "cat dim -1") { try Tensor.cat($0, dim: -1) }
        let d = leaf([1, 3], seed: 511)
        assertGradcheck([a, d], "cat dim 0") { try Tensor.cat($0, dim: 0) }
        let e = leaf([2, 3], seed: 512)
        for dim in [0, 1, 2, -1] {
            assertGradcheck([a, e], "stack \(dim)") { try Tensor.stack($0, dim: dim) }
        }
        // Only some inputs require grad.
        let k = try! Tensor.ones([2, 3])
        assertGradcheck([a, k], "cat with constant") { try Tensor.cat($0, dim: 0) }
    }

    func testForwardValues() throws {
        let x = try Tensor.arange(0, 12).reshape([3, 4])
        assertClose(try x.t(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], shape: [4, 3])
        assertClose(try x.narrow(1, start: 1, length: 2), [1, 2, 5, 6, 9, 10], shape: [3, 2])
        assertClose(try x.slice(1, step: 3), [0, 3, 4, 7, 8, 11], shape: [3, 2])
        assertClose(try x.slice(0, start: 5), [], shape: [0, 4])
        assertClose(try x.indexSelect(0, [2, 0]), [8, 9, 10, 11, 0, 1, 2, 3], shape: [2, 4])
        assertClose(try x.gather(1, Tensor([3, 0, 1], shape: [3, 1])), [3, 4, 9], shape: [3, 1])
        assertClose(try x.gather(1, Tensor([-1, 0, 1], shape: [3, 1])), [3, 4, 9])
        assertClose(try Tensor.cat([x, x.narrow(0, start: 0, length: 1)], dim: 0).sum(1), [6, 22, 38, 6])
        assertClose(try Tensor.stack([Tensor([1, 2]), Tensor([3, 4])], dim: 1), [1, 3, 2, 4], shape: [2, 2])
        assertClose(try Tensor([1, 2]).expand([2, 2]), [1, 2, 1, 2], shape: [2, 2])
        XCTAssertEqual(try x.permute([1, 0]).toArray(), try x.t().toArray())
        XCTAssertEqual(try x.flatten().shape, [12])
        XCTAssertEqual(try Tensor.scalar(1).flatten().shape, [1])
        XCTAssertEqual(try x.unsqueeze(0).unsqueeze(-1).shape, [1, 3, 4, 1])
        XCTAssertEqual(try x.reshape([2, -1, 2]).shape, [2, 3, 2])
        XCTAssertEqual(try Tensor.scalar(2).squeeze(0).shape, [])
        XCTAssertEqual(try Tensor.scalar(2).transpose(0, -1).shape, [])
        XCTAssertEqual(try Tensor.scalar(5).gather(0, Tensor.scalar(0)).item(), 5)
        XCTAssertEqual(try x.size(-1), 4)
        XCTAssertEqual(x.strides, [4, 1])
    }

    func testLargePermutesMatchIndexing() throws {
        // Large enough for the tiled transpose path, with edges that are not multiples of the tile.
        let x = try Tensor.arange(0, 3 * 40 * 50).reshape([3, 40, 50])
        for perm in [[2, 0, 1], [0, 2, 1], [1, 2, 0], [2, 1, 0], [1, 0, 2]] {
            let y = try x.permute(perm)
            XCTAssertEqual(y.shape, perm.map { x.shape[$0] })
            let ys = y.strides
            var ok = true
            for i in 0..<3 { for j in 0..<40 { for k in 0..<50 {
                let src = [i, j, k]
                let off = perm.enumerated().reduce(0) { $0 + src[$1.element] * ys[$1.offset] }
                if y.data[off] != Float((i * 40 + j) * 50 + k) { ok = false }
            } } }
            XCTAssertTrue(ok, "permute \(perm)")
        }
        let m = try Tensor.randn([37, 70], generator: Generator(seed: 520))
        let mt = try m.t()
        for i in 0..<37 { for j in 0..<70 { XCTAssertEqual(try mt.value(at: [j, i]), try m.value(at: [i, j])) } }
        let g = leaf([20, 33], seed: 521)
        try (g.t() * Tensor.arange(0, 660).reshape([33, 20])).sum().backward()
        for i in 0..<20 { for j in 0..<33 { XCTAssertEqual(try g.grad!.value(at: [i, j]), Float(j * 20 + i)) } }
    }

    func testSplitChunkEye() throws {
        let x = try Tensor.arange(0, 10).reshape([5, 2])
        let parts = try x.split(2)
        XCTAssertEqual(parts.map { $0.shape }, [[2, 2], [2, 2], [1, 2]])
        assertClose(parts[2], [8, 9])
        XCTAssertEqual(try x.chunk(2, dim: 0).map { $0.shape[0] }, [3, 2])
        XCTAssertEqual(try x.chunk(2, dim: -1).map { $0.shape }, [[5, 1], [5, 1]])
        XCTAssertEqual(try x.chunk(8).count, 5)
        let g = leaf([5, 2], seed: 530)
        assertGradcheck([g], "split then cat") { xs in
            let p = try xs[0].split(2)
            return try Tensor.cat([p[2], p[0].mul(2)], dim: 0)
        }
        assertClose(try Tensor.eye(2), [1, 0, 0, 1], shape: [2, 2])
        assertClose(try Tensor.eye(2, 3), [1, 0, 0, 0, 1, 0], shape: [2, 3])
        assertTensorError("split") { try x.split(0) }
        assertTensorError("split") { try x.split(1, dim: 2) }
        assertTensorError("chunk") { try x.chunk(0) }
        assertTensorError("eye") { try Tensor.eye(-1) }
    }

    func testReshapeIsAViewOtherOpsCopy() throws {
        let x = try Tensor.arange(0, 6)
        let v = try x.reshape([2, 3])
        XCTAssertTrue(v.storage === x.storage)
        v.data[0] = 42
        XCTAssertEqual(x.toArray()[0], 42)
        let p = try v.t()
        XCTAssertFalse(p.storage === x.storage)
        let d = x.detach()
        XCTAssertTrue(d.storage === x.storage)
        let c = try x.clone()
        XCTAssertFalse(c.storage === x.storage)
        XCTAssertEqual(c.toArray(), x.toArray())
    }
}
