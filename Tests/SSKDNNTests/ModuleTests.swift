import Foundation
import XCTest
@testable import SSKDNN
import SSKDTensor

final class ModuleTests: XCTestCase {
    func testStateDictKeysShapesAndDtypesMatchTorchvision() throws {
        let ref = try TorchvisionReference.load()
        let cases: [(String, Module)] = [
            ("mobilenet_v2", try MobileNetV2(.init(classes: 10), initialize: false)),
            ("efficientnet_b0", try EfficientNet(variant: 0, classes: 10, initialize: false)),
        ]
        for (name, model) in cases {
            let expected = ref.stateDict(name)
            XCTAssertFalse(expected.isEmpty)
            let sd = model.stateDict()
            XCTAssertEqual(sd.keys, expected.map { $0.0 }, name)
            for (k, shape, dtype) in expected {
                XCTAssertEqual(sd[k]?.shape, shape, "\(name) \(k)")
                XCTAssertEqual(sd.dtype(k), dtype == "int64" ? .i64 : .f32, "\(name) \(k)")
            }
        }
    }

    func testParameterCountsMatchTorchvision() throws {
        let ref = try TorchvisionReference.load()
        XCTAssertEqual(try MobileNetV2(.init(classes: 10), initialize: false).parameterCount, ref.parameters("mobilenet_v2"))
        XCTAssertEqual(try MobileNetV2(.init(classes: 10), initialize: false).parameterCount, 2_236_682)
        XCTAssertEqual(try EfficientNet(variant: 0, classes: 10, initialize: false).parameterCount, 4_020_358)
        for n in 0...7 {
            XCTAssertEqual(try EfficientNet(variant: n, classes: 10, initialize: false).parameterCount, ref.parameters("efficientnet_b\(n)"), "b\(n)")
        }
        XCTAssertEqual(try MobileNetV2(.init(widthMult: 0.35), initialize: false).parameterCount, ref.parameters("mobilenet_v2_w0.35_c1000"))
        XCTAssertEqual(try MobileNetV2(.init(widthMult: 1.4), initialize: false).parameterCount, ref.parameters("mobilenet_v2_w1.4_c1000"))
        XCTAssertEqual(try reducedMobileNetV2().parameterCount, ref.parameters("reduced_mobilenet_v2"))
        XCTAssertEqual(try reducedEfficientNet().parameterCount, ref.parameters("reduced_efficientnet"))
    }

    func testPrintedTreeMatchesTorchvision() throws {
        let ref = try TorchvisionReference.load()
        XCTAssertEqual(try MobileNetV2(.init(classes: 10), initialize: false).description, ref.repr("mobilenet_v2"))
        XCTAssertEqual(try EfficientNet(variant: 0, classes: 10, initialize: false).description, ref.repr("efficientnet_b0"))
        XCTAssertEqual(try reducedMobileNetV2().description, ref.repr("reduced_mobilenet_v2"))
        XCTAssertEqual(try reducedEfficientNet().description, ref.repr("reduced_efficientnet"))
        XCTAssertEqual(try Conv2d(3, 32, kernelSize: 3, stride: 2, padding: 1, bias: false).description,
                       "Conv2d(3, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)")
        XCTAssertEqual(try Linear(1280, 10).description, "Linear(in_features=1280, out_features=10, bias=True)")
        XCTAssertEqual(Flatten().description, "Flatten(start_dim=1, end_dim=-1)")
        XCTAssertEqual(Identity().description, "Identity()")
    }

    func testMakeDivisible() {
        XCTAssertEqual(makeDivisible(32 * 0.1), 8)
        XCTAssertEqual(makeDivisible(32 * 1.4), 48)     // 44.8 -> 48
        XCTAssertEqual(makeDivisible(1280 * 1.4), 1792)
        XCTAssertEqual(makeDivisible(16 * 0.35), 8)
        XCTAssertEqual(makeDivisible(24 * 1.1), 24)     // 26.4 rounds to 24, within 10 %
        XCTAssertEqual(makeDivisible(40 * 1.1), 48)     // 44 -> 48 (round half up)
    }

