import XCTest
import SSKDTensor

/// Every class of bad argument throws a TensorError naming the op (and usually the shapes)
/// instead of trapping.
final class ErrorTests: XCTestCase {
    let a = try! Tensor.zeros([2, 3])
    let b = try! Tensor.zeros([4])

    func testBroadcastMismatch() {
        assertTensorError("add", "[2, 3]") { try a + b }
        assertTensorError("sub", "[4]") { try a - b }
        assertTensorError("mul") { try a * b }
        assertTensorError("div") { try a / b }
        assertTensorError("pow") { try a.pow(b) }
        assertTensorError("maximum") { try a.maximum(b) }
        assertTensorError("minimum") { try a.minimum(b) }
        assertTensorError("eq") { try a.eq(b) }
        assertTensorError("gt") { try a.gt(b) }
        assertTensorError("where") { try Tensor.where(a, a, b) }
        assertTensorError("masked_fill") { try a.maskedFill(b, 0) }
        assertTensorError("masked_fill") { try a.maskedFill(Tensor.zeros([3, 2, 3]), 0) }
        assertTensorError("mse_loss") { try a.mse(b) }
    }

    func testMatmulErrors() {
        assertTensorError("matmul", "[2, 3]") { try a.matmul(a) }
        assertTensorError("matmul") { try Tensor.zeros([2, 3, 4]).matmul(Tensor.zeros([3, 4, 5])) }
        assertTensorError("matmul") { try Tensor.scalar(1).matmul(b) }
        assertTensorError("matmul") { try b.matmul(Tensor.zeros([3])) }
    }

    func testCatStackErrors() {
        assertTensorError("cat", "[2, 3]") { try Tensor.cat([a, Tensor.zeros([3, 2])], dim: 1) }
        assertTensorError("cat") { try Tensor.cat([a, b]) }
        assertTensorError("cat") { try Tensor.cat([], dim: 0) }
        assertTensorError("cat") { try Tensor.cat([a, a], dim: 2) }
        assertTensorError("cat", "zero-dimensional") { try Tensor.cat([Tensor.scalar(1), Tensor.scalar(2)]) }
        assertTensorError("stack", "[2, 3]") { try Tensor.stack([a, Tensor.zeros([3, 2])]) }
        assertTensorError("stack") { try Tensor.stack([]) }
        assertTensorError("stack") { try Tensor.stack([a, a], dim: 3) }
    }

    func testAxisErrors() {
        assertTensorError("sum", "dim 2") { try a.sum(2) }
        assertTensorError("sum", "more than once") { try a.sum([0, -2]) }
        assertTensorError("mean") { try a.mean(-3) }
        assertTensorError("max") { try a.max(5) }
        assertTensorError("min", "more than once") { try a.min([1, 1]) }
        assertTensorError("var") { try a.variance(2) }
        assertTensorError("std") { try a.std([0, 0]) }
        assertTensorError("argmax") { try a.argmax(2) }
        assertTensorError("argmin") { try a.argmin(-3) }
        assertTensorError("softmax") { try a.softmax(2) }
        assertTensorError("log_softmax") { try a.logSoftmax(-3) }
        assertTensorError("logsumexp") { try a.logsumexp(2) }
        assertTensorError("logsumexp", "more than once") { try a.logsumexp([1, -1]) }
        assertTensorError("permute", "repeat") { try a.permute([0, 0]) }
        assertTensorError("permute") { try a.permute([0]) }
        assertTensorError("permute") { try a.permute([0, 2]) }
        assertTensorError("transpose") { try a.transpose(0, 2) }
        assertTensorError("t") { try Tensor.zeros([2, 2, 2]).t() }
        assertTensorError("unsqueeze") { try a.unsqueeze(3) }
        assertTensorError("unsqueeze") { try a.unsqueeze(-4) }
        assertTensorError("squeeze") { try a.squeeze(2) }
        assertTensorError("flatten") { try a.flatten(start: 1, end: 0) }
        assertTensorError("flatten") { try a.flatten(start: 2) }
        assertTensorError("size") { try a.size(2) }
        assertTensorError("size") { try Tensor.scalar(1).size(0) }
        assertTensorError("narrow") { try a.narrow(2, start: 0, length: 1) }
        assertTensorError("slice") { try a.slice(-3) }
        assertTensorError("index_select") { try a.indexSelect(2, [0]) }
        assertTensorError("gather") { try a.gather(2, a) }
    }

