// ONNX export checked by the real client: every shipped Swift model is exported, then run by
// onnxruntime (scripts/onnx_check.py, in the Python environment scripts/test.sh makes under
// .build/pyenv) on random and on real (Fashion-MNIST) images, at batch 1 and a second batch size
// through the dynamic batch; outputs must equal sskd's eval logits within 1e-4 of their scale.

import Foundation
import SSKDData
import SSKDNN
import SSKDTensor
import XCTest
@testable import SSKDExport

final class ONNXExportTests: ONNXCheckCase {
    // MARK: Shipped models

    func testMobileNetV2MatchesOnnxRuntimeOnRandomAndRealImages() throws {
        let m = try Models.make("mobilenet_v2", classes: 10, generator: Generator(seed: 1))
        try randomizeBatchNorms(m, seed: 2)
        let real = try fashionBatch(3, size: 64, channels: 3)
        try checkWithOnnxRuntime(m, "mobilenet_v2", inputs: [try Tensor.randn([1, 3, 64, 64], generator: Generator(seed: 3)), real])
        try checkWithOnnxRuntime(m, "mobilenet_v2_folded", inputs: [real, try Tensor.randn([1, 3, 64, 64], generator: Generator(seed: 4))], fold: true)
    }

    func testEfficientNetB0MatchesOnnxRuntimeOnRandomAndRealImages() throws {
        let m = try Models.make("efficientnet_b0", classes: 10, generator: Generator(seed: 5))
        try randomizeBatchNorms(m, seed: 6)
        let real = try fashionBatch(4, size: 96, channels: 3)
        try checkWithOnnxRuntime(m, "efficientnet_b0", inputs: [try Tensor.randn([1, 3, 96, 96], generator: Generator(seed: 7)), real])
        try checkWithOnnxRuntime(m, "efficientnet_b0_folded", inputs: [real, try Tensor.randn([1, 3, 96, 96], generator: Generator(seed: 8))],
                                 fold: true, opset: 18)
    }

    func testEveryEfficientNetVariantAndGrayscaleInputExport() throws {
        for n in 1...7 {
            let m = try Models.make("efficientnet_b\(n)", classes: 10, generator: Generator(seed: UInt64(10 + n)))
            try checkWithOnnxRuntime(m, "efficientnet_b\(n)", inputs: [try Tensor.randn([1, 3, 32, 32], generator: Generator(seed: 20)),
                                                                       try Tensor.randn([2, 3, 32, 32], generator: Generator(seed: 21))],
                                     fold: n % 2 == 0)
        }
        let gray = try Models.make("mobilenet_v2", classes: 10, inputChannels: 1, generator: Generator(seed: 30))
        try checkWithOnnxRuntime(gray, "mobilenet_v2_gray", inputs: [try fashionBatch(1, size: 32, channels: 1), try fashionBatch(5, size: 32, channels: 1)])
    }

    // MARK: The graph itself