    func testEfficientNetScalingAndStochasticDepth() throws {
        let b0 = try EfficientNet(variant: 0, initialize: false)
        let blocks = b0.modules().compactMap { $0 as? MBConv }
        XCTAssertEqual(blocks.count, 16)
        // block k of 16 drops with 0.2 * k / 16.
        for (k, b) in blocks.enumerated() { XCTAssertEqual(b.stochasticDepth.p, 0.2 * Double(k) / 16, accuracy: 1e-15) }
        let b7 = try EfficientNet.Config.variant(7)
        XCTAssertEqual(b7.stages.map(\.numLayers), [4, 7, 7, 10, 10, 13, 4])
        XCTAssertEqual(b7.stages.map(\.outChannels), [32, 48, 80, 160, 224, 384, 640])
        XCTAssertEqual(b7.norm, .init(eps: 1e-3, momentum: 0.01))
        XCTAssertEqual(b7.dropout, 0.5)
        XCTAssertThrowsError(try EfficientNet.Config.variant(8))
        // Free multipliers and grayscale input.
        let custom = try EfficientNet(.init(classes: 3, widthMult: 0.5, depthMult: 0.5, inputChannels: 1), initialize: false)
        XCTAssertEqual((custom.submodule("features.0.0") as? Conv2d)?.weight.shape, [16, 1, 3, 3])
        XCTAssertEqual((custom.submodule("classifier.1") as? Linear)?.outFeatures, 3)
        let gray = try MobileNetV2(.init(classes: 10, inputChannels: 1), initialize: false)
        XCTAssertEqual((gray.submodule("features.0.0") as? Conv2d)?.weight.shape, [32, 1, 3, 3])
    }

    func testTrainEvalPropagates() throws {
        let m = try reducedEfficientNet()
        XCTAssertTrue(m.modules().allSatisfy { $0.training })
        m.eval()
        XCTAssertTrue(m.modules().allSatisfy { !$0.training })
        m.train()
        XCTAssertTrue(m.modules().allSatisfy { $0.training })
        m.features.train(false)
        XCTAssertFalse(m.submodule("features.4.1.block.1.0")!.training)
        XCTAssertTrue(m.submodule("classifier.0")!.training)
    }

    func testDropoutAndStochasticDepthAreIdentityInEval() throws {
        let x = try Tensor.randn([4, 3, 2, 2], generator: Generator(seed: 1))
        let d = try Dropout(p: 0.9), s = try StochasticDepth(p: 0.9)
        d.eval(); s.eval()
        XCTAssertEqual(try d(x).toArray(), x.toArray())
        XCTAssertEqual(try s(x).toArray(), x.toArray())
        XCTAssertThrowsError(try Dropout(p: 1.5))
        XCTAssertThrowsError(try StochasticDepth(p: -0.1))
    }

