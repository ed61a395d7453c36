import Foundation
import XCTest
import SSKDNN
import SSKDOptim
import SSKDTensor

/// sskd against torchvision on reduced-width MobileNetV2 and EfficientNet (every block type):
/// eval logits, train logits, loss, every gradient, BN buffers, Adam and SGD-momentum steps.
final class ModelParityTests: XCTestCase {
    func testMobileNetV2MatchesTorchvision() throws {
        assertParity(try measureParity(ParityFixture(path: try fixturePath("parity_mobilenet_v2.safetensors"))), "mobilenet_v2 (reduced)")
    }

    func testEfficientNetMatchesTorchvision() throws {
        assertParity(try measureParity(ParityFixture(path: try fixturePath("parity_efficientnet.safetensors"))), "efficientnet (reduced)")
    }
}

/// Full-size EfficientNet-B0 and MobileNetV2 at 96x96: run by
/// `python3 scripts/reference/nn_parity.py full`, which writes the fixtures to a temporary
/// directory and sets SSKD_FULL_PARITY_DIR. Skipped otherwise.
final class FullParityTests: XCTestCase {
    func testFullSizeModelsMatchTorchvision() throws {
        guard let dir = ProcessInfo.processInfo.environment["SSKD_FULL_PARITY_DIR"] else {
            throw XCTSkip("SSKD_FULL_PARITY_DIR not set (run scripts/reference/nn_parity.py full)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertFalse(files.isEmpty, "no fixtures in \(dir)")
        for name in files {
            assertParity(try measureParity(ParityFixture(path: dir + "/" + name)), name)
        }
    }
}
