// Test support for the ONNX export tests: the onnxruntime check (scripts/onnx_check.py, run by
// the Python environment scripts/test.sh makes under .build/pyenv), test inputs and a scratch folder.

import Foundation
import SSKDData
import SSKDNN
import SSKDTensor
import XCTest
@testable import SSKDExport

/// Shared by the export tests: a scratch folder, test inputs, and the onnxruntime comparison.
class ONNXCheckCase: XCTestCase {
    /// The package root (Tests/SSKDExportTests/ -> ../..).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The interpreter with onnxruntime, onnx, numpy and safetensors: $SSKD_PYTHON or .build/pyenv.
    static func python() throws -> String {
        if let p = ProcessInfo.processInfo.environment["SSKD_PYTHON"], !p.isEmpty { return p }
        let p = root.appendingPathComponent(".build/pyenv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw MissingTool("no Python for the onnxruntime check at \(p): run `bash scripts/pyenv.sh onnxruntime onnx numpy safetensors` (scripts/test.sh does)")
        }
        return p
    }

    struct MissingTool: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if ProcessInfo.processInfo.environment["SSKD_KEEP_ONNX"] == nil { try? FileManager.default.removeItem(at: dir) } else { print("kept \(dir.path)") }
    }

    /// Non-trivial batch-norm statistics and affine parameters, so BN export (and folding) is tested.
    func randomizeBatchNorms(_ m: Module, seed: UInt64) throws {
        let g = Generator(seed: seed)
        for case let bn as BatchNorm2d in m.modules() {
            let n = bn.numFeatures
            let mean = try Tensor.randn([n], generator: g), v = try Tensor.rand([n], generator: g)
            let w = try Tensor.rand([n], generator: g), b = try Tensor.randn([n], generator: g)
            for i in 0..<n {
                bn.runningMean.data[i] = 0.1 * mean.data[i]; bn.runningVar.data[i] = 0.5 + v.data[i]
                bn.weight.data[i] = 0.5 + w.data[i]; bn.bias.data[i] = 0.1 * b.data[i]
            }
        }
    }

    /// `n` Fashion-MNIST test images, resized to `size`, as `channels` channels normalised by 0.5/0.5.
    func fashionBatch(_ n: Int, size: Int, channels: Int) throws -> Tensor {
        let ds = try IDXDataset.fashionMNIST(train: false)
        var values: [Float] = []
        for i in 0..<n {
            let img = try TF.resize(Image(try ds.image(at: i * 7)), height: size, width: size)
            let plane = img.pixels.map { ($0 / img.range - 0.5) / 0.5 }
            for _ in 0..<channels { values += plane }
        }
        return try Tensor(values, shape: [n, channels, size, size])
    }

    /// Exports `model`, computes sskd's eval logits for each input and runs the onnxruntime check.
    /// Returns the check's JSON lines.
    @discardableResult
    /// With `exported`, checks that file instead of exporting.
    func checkWithOnnxRuntime(_ model: Module, _ name: String, inputs: [Tensor], fold: Bool = false, opset: Int = 17,
                              exported: String? = nil) throws -> [[String: Any]] {
        let path = exported ?? dir.appendingPathComponent("\(name).onnx").path
        if exported == nil {
            let summary = try ONNXExport.export(model, to: path, options: .init(inputShape: inputs[0].shape, dynamicBatch: true, opset: opset,
                                                                                 foldBatchNorm: fold))
            // Every conv and linear weight is in the file (folding drops only the batch norms' vectors).
            let weights = model.modules().reduce(0) { n, m in n + ((m as? Conv2d)?.weight.count ?? 0) + ((m as? Linear)?.weight.count ?? 0) }
            XCTAssertGreaterThan(summary.bytes, weights * 4, "\(name): the weights are in the file")
        }
        model.eval()
        var sd = StateDict()
        for (k, x) in inputs.enumerated() {
            let suffix = k == 0 ? "" : ".\(k)"
            sd.set("input" + suffix, x)
            sd.set("logits" + suffix, try withNoGrad { try model(x) })
        }
        let io = dir.appendingPathComponent("\(name).io.safetensors").path
        try SafeTensors.write(sd, to: io)
        let (status, out) = try run(try Self.python(), [Self.root.appendingPathComponent("scripts/onnx_check.py").path, path, io])
        XCTAssertEqual(status, 0, "\(name): onnxruntime disagrees with sskd:\n\(out)")
        let lines = out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, inputs.count, "\(name): one result per input:\n\(out)")
        for l in lines { XCTAssertEqual(l["ok"] as? Bool, true, "\(name): \(l)") }
        return lines
    }

    /// The `sskd` executable built beside the test bundle.
    func sskdBinary() throws -> String {
        // The bundle URL is the .xctest bundle or, on Linux, the build folder holding it.
        let bundle = Bundle(for: ONNXCheckCase.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("sskd").path }
        let path = candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
        guard FileManager.default.isExecutableFile(atPath: path) else { throw MissingTool("the sskd binary is not built at \(path) (swift build --build-tests builds it)") }
        return path
    }

    /// Runs `exe` and returns its status and its stdout and stderr together.
    func run(_ exe: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