    func testDropoutAndStochasticDepthStatisticsInTraining() throws {
        let x = try Tensor.ones([1000, 4, 1, 1])
        let d = try Dropout(p: 0.25, generator: Generator(seed: 3))
        let y = try d(x).toArray()
        let zeros = y.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / Double(y.count), 0.25, accuracy: 0.03)
        for v in y where v != 0 { XCTAssertEqual(v, 1 / 0.75, accuracy: 1e-6) }
        let s = try StochasticDepth(p: 0.3, mode: .row, generator: Generator(seed: 4))
        let z = try s(x)
        var dropped = 0
        for i in 0..<1000 {
            let row = Array(z.toArray()[(i * 4)..<(i * 4 + 4)])
            XCTAssertTrue(row.allSatisfy { $0 == row[0] }, "one draw per sample")
            if row[0] == 0 { dropped += 1 } else { XCTAssertEqual(row[0], 1 / 0.7, accuracy: 1e-6) }
        }
        XCTAssertEqual(Double(dropped) / 1000, 0.3, accuracy: 0.05)
    }

    func testNamedParametersAndSubmodules() throws {
        let m = try MobileNetV2(.init(classes: 10), initialize: false)
        let names = m.namedParameters().map(\.name)
        XCTAssertEqual(names.first, "features.0.0.weight")
        XCTAssertEqual(names.last, "classifier.1.bias")
        XCTAssertEqual(m.parameters().count, names.count)
        XCTAssertTrue(m.parameters().allSatisfy { $0.requiresGrad && $0.isLeaf })
        XCTAssertEqual(m.namedBuffers().count, 52 * 3)
        XCTAssertTrue(m.submodule("features.1.conv") is Sequential)
        XCTAssertNil(m.submodule("features.99"))
        m.requiresGrad(false)
        XCTAssertEqual(m.trainableParameterCount, 0)
    }

    func testReplaceClassifierHead() throws {
        let m = try MobileNetV2(initialize: false)   // 1000 classes
        try m.setSubmodule("classifier.1", Linear(1280, 10))
        XCTAssertEqual(m.stateDict()["classifier.1.weight"]?.shape, [10, 1280])
        m.classifier = Sequential(try Dropout(p: 0.5), try Linear(1280, 7))
        XCTAssertEqual(m.stateDict()["classifier.1.bias"]?.shape, [7])
        XCTAssertEqual(m.stateDict().keys.last, "classifier.1.bias")
        XCTAssertThrowsError(try m.setSubmodule("classifier.5", Identity()))
        XCTAssertThrowsError(try m.setSubmodule("nothing.1", Identity()))
        let seq = m.classifier as! Sequential
        seq[1] = try Linear(1280, 3)
        XCTAssertEqual(m.stateDict()["classifier.1.weight"]?.shape, [3, 1280])
    }

    func testInitialisationFollowsTorchvision() throws {
        let m = try MobileNetV2(.init(classes: 10, widthMult: 0.35), generator: Generator(seed: 0))
        let conv = m.submodule("features.18.0") as! Conv2d        // 112 -> 1280, 1x1
        let w = conv.weight.toArray()
        let mean = w.reduce(0, +) / Float(w.count)
        let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(w.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / 1280).squareRoot(), accuracy: 0.02 * (2.0 / 1280).squareRoot())   // fan_out = 1280
        XCTAssertEqual(mean, 0, accuracy: 1e-3)
        let lin = m.submodule("classifier.1") as! Linear
        let lw = lin.weight.toArray()
        let lstd = (lw.map { $0 * $0 }.reduce(0, +) / Float(lw.count)).squareRoot()
        XCTAssertEqual(lstd, 0.01, accuracy: 0.0005)
        XCTAssertTrue(lin.bias!.toArray().allSatisfy { $0 == 0 })
        let bn = m.submodule("features.0.1") as! BatchNorm2d
        XCTAssertTrue(bn.weight.toArray().allSatisfy { $0 == 1 } && bn.bias.toArray().allSatisfy { $0 == 0 })
        XCTAssertTrue(bn.runningVar.toArray().allSatisfy { $0 == 1 } && bn.runningMean.toArray().allSatisfy { $0 == 0 })

        let e = try EfficientNet(.init(classes: 10, widthMult: 0.1, depthMult: 0.34), generator: Generator(seed: 0))
        let el = e.submodule("classifier.1") as! Linear
        let bound = 1 / Float(10).squareRoot()
        XCTAssertTrue(el.weight.toArray().allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(el.weight.toArray().map(abs).max()!, 0.9 * bound)
        // initialize: false leaves zeros (for loading a checkpoint next).
        let blank = try EfficientNet(.init(classes: 10, widthMult: 0.1, depthMult: 0.34), initialize: false)
        XCTAssertTrue(blank.parameters().allSatisfy { p in p.toArray().allSatisfy { $0 == 0 } || p.shape.count == 1 })
        let se = e.submodule("features.1.0.block.1") as! SqueezeExcitation
        XCTAssertTrue(se.fc1.bias!.toArray().allSatisfy { $0 == 0 })
        // Seeded: the same generator seed gives the same weights.
        let again = try MobileNetV2(.init(classes: 10, widthMult: 0.35), generator: Generator(seed: 0))
        XCTAssertEqual((again.submodule("features.18.0") as! Conv2d).weight.toArray(), w)
    }

    func testBadConfigurationsThrow() {
        XCTAssertThrowsError(try Conv2d(3, 8, kernelSize: 3, groups: 2))
        XCTAssertThrowsError(try Conv2d(3, 8, kernelSize: [0]))
        XCTAssertThrowsError(try Linear(0, 3))
        XCTAssertThrowsError(try BatchNorm2d(0))
        XCTAssertThrowsError(try MobileNetV2(.init(classes: 0)))
        XCTAssertThrowsError(try EfficientNet(.init(widthMult: -1)))
        XCTAssertThrowsError(try InvertedResidual(8, 8, stride: 3, expandRatio: 6))
    }
}

final class ModelsFactoryTests: XCTestCase {
    func testMakeByName() throws {
        let m = try Models.make("mobilenet_v2", classes: 10, initialize: false)
        XCTAssertTrue(m is MobileNetV2)
        XCTAssertEqual(m.parameterCount, 2_236_682)
        let e = try Models.make("efficientnet_b3", classes: 10, inputChannels: 1, initialize: false) as? EfficientNet
        XCTAssertEqual(e?.config.widthMult, 1.2)
        XCTAssertEqual(e?.config.inputChannels, 1)
        XCTAssertThrowsError(try Models.make("resnet50")) { XCTAssertTrue("\($0)".contains("efficientnet_b0")) }
        XCTAssertThrowsError(try Models.make("efficientnet_b9"))
    }

    /// A model made by name records the call (a run's model.json builds it again from this).
    func testMakeRecordsItsConstructor() throws {
        let e = try Models.make("efficientnet_b3", classes: 10, inputChannels: 1, initialize: false)
        XCTAssertEqual(e.constructor, ModelConstructor("models.efficientnet_b3", options: ["classes": .int(10), "in_channels": .int(1)]))
        XCTAssertEqual(e.constructor?.description, "models.efficientnet_b3{classes = 10, in_channels = 1}")
        XCTAssertNil(Sequential([ReLU()]).constructor, "a hand-assembled module has none")
        let c = ModelConstructor("model_variants.x", options: ["a": .number(0.5), "b": .string("q\"r"), "c": .bool(false)])
        XCTAssertEqual(c.description, #"model_variants.x{a = 0.5, b = "q\"r", c = false}"#)
        XCTAssertEqual(try JSONDecoder().decode(ModelConstructor.self, from: try JSONEncoder().encode(c)), c)
    }
}