    func testGraphNamesWeightsByStateDictKeysAndFoldsBatchNorm() throws {
        let m = try Models.make("efficientnet_b0", classes: 10, generator: Generator(seed: 40))
        let (plain, s1) = try ONNXExport.serialize(m, options: .init(inputShape: [1, 3, 32, 32]))
        let (folded, s2) = try ONNXExport.serialize(m, options: .init(inputShape: [1, 3, 32, 32], foldBatchNorm: true))
        let g1 = try Onnx_ModelProto(serializedBytes: plain).graph, g2 = try Onnx_ModelProto(serializedBytes: folded).graph
        XCTAssertEqual(Set(g1.initializer.map(\.name)).intersection(m.stateDict().map(\.0)).count,
                       m.namedParameters().count + m.namedBuffers().filter { !$0.name.hasSuffix("num_batches_tracked") }.count,
                       "every parameter and running statistic is an initializer under its state-dict key")
        let bns = m.modules().filter { $0 is BatchNorm2d }.count
        XCTAssertEqual(g1.node.filter { $0.opType == "BatchNormalization" }.count, bns)
        XCTAssertEqual(g2.node.filter { $0.opType == "BatchNormalization" }.count, 0, "every BatchNorm2d follows a Conv2d in EfficientNet")
        XCTAssertEqual(s1.nodes - s2.nodes, bns)
        XCTAssertEqual(g1.input[0].type.tensorType.shape.dim[0].dimParam, "batch")
        XCTAssertEqual(g1.output[0].name, "logits")
        XCTAssertEqual(s1.outputShape, [1, 10])
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: s1.opCounts)["Conv"], m.modules().filter { $0 is Conv2d }.count)
        XCTAssertTrue(m.training, "export restores the model's training mode")
    }

    func testUnsupportedOpAndBadOptionsAreClearErrors() throws {
        // A layer whose forward uses an op without an ONNX mapping (gather).
        final class Picker: Module {
            override func forward(_ x: Tensor) throws -> Tensor { try x.gather(1, Tensor([0, 0], shape: [2, 1])) }
        }
        let model = Sequential(try Linear(4, 3), Picker())
        let path = dir.appendingPathComponent("bad.onnx").path
        try Data("keep".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ONNXExport.export(model, to: path, options: .init(inputShape: [2, 4]))) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("op gather") && s.contains("'1' (Picker)"), s)
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "keep", "a failed export leaves the old file")
        XCTAssertThrowsError(try ONNXExport.export(model, to: path, options: .init(inputShape: [2, 4], opset: 9))) { e in
            XCTAssertTrue("\(e)".contains("opset 9"), "\(e)")
        }
        XCTAssertThrowsError(try ONNXExport.export(model, to: path, options: .init(inputShape: [2, 5]))) { e in
            XCTAssertTrue("\(e)".contains("traced forward"), "\(e)")
        }
        XCTAssertThrowsError(try ONNXExport.export(try Linear(4, 3), to: dir.appendingPathComponent("no/such/dir.onnx").path,
                                                   options: .init(inputShape: [2, 4]))) { e in
            XCTAssertTrue("\(e)".contains("no/such/dir.onnx"), "\(e)")
        }
        // A value computed outside the traced ops would be frozen into the file: refused.
        final class Untraced: Module {
            override func forward(_ x: Tensor) throws -> Tensor {
                try x + Tensor(Array(UnsafeBufferPointer(start: x.data, count: x.count)), shape: x.shape)
            }
        }
        XCTAssertThrowsError(try ONNXExport.export(Untraced(), to: path, options: .init(inputShape: [1, 4]))) { e in
            XCTAssertTrue("\(e)".contains("depends on the input"), "\(e)")
        }
        // Adaptive pooling with unequal windows has no ONNX op.
        let pool = Sequential(AdaptiveAvgPool2d(3))
        XCTAssertThrowsError(try ONNXExport.export(pool, to: path, options: .init(inputShape: [1, 1, 8, 8]))) { e in
            XCTAssertTrue("\(e)".contains("unequal windows"), "\(e)")
        }
    }

    func testOpsBetweenLayersAndAllLayerKindsMatchOnnxRuntime() throws {
        // Every mapped layer and op in one model: the Swift analogue of a Lua-written module.
        final class Mixed: Module {
            let conv: Conv2d, dw: Conv2d, bn: BatchNorm2d, fc: Linear, fc3: Linear
            let acts: [Module] = [ReLU(), ReLU6(), SiLU(), Sigmoid(), Hardswish(), Hardsigmoid()]
            override init() {
                conv = try! Conv2d(3, 8, kernelSize: 3, stride: 1, padding: 1)
                dw = try! Conv2d(8, 8, kernelSize: [3, 5], stride: [2, 1], padding: [1, 2], dilation: [1, 1], groups: 8)
                bn = try! BatchNorm2d(8)
                fc = try! Linear(8 * 2 * 2 + 8, 5)
                fc3 = try! Linear(4, 4)
                super.init()
                registerModule("conv", conv); registerModule("dw", dw); registerModule("bn", bn)
                registerModule("fc", fc); registerModule("fc3", fc3)
                for (i, a) in acts.enumerated() { registerModule("act\(i)", a) }
                registerModule("maxpool", MaxPool2d(kernelSize: [3], stride: [2], padding: [1], ceilMode: true))
                registerModule("avgpool", AvgPool2d(kernelSize: [2], padding: [1], countIncludePad: false))
                registerModule("adapt", AdaptiveAvgPool2d(outputSize: [2, 2]))
                registerModule("flatten", Flatten())
                registerModule("drop", try! Dropout(p: 0.3))
            }
            override func forward(_ x: Tensor) throws -> Tensor {
                var y = try conv(x)
                for a in acts { y = try a(y) + y.mul(0.5) }               // residual adds, scalar ops
                y = try bn(dw(y)).relu6().silu().hardswish()
                y = try child("maxpool")!(y)
                y = try (y - y.clamp(min: -0.2, max: 0.3)).abs().add(1).log().sqrt().neg().exp().tanh().sigmoid()
                y = try y.pow(2).rsub(2).rdiv(3).div(2).hardsigmoid()
                let z = try child("avgpool")!(y)                          // [N, 8, 4, 4] -> [N, 8, 3, 3]
                let g = try adaptiveAvgPool2d(z, outputSize: [1, 1])        // functional pooling
                let a = try child("adapt")!(try child("drop")!(y))        // [N, 8, 2, 2]
                let f = try Tensor.cat([try child("flatten")!(a), try g.flatten(start: 1)], dim: 1)
                var h = try fc(f).softmax(1).log_softmax_ok()
                h = try h.maximum(h.mul(-1)).minimum(h.add(3))
                let s = try h.reshape([h.shape[0], 5, 1]).permute([0, 2, 1]).sum([1]).matmul(Tensor.ones([5, 4]))
                let m3 = try fc3(s.unsqueeze(1)).squeeze(1)                // Linear on 3-D input: MatMul + Add
                return try m3.sum([1], keepdim: true).expand([m3.shape[0], 4]) + m3.max([1], keepdim: true) + m3.min([1], keepdim: true)
            }
        }
        let m = Mixed()
        try randomizeBatchNorms(m, seed: 50)
        try checkWithOnnxRuntime(m, "mixed", inputs: [try Tensor.randn([1, 3, 14, 6], generator: Generator(seed: 51)),
                                                      try Tensor.randn([3, 3, 14, 6], generator: Generator(seed: 52))])
        try checkWithOnnxRuntime(m, "mixed_opset21", inputs: [try Tensor.randn([2, 3, 14, 6], generator: Generator(seed: 53))], fold: true, opset: 21)
    }
}

private extension Tensor {
    /// log_softmax on top of softmax's output: both ops in one chain.
    func log_softmax_ok() throws -> Tensor { try self.add(1).logSoftmax(1) }
}
