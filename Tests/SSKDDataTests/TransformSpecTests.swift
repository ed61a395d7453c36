import Foundation
import XCTest
import SSKDTensor
@testable import SSKDData

/// Deterministic transforms as data (what a run's model.json records) and ResizeCrop.
final class TransformSpecTests: XCTestCase {
    func ramp(_ c: Int, _ h: Int, _ w: Int) throws -> Image {
        try Image(shape: ImageShape(channels: c, height: h, width: w), pixels: (0..<(c * h * w)).map { Float(($0 * 37) % 256) }, range: 255)
    }

    func testSpecsRoundTripThroughJSON() throws {
        let transforms: [Transform] = [
            Compose([try Resize(10), try CenterCrop(height: 8, width: 6), ToFloat(), Normalize(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])]),
            try Resize(height: 7, width: 9, antialias: false),
            try ResizeCrop(height: 5, width: 5),
            Compose([]),
        ]
        let img = try ramp(3, 12, 16)
        for t in transforms {
            let specs = try XCTUnwrap(t.specs, t.description)
            let back = try JSONDecoder().decode([TransformSpec].self, from: try JSONEncoder().encode(specs))
            XCTAssertEqual(back, specs)
            let rebuilt = try TransformSpec.make(back)
            XCTAssertEqual(rebuilt.description, t.description)
            XCTAssertEqual(try rebuilt.apply(img, generator: Generator(seed: 1)), try t.apply(img, generator: Generator(seed: 1)), t.description)
        }
        XCTAssertEqual(try Resize(96).specs, [TransformSpec("resize", size: 96, antialias: true)])
    }

    func testRandomTransformsHaveNoSpec() throws {
        XCTAssertNil(RandomHorizontalFlip().specs)
        XCTAssertNil(try RandomCrop(8, padding: 1).specs)
        XCTAssertNil(try ColorJitter(brightness: 0.2).specs)
        XCTAssertNil(Lambda("x") { img, _ in img }.specs)
        XCTAssertNil(Compose([try Resize(8), RandomHorizontalFlip()]).specs, "one part without a spec: the whole has none")
    }

    func testBadSpecsNameTheOpAndField() {
        assertDataError(["transform 'zoom'", "unknown op"]) { _ = try TransformSpec("zoom").make() }
        assertDataError(["transform 'center_crop'", "field 'height' is required"]) { _ = try TransformSpec("center_crop", width: 3).make() }
        assertDataError(["transform 'resize'", "field 'width' is required"]) { _ = try TransformSpec("resize", height: 3).make() }
        assertDataError(["transform 'normalize'", "field 'std' is required"]) { _ = try TransformSpec("normalize", mean: [0.5]).make() }
        assertDataError(["transform 'normalize'", "same non-zero length"]) { _ = try TransformSpec("normalize", mean: [0.5, 0.5], std: [1]).make() }
        assertDataError(["transform 'normalize'", "no zero std"]) { _ = try TransformSpec("normalize", mean: [0.5], std: [0]).make() }
        assertDataError(["CenterCrop", "height must be in"]) { _ = try TransformSpec("center_crop", height: 0, width: 3).make() }
    }

    /// ResizeCrop keeps the aspect ratio: the image just covers the target, then the centre is cut.
    func testResizeCropCoversThenCropsTheCentre() throws {
        let fit = try ResizeCrop(height: 8, width: 8)
        let wide = try ramp(3, 12, 20), tall = try ramp(1, 30, 10)
        XCTAssertEqual(try fit.apply(wide, generator: Generator(seed: 0)),
                       try TF.centerCrop(try TF.resize(wide, height: 8, width: 13), height: 8, width: 8))
        XCTAssertEqual(try fit.apply(tall, generator: Generator(seed: 0)),
                       try TF.centerCrop(try TF.resize(tall, height: 24, width: 8), height: 8, width: 8))
        let small = try ramp(1, 4, 6)
        XCTAssertEqual(try fit.apply(small, generator: Generator(seed: 0)).shape, ImageShape(channels: 1, height: 8, width: 8), "upscaled to cover")
        let same = try ramp(3, 8, 8)
        XCTAssertEqual(try fit.apply(same, generator: Generator(seed: 0)), same)
        assertDataError(["ResizeCrop", "height must be in"]) { _ = try ResizeCrop(height: 0, width: 8) }
    }
}
