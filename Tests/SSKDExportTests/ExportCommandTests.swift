// `sskd export`: a model name plus trained weights to an ONNX file, as a user runs it.

import Foundation
import SSKDNN
import SSKDTensor
import SSKDTrain
import XCTest
@testable import SSKDExport

final class ExportCommandTests: ONNXCheckCase {
    func testExportCommandWritesWhatOnnxRuntimeRunsLikeTheModel() throws {
        let m = try Models.make("efficientnet_b0", classes: 7, generator: Generator(seed: 80))
        try randomizeBatchNorms(m, seed: 81)
        let weights = dir.appendingPathComponent("best.safetensors").path
        try m.save(weights)
        let out = dir.appendingPathComponent("student.onnx").path
        let (status, text) = try run(try sskdBinary(), ["export", "efficientnet_b0", "--weights", weights, "--input", "3x64x64",
                                                        "--out", out, "--fold-batchnorm"])
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("wrote \(out)") && text.contains("input [batch, 3, 64, 64], output [batch, 7]"), text)
        XCTAssertFalse(text.contains("BatchNormalization"), "folded: \(text)")
        try checkWithOnnxRuntime(m, "student", inputs: [try fashionBatch(3, size: 64, channels: 3), try Tensor.randn([1, 3, 64, 64])],
                                 exported: out)
    }

    func testExportCommandReadsARunDirectory() throws {
        // A run directory as fit/distill leave it: model.json and best.safetensors.
        let runDir = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
        let m = try Models.make("mobilenet_v2", classes: 3, inputChannels: 1, generator: Generator(seed: 90))
        try randomizeBatchNorms(m, seed: 91)
        try m.save(runDir.appendingPathComponent("best.safetensors").path)
        let record = ModelRecord(constructor: ModelConstructor("models.mobilenet_v2", options: ["classes": .int(3), "in_channels": .int(1)]),
                                 module: "MobileNetV2", parameters: m.parameterCount, input: [1, 32, 32], classes: ["cat", "dog", "émeu"],
                                 evalTransform: [], evalTransformDescription: "Normalize(mean=[0.5], std=[0.5])", weights: "best.safetensors")
        try record.json().write(to: runDir.appendingPathComponent(ModelRecord.fileName))
        let out = dir.appendingPathComponent("run.onnx").path
        let (status, text) = try run(try sskdBinary(), ["export", runDir.path, "--out", out])
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("input [batch, 1, 32, 32], output [batch, 3]") && text.contains("best.safetensors"), text)
        let meta = Dictionary(uniqueKeysWithValues: try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: out))).metadataProps.map { ($0.key, $0.value) })
        XCTAssertEqual(meta["class_names"], #"["cat","dog","émeu"]"#)
        XCTAssertEqual(meta["input"], "1x32x32")
        XCTAssertEqual(meta["constructor"], "models.mobilenet_v2{classes = 3, in_channels = 1}")
        try checkWithOnnxRuntime(m, "run", inputs: [try fashionBatch(2, size: 32, channels: 1)], exported: out)
        // A run without model.json says what to give instead.
        try FileManager.default.removeItem(at: runDir.appendingPathComponent(ModelRecord.fileName))
        let (status2, text2) = try run(try sskdBinary(), ["export", runDir.path, "--out", out])
        XCTAssertEqual(status2, 1); XCTAssertTrue(text2.contains("no model.json"), text2)
    }

    func testExportCommandErrorsNameWhatIsWrong() throws {
        let sskd = try sskdBinary()
        let out = dir.appendingPathComponent("x.onnx").path
        var (status, text) = try run(sskd, ["export", "no_such_model", "--out", out])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("unknown model 'no_such_model'"), text)
        (status, text) = try run(sskd, ["export", "efficientnet_b0", "--weights", dir.appendingPathComponent("none.safetensors").path, "--out", out])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("none.safetensors"), text)
        (status, text) = try run(sskd, ["export", "efficientnet_b0", "--input", "3x96", "--out", out])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(text.contains("CxHxW"), text)
        // Weights of another architecture: the strict load names the mismatch.
        let other = dir.appendingPathComponent("mn.safetensors").path
        try Models.make("mobilenet_v2", classes: 10).save(other)
        (status, text) = try run(sskd, ["export", "efficientnet_b0", "--weights", other, "--out", out])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("features"), text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no file after a failed export")
    }
}