    func testEmptyReductions() {
        assertTensorError("max", "empty") { try Tensor.zeros([0]).max() }
        assertTensorError("min") { try Tensor.zeros([0, 3]).min(0) }
        assertTensorError("argmax") { try Tensor.zeros([0]).argmax() }
        assertTensorError("mean", "empty") { try Tensor.zeros([0]).mean() }
        assertTensorError("var") { try Tensor.zeros([1]).variance() }
    }

    func testReshapeErrors() {
        assertTensorError("reshape", "[4]") { try a.reshape([4]) }
        assertTensorError("reshape", "only one") { try a.reshape([-1, -1]) }
        assertTensorError("reshape", "invalid") { try a.reshape([-2, -3]) }
        assertTensorError("reshape") { try a.reshape([4, -1]) }
        assertTensorError("reshape") { try a.view([7]) }
        assertTensorError("reshape", "too large") { try a.reshape([Int.max, 2, -1]) }
        assertTensorError("reshape", "too large") { try a.reshape([Int.max, 4]) }
        assertTensorError("expand", "too large") { try Tensor.zeros([1]).expand([1 << 40, 1 << 40]) }
        assertTensorError("narrow") { try a.narrow(1, start: 1, length: Int.max) }
        XCTAssertEqual(try a.chunk(Int.max, dim: 1).count, 3)
        assertTensorError("expand", "[2, 3]") { try a.expand([2, 4]) }
        assertTensorError("expand") { try a.expand([3]) }
        assertTensorError("expand") { try a.expand([-1, 2, 3]) }
        assertTensorError("expand") { try a.expand([2, -2]) }
    }

    func testIndexErrors() {
        assertTensorError("index_select", "out of bounds") { try a.indexSelect(1, [0, 3]) }
        assertTensorError("index_select") { try a.indexSelect(0, [-3]) }
        assertTensorError("index_select") { try Tensor.scalar(1).indexSelect(0, [0]) }
        assertTensorError("gather", "out of bounds") { try a.gather(1, Tensor([0, 3], shape: [1, 2])) }
        assertTensorError("gather", "not an integer") { try a.gather(1, Tensor([0.5], shape: [1, 1])) }
        assertTensorError("gather") { try a.gather(1, Tensor([.nan], shape: [1, 1])) }
        assertTensorError("gather", "dims") { try a.gather(1, Tensor([0, 1])) }
        assertTensorError("gather", "exceeds") { try a.gather(1, Tensor.zeros([3, 1])) }
        assertTensorError("narrow", "exceeds") { try a.narrow(1, start: 2, length: 2) }
        assertTensorError("narrow") { try a.narrow(1, start: 0, length: -1) }
        assertTensorError("narrow") { try a.narrow(0, start: -3, length: 1) }
        assertTensorError("narrow") { try Tensor.scalar(1).narrow(0, start: 0, length: 1) }
        assertTensorError("slice", "step") { try a.slice(0, step: 0) }
        assertTensorError("slice") { try a.slice(0, step: -1) }
        assertTensorError("value", "out of range") { try a.value(at: [0, 3]) }
        assertTensorError("value") { try a.value(at: [0]) }
    }

    func testLossErrors() {
        let logits = try! Tensor.zeros([2, 3])
        assertTensorError("cross_entropy", "class index") { try logits.crossEntropy(Tensor([0, 3])) }
        assertTensorError("cross_entropy", "class index") { try logits.crossEntropy(Tensor([0, -1])) }
        assertTensorError("cross_entropy", "class index") { try logits.crossEntropy(Tensor([0, 1.5])) }
        assertTensorError("cross_entropy", "target shape") { try logits.crossEntropy(Tensor([0, 1, 2])) }
        assertTensorError("cross_entropy", "target shape") { try logits.crossEntropy(Tensor.zeros([3, 2])) }
        assertTensorError("cross_entropy", "[N, C]") { try Tensor.scalar(1).crossEntropy(Tensor.scalar(0)) }
        assertTensorError("cross_entropy", "target shape") { try Tensor.zeros([2, 3, 4]).crossEntropy(Tensor([0, 1])) }
        assertTensorError("cross_entropy", "target shape") { try Tensor.zeros([3]).crossEntropy(Tensor([0, 1])) }
        assertTensorError("cross_entropy", "class index") { try Tensor.zeros([3]).crossEntropy(Tensor.scalar(3)) }
        assertTensorError("cross_entropy", "label_smoothing") { try logits.crossEntropy(Tensor([0, 1]), labelSmoothing: 1.5) }
        assertTensorError("cross_entropy", "batchmean") { try logits.crossEntropy(Tensor([0, 1]), reduction: .batchmean) }
        assertTensorError("cross_entropy", "empty") { try Tensor.zeros([0, 3]).crossEntropy(Tensor.zeros([0])) }
        assertTensorError("kl_div", "[2, 3]") { try logits.klDiv(Tensor.zeros([3, 2])) }
        assertTensorError("mse_loss", "batchmean") { try logits.mse(logits, reduction: .batchmean) }
    }

