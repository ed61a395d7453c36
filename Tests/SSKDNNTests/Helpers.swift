import Foundation
import XCTest
@testable import SSKDNN
import SSKDTensor

/// The torchvision reference numbers written by scripts/reference/nn_parity.py.
struct TorchvisionReference {
    let models: [String: [String: Any]]

    static let shared: TorchvisionReference? = {
        guard let url = Bundle.module.url(forResource: "torchvision_reference", withExtension: "json", subdirectory: "Fixtures"),
              let data = try? Data(contentsOf: url),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = obj["models"] as? [String: [String: Any]] else { return nil }
        return TorchvisionReference(models: models)
    }()

    static func load() throws -> TorchvisionReference {
        guard let r = shared else { throw XCTSkip("torchvision_reference.json missing") }
        return r
    }

    func parameters(_ name: String) -> Int? { (models[name]?["parameters"] as? NSNumber)?.intValue }
    func macs(_ name: String) -> Int? { (models[name]?["macs_96"] as? NSNumber)?.intValue }
    func repr(_ name: String) -> String? { models[name]?["repr"] as? String }
    /// (key, shape, dtype) triples in torchvision's order.
    func stateDict(_ name: String) -> [(String, [Int], String)] {
        guard let rows = models[name]?["state_dict"] as? [[Any]] else { return [] }
        return rows.compactMap { r in
            guard r.count == 3, let k = r[0] as? String, let s = r[1] as? [NSNumber], let d = r[2] as? String else { return nil }
            return (k, s.map { $0.intValue }, d)
        }
    }
}

/// The reduced models the parity fixtures use (mirrors nn_parity.py's reduced_cases).
func reducedMobileNetV2() throws -> MobileNetV2 {
    try MobileNetV2(.init(classes: 4, widthMult: 0.1, dropout: 0))
}
func reducedEfficientNet() throws -> EfficientNet {
    try EfficientNet(.init(classes: 4, widthMult: 0.1, depthMult: 0.34, dropout: 0, stochasticDepthProb: 0))
}

let testTempDir = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-nn-tests-\(getpid())")

/// A path in this test process's temporary directory (removed by `SafeTensorsTests.tearDown`).
func tmpPath(_ name: String) -> String {
    let dir = testTempDir
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// Asserts that `body` throws an error whose text contains every one of `parts`.
func assertErrorContains<T>(_ parts: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected an error containing \(parts)", file: file, line: line)
    } catch {
        for p in parts { XCTAssertTrue("\(error)".contains(p), "'\(p)' not in: \(error)", file: file, line: line) }
    }
}
