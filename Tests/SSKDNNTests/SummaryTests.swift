import XCTest
@testable import SSKDNN
import SSKDTensor

final class SummaryTests: XCTestCase {
    func testTotalsAt96MatchTorchvision() throws {
        let ref = try TorchvisionReference.load()
        let e = try EfficientNet(variant: 0, classes: 10, initialize: false)
        e.train()
        let s = try e.summary(input: [3, 96, 96])
        XCTAssertTrue(e.training, "summary restores the mode")
        XCTAssertEqual(s.totalParameters, 4_020_358)
        XCTAssertEqual(s.totalMACs, ref.macs("efficientnet_b0"))
        XCTAssertEqual(String(format: "%.1f", Double(s.totalMACs) / 1e6), "71.2")
        XCTAssertEqual(s.rows.first?.name, "features.0.0")
        XCTAssertEqual(s.rows.first?.outputShape, [1, 32, 48, 48])
        XCTAssertEqual(s.rows.first?.macs, 32 * 48 * 48 * 27)
        XCTAssertEqual(s.rows.last?.name, "classifier.1")
        XCTAssertEqual(s.rows.last?.outputShape, [1, 10])
        XCTAssertTrue(s.description.contains("4,020,358"))

        let m = try MobileNetV2(.init(classes: 10), initialize: false)
        let sm = try m.summary(input: [3, 96, 96])
        XCTAssertEqual(sm.totalParameters, 2_236_682)
        XCTAssertEqual(sm.totalMACs, ref.macs("mobilenet_v2"))
        XCTAssertEqual(String(format: "%.1f", Double(sm.totalMACs) / 1e6), "55.0")
        XCTAssertEqual(sm.rows.reduce(0) { $0 + $1.parameters }, 2_236_682)
    }
}
