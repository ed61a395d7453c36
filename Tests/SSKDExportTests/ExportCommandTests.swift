// `sskd export`: a model name plus trained weights to an ONNX file, as a user runs it.

import Foundation
import SSKDNN
import SSKDTensor
import XCTest

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
