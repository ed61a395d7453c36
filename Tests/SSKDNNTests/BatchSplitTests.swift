import XCTest
@testable import SSKDNN
import SSKDTensor

/// The eval forward that splits the batch into one slice per thread (`Module.callAsFunction`):
/// same results as the whole-batch forward, and never used where a slice could change them.
final class BatchSplitTests: XCTestCase {
    var savedThreads = 1
    override func setUp() { savedThreads = Runtime.threads }
    override func tearDown() { try? Runtime.setThreads(savedThreads); InferenceFusion.enabled = true }

    /// A layer whose output depends on the whole batch (subtracts the batch mean): splitting it
    /// would change its result.
    final class BatchCentering: Module {
        override func forward(_ x: Tensor) throws -> Tensor { try x - x.mean([0], keepdim: true) }
    }

    func wholeBatch(_ model: Module, _ x: Tensor) throws -> Tensor {
        InferenceFusion.enabled = false
        defer { InferenceFusion.enabled = true }
        return try withNoGrad { try model(x) }
    }

    func testSplitForwardMatchesWholeBatch() throws {
        try Runtime.setThreads(2)
        for (name, model) in [("mobilenet_v2", try reducedMobileNetV2() as Module), ("efficientnet", try reducedEfficientNet())] {
            model.eval()
            XCTAssertTrue(model.splitsBatchInEval, name)
            for n in [2, 5] {   // 5: slices of 2 and 3
                let x = try Tensor.rand([n, 3, 40, 40], generator: Generator(seed: UInt64(n)))
                let reference = try wholeBatch(model, x)
                let split = try withNoGrad { try model(x) }
                XCTAssertEqual(split.shape, [n, 4], name)
                let err = zip(split.toArray(), reference.toArray()).map { Swift.abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-4, "\(name), batch \(n): split forward differs by \(err)")
            }
        }
    }

    func testBatchDependentChildOrTrainingModeStopsTheSplit() throws {
        try Runtime.setThreads(2)
        let x = try Tensor.rand([4, 2, 3, 3], generator: Generator(seed: 1))
        // A layer that mixes samples: the result must be the whole-batch one, bit for bit.
        let mixing = Sequential(try Conv2d(2, 3, kernelSize: 1), BatchCentering())
        mixing.eval()
        XCTAssertFalse(mixing.splitsBatchInEval)
        XCTAssertEqual(try withNoGrad { try mixing(x) }.toArray(), try wholeBatch(mixing, x).toArray())
        // A norm left in training mode inside an eval model uses (and counts) one whole batch.
        let block = try Conv2dNormActivation(2, 3, kernelSize: 3, activation: { ReLU6(inplace: true) })
        block.eval()
        let bn = block[1] as! BatchNorm2d
        bn.train()
        XCTAssertFalse(block.splitsBatchInEval)
        _ = try withNoGrad { try block(x) }
        XCTAssertEqual(bn.numBatchesTracked.data[0], 1)
        // Grad mode on: a graph over the whole batch.
        let model = try reducedMobileNetV2()
        model.eval()
        let y = try model(try Tensor.rand([2, 3, 40, 40], generator: Generator(seed: 2)))
        XCTAssertNotNil(y.gradFn)
    }

    func testErrorInASliceIsReportedOnce() throws {
        try Runtime.setThreads(2)
        let model = try reducedEfficientNet()
        model.eval()
        let wrongChannels = try Tensor.rand([4, 5, 40, 40], generator: Generator(seed: 3))
        XCTAssertThrowsError(try withNoGrad { try model(wrongChannels) }) { error in
            XCTAssertTrue("\(error)".contains("[4, 5, 40, 40]"), "the error must name the whole input: \(error)")
        }
    }
}
