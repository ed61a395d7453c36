import XCTest
@testable import SSKDNN
import SSKDTensor

/// The fused eval forward (batch norm folded into the conv, activations in place) against the
/// layer-by-layer forward, on the reduced models with non-trivial running statistics.
final class InferenceFusionTests: XCTestCase {
    override func tearDown() { InferenceFusion.enabled = true }

    /// Gives every BatchNorm2d random affine parameters and running statistics, so the folded
    /// weights differ from the conv's own.
    func randomiseNorms(_ model: Module, seed: UInt64) {
        let g = Generator(seed: seed)
        for m in model.modules() {
            guard let bn = m as? BatchNorm2d else { continue }
            for c in 0..<bn.numFeatures {
                bn.weight.data[c] = 0.5 + g.nextFloat()
                bn.bias.data[c] = g.nextFloat() - 0.5
                bn.runningMean.data[c] = 0.2 * (g.nextFloat() - 0.5)
                bn.runningVar.data[c] = 0.5 + g.nextFloat()
            }
        }
    }

    func check(_ model: Module, name: String) throws {
        randomiseNorms(model, seed: 7)
        model.eval()
        let x = try Tensor.rand([2, 3, 40, 40], generator: Generator(seed: 3))
        InferenceFusion.enabled = false
        let reference = try withNoGrad { try model(x) }
        InferenceFusion.enabled = true
        let fused = try withNoGrad { try model(x) }
        XCTAssertEqual(fused.shape, reference.shape)
        let scale = reference.toArray().map { Swift.abs($0) }.max() ?? 1
        let err = zip(fused.toArray(), reference.toArray()).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, 1e-4 * Swift.max(scale, 1), "\(name): fused eval forward differs by \(err) (scale \(scale))")
        // With grad mode on the layers run one by one and record a graph.
        let recorded = try model(x)
        XCTAssertNotNil(recorded.gradFn, "\(name): eval forward with grad mode on must stay differentiable")
        let err2 = zip(recorded.toArray(), reference.toArray()).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertEqual(err2, 0, "\(name): layer-by-layer forward changed")
    }

    func testFusedEvalMatchesLayerByLayerMobileNetV2() throws { try check(try reducedMobileNetV2(), name: "mobilenet_v2") }
    func testFusedEvalMatchesLayerByLayerEfficientNet() throws { try check(try reducedEfficientNet(), name: "efficientnet") }

    /// Training with batch norm + activation fused gives the same loss, running statistics and
    /// gradients, bit for bit, as the layers one by one.
    func testTrainingBatchNormActivationFusionChangesNothing() throws {
        defer { BatchNorm2d.fusesActivation = true }
        for (name, make) in [("mobilenet_v2", { try reducedMobileNetV2() as Module }), ("efficientnet", { try reducedEfficientNet() as Module })] {
            let x = try Tensor.rand([3, 3, 40, 40], generator: Generator(seed: 4))
            func step(fused: Bool) throws -> [[Float]] {
                BatchNorm2d.fusesActivation = fused
                Generator.manualSeed(5)
                let model = try make()
                model.train()
                let loss = try model(x).logSoftmax(1).mean()
                try loss.backward()
                return [[try loss.item()]] + model.parameters().map { $0.grad?.toArray() ?? [] } + model.namedBuffers().map { $0.tensor.toArray() }
            }
            let (fused, plain) = (try step(fused: true), try step(fused: false))
            XCTAssertEqual(fused.count, plain.count)
            XCTAssertGreaterThan(plain.count, 10)
            for i in plain.indices { XCTAssertEqual(fused[i], plain[i], "\(name): entry \(i) differs with fusion") }
        }
    }

    func testTrainingFusionIsUsedOnlyWhereItApplies() throws {
        defer { BatchNorm2d.fusesActivation = true }
        let x = try Tensor.rand([2, 3, 6, 6], generator: Generator(seed: 1)).requiringGrad()
        let relu6 = try Conv2dNormActivation(3, 4, kernelSize: 3, activation: { ReLU6(inplace: true) })
        XCTAssertEqual(try relu6(x).gradFn?.name, "batch_norm+relu6")
        let silu = try Conv2dNormActivation(3, 4, kernelSize: 3, activation: { SiLU(inplace: true) })
        XCTAssertEqual(try silu(x).gradFn?.name, "batch_norm+silu")
        let hardswish = try Conv2dNormActivation(3, 4, kernelSize: 3, activation: { Hardswish() })
        XCTAssertEqual(try hardswish(x).gradFn?.name, "hardswish")
        let noAct = try Conv2dNormActivation(3, 4, kernelSize: 3, activation: nil)
        XCTAssertEqual(try noAct(x).gradFn?.name, "batch_norm")
        BatchNorm2d.fusesActivation = false
        XCTAssertEqual(try relu6(x).gradFn?.name, "relu6")
        BatchNorm2d.fusesActivation = true
        relu6.eval()
        XCTAssertEqual(try relu6(x).gradFn?.name, "relu6", "eval with grad mode runs layer by layer")
    }

    func testTrainingModeIsNeverFused() throws {
        let block = try Conv2dNormActivation(3, 4, kernelSize: 3, activation: { ReLU6(inplace: true) })
        let bn = block[1] as! BatchNorm2d
        let x = try Tensor.rand([2, 3, 8, 8], generator: Generator(seed: 1))
        _ = try withNoGrad { try block(x) }
        // Training mode under no-grad still uses (and updates) the batch statistics.
        XCTAssertEqual(bn.numBatchesTracked.data[0], 1)
        XCTAssertNotEqual(bn.runningMean.toArray(), [0, 0, 0, 0])
    }

    func testFoldingRejectsMismatchedNorm() throws {
        let conv = try Conv2d(3, 4, kernelSize: 1)
        let bn = try BatchNorm2d(5)
        XCTAssertThrowsError(try conv.forwardFoldingBatchNorm(try Tensor.zeros([1, 3, 2, 2]), bn))
    }
}

/// The SE gate's fused channel scale against the broadcast multiply it replaces.
final class ChannelScaleTests: XCTestCase {
    func testChannelScaleMatchesBroadcastMultiply() throws {
        let g = Generator(seed: 11)
        let x = try Tensor.randn([3, 5, 4, 7], generator: g).requiringGrad()
        let s = try Tensor.rand([3, 5, 1, 1], generator: g).requiringGrad()
        let dy = try Tensor.randn([3, 5, 4, 7], generator: g)
        let y1 = try channelScale(x, s)
        try y1.backward(dy)
        let (dx1, ds1) = (x.grad!.toArray(), s.grad!.toArray())
        x.zeroGrad(); s.zeroGrad()
        let y2 = try s * x
        try y2.backward(dy)
        XCTAssertEqual(y1.toArray(), y2.toArray())
        XCTAssertEqual(dx1, x.grad!.toArray())
        for (a, b) in zip(ds1, s.grad!.toArray()) { XCTAssertEqual(a, b, accuracy: 1e-5 * Swift.max(1, Swift.abs(b))) }
        // Other shapes fall back to the broadcast multiply.
        let v = try Tensor.rand([5, 1, 1])
        XCTAssertEqual(try channelScale(x.detach(), v).shape, [3, 5, 4, 7])
    }
}
