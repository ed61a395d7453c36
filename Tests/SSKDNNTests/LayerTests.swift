import XCTest
@testable import SSKDNN
import SSKDTensor

/// Layer behaviour that needs the CNN kernels (skipped until they are merged).
final class LayerTests: XCTestCase {
    override func setUpWithError() throws {
    }

    func testPoolingLayersAndTheirPrintedForm() throws {
        let x = try Tensor.arange(16).reshape([1, 1, 4, 4])
        let mp = MaxPool2d(kernelSize: [2])
        XCTAssertEqual(try mp(x).toArray(), [5, 7, 13, 15])
        XCTAssertEqual(mp.description, "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)")
        let ap = AvgPool2d(kernelSize: [2])
        XCTAssertEqual(try ap(x).toArray(), [2.5, 4.5, 10.5, 12.5])
        XCTAssertEqual(ap.description, "AvgPool2d(kernel_size=2, stride=2, padding=0)")
        let gap = AdaptiveAvgPool2d(1)
        XCTAssertEqual(try gap(x).shape, [1, 1, 1, 1])
        XCTAssertEqual(try gap(x).toArray(), [7.5])
        XCTAssertEqual(try Flatten()(gap(x)).shape, [1, 1])
    }

    func testActivations() throws {
        let x = try Tensor([-4, -1, 0, 2, 7])
        XCTAssertEqual(try ReLU()(x).toArray(), [0, 0, 0, 2, 7])
        XCTAssertEqual(try ReLU6()(x).toArray(), [0, 0, 0, 2, 6])
        for (a, b) in zip(try Hardsigmoid()(x).toArray(), [Float(0), Float(2.0 / 6), 0.5, Float(5.0 / 6), 1]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let hs = try Hardswish()(x).toArray()
        let expected: [Float] = [0, -1.0 / 3, 0, 2 * 5.0 / 6, 7]
        for (a, b) in zip(hs, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let si = try SiLU()(x).toArray()
        XCTAssertEqual(si[3], 2 / (1 + expf(-2)), accuracy: 1e-6)
        XCTAssertEqual(try Sigmoid()(x).toArray()[2], 0.5)
        XCTAssertEqual(ReLU6(inplace: true).description, "ReLU6(inplace=True)")
        XCTAssertEqual(Sigmoid().description, "Sigmoid()")
    }

    func testBatchNormTrainUpdatesStatsAndEvalUsesThem() throws {
        let bn = try BatchNorm2d(2)
        let x = try Tensor.randn([4, 2, 3, 3], generator: Generator(seed: 2)).mul(2).add(1)
        let y = try bn(x)
        XCTAssertEqual(bn.numBatchesTracked.toArray(), [1])
        // Batch statistics: each output channel has mean 0, biased variance 1 (up to eps).
        let ch0 = (0..<4).flatMap { n in (0..<9).map { y.data[n * 18 + $0] } }
        XCTAssertEqual(ch0.reduce(0, +) / 36, 0, accuracy: 1e-5)
        XCTAssertEqual(ch0.map { $0 * $0 }.reduce(0, +) / 36, 1, accuracy: 1e-3)
        // running = 0.9 * init + 0.1 * batch (unbiased variance).
        let xs0 = (0..<4).flatMap { n in (0..<9).map { x.data[n * 18 + $0] } }
        let mean = xs0.reduce(0, +) / 36
        let uvar = xs0.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 35
        XCTAssertEqual(bn.runningMean.data[0], 0.1 * mean, accuracy: 1e-5)
        XCTAssertEqual(bn.runningVar.data[0], 0.9 + 0.1 * uvar, accuracy: 1e-4)
        bn.eval()
        let before = bn.runningMean.toArray()
        let z = try bn(x)
        XCTAssertEqual(bn.runningMean.toArray(), before, "eval does not update the statistics")
        XCTAssertEqual(bn.numBatchesTracked.toArray(), [1])
        XCTAssertEqual(z.data[0], (x.data[0] - bn.runningMean.data[0]) / (bn.runningVar.data[0] + 1e-5).squareRoot(), accuracy: 1e-5)
        // momentum nil: cumulative average (the first batch's statistics exactly).
        let cumulative = try BatchNorm2d(2, momentum: nil)
        _ = try cumulative(x)
        XCTAssertEqual(cumulative.runningMean.data[0], mean, accuracy: 1e-5)
        XCTAssertEqual(cumulative.description, "BatchNorm2d(2, eps=1e-05, momentum=None, affine=True, bias=True, track_running_stats=True)")
        XCTAssertThrowsError(try bn(try Tensor.zeros([1, 3, 2, 2])))
        // A failed training step (one value per channel) leaves the counter alone.
        bn.train()
        XCTAssertThrowsError(try bn(try Tensor.zeros([1, 2, 1, 1])))
        XCTAssertEqual(bn.numBatchesTracked.toArray(), [1])
    }

    func testModelsAreDeterministicInEvalDespiteDropoutAndStochasticDepth() throws {
        let gen = Generator(seed: 11)
        let regularised = try EfficientNet(.init(classes: 5, widthMult: 0.1, depthMult: 0.34, dropout: 0.5, stochasticDepthProb: 0.5), generator: gen)
        let plain = try EfficientNet(.init(classes: 5, widthMult: 0.1, depthMult: 0.34, dropout: 0, stochasticDepthProb: 0), initialize: false)
        try plain.loadStateDict(regularised.stateDict())
        let x = try Tensor.randn([2, 3, 32, 32], generator: Generator(seed: 12))
        regularised.eval(); plain.eval()
        let a = try regularised(x).toArray(), b = try plain(x).toArray()
        XCTAssertEqual(a, b)
        XCTAssertEqual(try regularised(x).toArray(), a, "eval is deterministic")
        // In training the regularisers are active: two forwards differ.
        regularised.train()
        let t1 = try regularised(x).toArray(), t2 = try regularised(x).toArray()
        XCTAssertNotEqual(t1, t2)
    }

    func testForwardShapesAndGrayscale() throws {
        let m = try MobileNetV2(.init(classes: 3, widthMult: 0.1, inputChannels: 1))
        XCTAssertEqual(try m(try Tensor.zeros([2, 1, 32, 32])).shape, [2, 3])
        XCTAssertThrowsError(try m(try Tensor.zeros([2, 3, 32, 32]))) { e in
            XCTAssertTrue("\(e)".contains("MobileNetV2"))
        }
        // A replaced head is used by forward.
        let e = try EfficientNet(.init(classes: 4, widthMult: 0.1, depthMult: 0.34))
        e.classifier = Sequential(try Linear(e.lastChannel, 7))
        e.eval()   // batch 1 at 1x1 spatial: train-mode BatchNorm would (rightly) refuse
        XCTAssertEqual(try e(try Tensor.zeros([1, 3, 32, 32])).shape, [1, 7])
        let best = try e.stateDict().copy()
        (e.submodule("classifier.0") as! Linear).weight.fill_(3)
        XCTAssertNotEqual(best["classifier.0.weight"]?.toArray().first, 3, "copy() owns its storage")
    }
}
