import XCTest
import SSKDTensor

/// softmax / log_softmax / logsumexp and the losses: gradients and reference values.
final class SoftmaxLossGradTests: XCTestCase {
    func testSoftmaxFamilyGrad() {
        let x = leaf([2, 3, 4], seed: 600, low: -2, high: 2)
        for d in [0, 1, 2, -1] {
            assertGradcheck([x], "softmax \(d)") { try $0[0].softmax(d) }
            assertGradcheck([x], "log_softmax \(d)") { try $0[0].logSoftmax(d) }
        }
        for dims in [[0], [1], [2], [-1], [0, 2], [0, 1, 2]] {
            for keep in [false, true] {
                assertGradcheck([x], "logsumexp \(dims) keep \(keep)") { try $0[0].logsumexp(dims, keepdim: keep) }
            }
        }
        assertGradcheck([x], "logsumexp int dim") { try $0[0].logsumexp(1) }
        let s = leaf([], seed: 601)
        assertGradcheck([s], "softmax 0-dim") { try $0[0].softmax(0) }
        assertGradcheck([s], "log_softmax 0-dim") { try $0[0].logSoftmax(-1) }
    }

    func testSoftmaxValues() throws {
        let x = try Tensor([1, 2, 3, 1000, 1000, 1000], shape: [2, 3])
        let e = [1, 2, 3].map { expf(Float($0)) }, s = e.reduce(0, +)
        assertClose(try x.softmax(1), e.map { $0 / s } + [1.0 / 3, 1.0 / 3, 1.0 / 3])
        assertClose(try x.logSoftmax(1), e.map { logf($0 / s) } + [-logf(3), -logf(3), -logf(3)], atol: 1e-5)
        // Stable for large values.
        assertClose(try x.logsumexp(1), [logf(s), 1000 + logf(3)], atol: 1e-4)
        assertClose(try Tensor([-Float.infinity, -Float.infinity]).logsumexp(0), [-Float.infinity])
        // Each column of softmax over dim 0 sums to 1.
        let y = try Tensor.randn([4, 5], generator: Generator(seed: 602)).softmax(0).sum(0)
        assertClose(y, [Float](repeating: 1, count: 5), atol: 1e-6)
    }

    func testCrossEntropyGrad() throws {
        let logits = leaf([4, 5], seed: 603, low: -2, high: 2)
        let labels = try Tensor([1, 0, 4, 2])
        let soft = withNoGrad { try! Tensor.uniform([4, 5], low: 0, high: 1, generator: Generator(seed: 604)).softmax(1) }
        for red in [Reduction.mean, .sum, .none] {
            for ls: Float in [0, 0.1] {
                assertGradcheck([logits], "ce idx \(red) ls \(ls)") { try $0[0].crossEntropy(labels, labelSmoothing: ls, reduction: red) }
                assertGradcheck([logits], "ce soft \(red) ls \(ls)") { try $0[0].crossEntropy(soft, labelSmoothing: ls, reduction: red) }
            }
        }
        // Gradient with respect to a soft target too.
        let softLeaf = soft.detach().requiringGrad()
        assertGradcheck([logits, softLeaf], "ce soft wrt target") { try $0[0].crossEntropy($0[1], labelSmoothing: 0.2) }
    }

    func testCrossEntropyUnbatchedAndSpatial() throws {
        // [N, C, H, W] logits with [N, H, W] indices equal the flattened [N*H*W, C] form.
        let x = leaf([2, 3, 2, 2], seed: 610, low: -2, high: 2)
        let labels = try Tensor([0, 2, 1, 1, 2, 0, 0, 1], shape: [2, 2, 2])
        let flat = try x.permute([0, 2, 3, 1]).reshape([8, 3])
        for red in [Reduction.mean, .sum] {
            assertClose(try x.crossEntropy(labels, reduction: red), try flat.crossEntropy(labels.reshape([8]), reduction: red).toArray())
        }
        XCTAssertEqual(try x.crossEntropy(labels, reduction: .none).shape, [2, 2, 2])
        assertGradcheck([x], "ce spatial idx") { try $0[0].crossEntropy(labels, labelSmoothing: 0.1) }
        let soft = withNoGrad { try! Tensor.uniform([2, 3, 2, 2], low: 0, high: 1, generator: Generator(seed: 611)).softmax(1) }
        assertGradcheck([x], "ce spatial soft none") { try $0[0].crossEntropy(soft, reduction: .none) }
        // Unbatched [C].
        let v = leaf([5], seed: 612)
        XCTAssertEqual(try v.crossEntropy(Tensor.scalar(3), reduction: .none).shape, [])
        assertClose(try v.crossEntropy(Tensor.scalar(3)), [-(try v.logSoftmax(0).toArray()[3])])
        assertGradcheck([v], "ce unbatched") { try $0[0].crossEntropy(Tensor.scalar(1)) }
        let q = withNoGrad { try! Tensor.uniform([5], low: 0, high: 1, generator: Generator(seed: 613)).softmax(0) }
        assertGradcheck([v], "ce unbatched soft") { try $0[0].crossEntropy(q, labelSmoothing: 0.3) }
    }