    func testClampErrors() {
        assertTensorError("clamp", "at least one") { try a.clamp() }
        assertTensorError("clamp", "NaN") { try a.clamp(min: .nan) }
        assertTensorError("clamp", "NaN") { try a.clamp(max: .nan) }
    }

    func testAutogradErrors() throws {
        let x = try Tensor.ones([2, 2]).requiringGrad()
        let y = try x * x
        assertTensorError("backward", "one-element") { try y.backward() }
        assertTensorError("backward", "[3]") { try y.backward(Tensor.ones([3])) }
        assertTensorError("backward", "does not require grad") { try Tensor.ones([1]).backward() }
        let z = try y.sum()
        try z.backward()
        assertTensorError("backward", "second time") { try z.backward() }
        assertTensorError("gradcheck", "no input") { try gradcheck([Tensor.ones([2])]) { $0[0] } }
        assertTensorError("gradcheck") { try gradcheck([x]) { _ in try Tensor.ones([1]) } }
    }

    func testValueAndCreationErrors() {
        assertTensorError("item", "[2, 3]") { try a.item() }
        assertTensorError("item") { try Tensor.zeros([0]).item() }
        assertTensorError("zeros", "negative") { try Tensor.zeros([2, -1]) }
        assertTensorError("full", "negative") { try Tensor.full([-3], 1) }
        assertTensorError("ones") { try Tensor.ones([-1]) }
        assertTensorError("zeros", "too large") { try Tensor.zeros([1 << 30, 1 << 30, 1 << 30]) }
        // Larger than physical memory: a thrown error, not a dead allocator.
        assertTensorError("zeros", "memory") { try Tensor.zeros([1 << 39]) }
        assertTensorError("add", "memory") { try Tensor.zeros([1 << 20, 1]) + Tensor.zeros([1 << 20]) }
        assertTensorError("matmul", "memory") { try Tensor.zeros([1 << 19, 1]).matmul(Tensor.zeros([1, 1 << 19])) }
        assertTensorError("expand", "memory") { try Tensor.zeros([1]).expand([1 << 38]) }
        assertTensorError("tensor", "do not fill") { try Tensor([1, 2, 3], shape: [2, 2]) }
        assertTensorError("tensor", "negative") { try Tensor([], shape: [-1, 0]) }
        assertTensorError("tensor", "different lengths") { try Tensor(rows: [[1, 2], [3]]) }
        assertTensorError("arange", "step") { try Tensor.arange(0, 1, step: 0) }
        assertTensorError("arange", "inconsistent") { try Tensor.arange(0, 5, step: -1) }
        assertTensorError("arange") { try Tensor.arange(0, .infinity) }
        assertTensorError("arange", "too many") { try Tensor.arange(0, 1e30) }
        assertTensorError("uniform") { try Tensor.uniform([2], low: 1, high: 0) }
        assertTensorError("rand") { try Tensor.rand([-2]) }
        assertTensorError("normal", "std") { try Tensor.normal([2], mean: 0, std: -1) }
        assertTensorError("randn") { try Tensor.randn([-1, 2]) }
        assertTensorError("copy_", "[4]") { try a.copy_(from: b) }
        assertTensorError("set_num_threads") { try Runtime.setThreads(0) }
        assertTensorError("Generator.setState") { try Generator(seed: 1).setState([1, 2]) }
    }

    func testEmptyInputsAreFine() throws {
        XCTAssertEqual(try Tensor([], shape: [0]).shape, [0])
        XCTAssertEqual(try Tensor(rows: []).shape, [0, 0])
        XCTAssertEqual(try Tensor.arange(3, 3).count, 0)
    }
}