    func testCrossEntropyValues() throws {
        let logits = try Tensor([2, 1, 0.1, 0.5, 2.5, 0.3], shape: [2, 3])
        let target = try Tensor([0, 1])
        let lp = try logits.logSoftmax(1).toArray()
        assertClose(try logits.crossEntropy(target, reduction: .none), [-lp[0], -lp[4]], shape: [2])
        assertClose(try logits.crossEntropy(target), [(-lp[0] - lp[4]) / 2], shape: [])
        assertClose(try logits.crossEntropy(target, reduction: .sum), [-lp[0] - lp[4]])
        // Label smoothing: (1 - eps) * nll + eps * mean(-logp).
        let eps: Float = 0.1
        let smooth0 = (1 - eps) * -lp[0] + eps * -(lp[0] + lp[1] + lp[2]) / 3
        let smooth1 = (1 - eps) * -lp[4] + eps * -(lp[3] + lp[4] + lp[5]) / 3
        assertClose(try logits.crossEntropy(target, labelSmoothing: eps, reduction: .none), [smooth0, smooth1])
        // One-hot soft targets equal index targets.
        let onehot = try Tensor([1, 0, 0, 0, 1, 0], shape: [2, 3])
        assertClose(try logits.crossEntropy(onehot), try logits.crossEntropy(target).toArray())
        // Empty batch with sum is 0.
        XCTAssertEqual(try Tensor.zeros([0, 3]).crossEntropy(Tensor.zeros([0]), reduction: .sum).item(), 0)
    }

    func testKLDivGrad() throws {
        let logp = withNoGrad { try! Tensor.randn([3, 4], generator: Generator(seed: 605)).logSoftmax(1) }.requiringGrad()
        let q = withNoGrad { try! Tensor.randn([3, 4], generator: Generator(seed: 606)).softmax(1) }.requiringGrad()
        let logq = try withNoGrad { try q.log() }.requiringGrad()
        for red in [Reduction.batchmean, .sum, .mean, .none] {
            assertGradcheck([logp, q], "kl_div \(red)") { try $0[0].klDiv($0[1], reduction: red) }
            assertGradcheck([logp, logq], "kl_div log_target \(red)") { try $0[0].klDiv($0[1], reduction: red, logTarget: true) }
        }
    }

    func testKLDivValues() throws {
        let x = try Tensor([logf(0.5), logf(0.5), logf(0.25), logf(0.75)], shape: [2, 2])
        let t = try Tensor([0.25, 0.75, 0, 1], shape: [2, 2])
        let per: [Float] = [0.25 * (logf(0.25) - logf(0.5)), 0.75 * (logf(0.75) - logf(0.5)), 0, 1 * (0 - logf(0.75))]
        let total = per.reduce(0, +)
        assertClose(try x.klDiv(t, reduction: .none), per, shape: [2, 2])
        assertClose(try x.klDiv(t), [total / 2], shape: [])
        assertClose(try x.klDiv(t, reduction: .sum), [total])
        assertClose(try x.klDiv(t, reduction: .mean), [total / 4])
        // log_target with log(t) equals the plain form where t > 0.
        let tp = try Tensor([0.25, 0.75, 0.5, 0.5], shape: [2, 2])
        assertClose(try x.klDiv(tp.log(), logTarget: true), try x.klDiv(tp).toArray())
    }

    func testMSEGrad() throws {
        let a = leaf([3, 4], seed: 607), b = leaf([3, 4], seed: 608)
        for red in [Reduction.mean, .sum, .none] {
            assertGradcheck([a, b], "mse \(red)") { try $0[0].mse($0[1], reduction: red) }
        }
        let c = leaf([4], seed: 609)
        assertGradcheck([a, c], "mse broadcast target") { try $0[0].mse($0[1]) }
        assertClose(try Tensor([1, 2, 3]).mse(Tensor([1, 0, 0])), [13.0 / 3])
    }

    func testReductionParsing() throws {
        XCTAssertEqual(try Reduction(parsing: "batchmean", op: "kl_div"), .batchmean)
        assertTensorError("kl_div", "batchmean") { try Reduction(parsing: "avg", op: "kl_div") }
        assertTensorError("cross_entropy") { try Reduction(parsing: "", op: "cross_entropy") }
    }
}
