import Foundation
import XCTest
import SSKDTensor
@testable import SSKDData

/// Golden outputs of torchvision (scripts/reference/transforms_golden.py).
struct Golden {
    struct Case { let name, input, op: String; let params: [String: Any]; let shape: [Int]; let output: [Float] }
    let inputs: [String: ByteImage]
    let cases: [Case]

    static func load() throws -> Golden {
        guard let url = Bundle.module.url(forResource: "Fixtures/transforms_golden", withExtension: "json") else {
            throw DataError("transforms_golden.json", "fixture missing")
        }
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var inputs = [String: ByteImage]()
        for (k, v) in doc["inputs"] as! [String: [String: Any]] {
            let s = v["shape"] as! [Int]
            let bytes = [UInt8](Data(base64Encoded: v["data"] as! String)!)
            inputs[k] = try ByteImage(shape: ImageShape(channels: s[0], height: s[1], width: s[2]), pixels: bytes)
        }
        let cases = (doc["cases"] as! [[String: Any]]).map { c -> Case in
            let d = Data(base64Encoded: c["output"] as! String)!
            let floats = d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            return Case(name: c["name"] as! String, input: c["input"] as! String, op: c["op"] as! String,
                        params: c["params"] as! [String: Any], shape: c["shape"] as! [Int], output: floats)
        }
        return Golden(inputs: inputs, cases: cases)
    }
}

private func num(_ p: [String: Any], _ k: String) -> Double { (p[k] as! NSNumber).doubleValue }
private func int(_ p: [String: Any], _ k: String) -> Int { (p[k] as! NSNumber).intValue }

final class TransformTests: XCTestCase {
    /// Runs our kernel for a golden case, on the input scaled to [0, 1] as the script did.
    func run(_ c: Golden.Case, _ g: Golden) throws -> Image {
        let x = TF.toFloat(Image(g.inputs[c.input]!))
        let p = c.params
        switch c.op {
        case "hflip": return TF.hflip(x)
        case "pad": return try TF.pad(x, left: int(p, "left"), top: int(p, "top"), right: int(p, "right"), bottom: int(p, "bottom"), fill: Float(num(p, "fill")))
        case "crop": return try TF.crop(x, top: int(p, "top"), left: int(p, "left"), height: int(p, "height"), width: int(p, "width"))
        case "resize": return try TF.resize(x, height: int(p, "height"), width: int(p, "width"))
        case "rotate": return try TF.rotate(x, angle: num(p, "angle"), fill: Float(num(p, "fill")))
        case "brightness": return try TF.adjustBrightness(x, factor: Float(num(p, "factor")))
        case "contrast": return try TF.adjustContrast(x, factor: Float(num(p, "factor")))
        case "saturation": return try TF.adjustSaturation(x, factor: Float(num(p, "factor")))
        case "hue": return try TF.adjustHue(x, factor: Float(num(p, "factor")))
        case "jitter":
            let params = ColorJitter.Parameters(order: (p["order"] as! [NSNumber]).map(\.intValue), brightness: Float(num(p, "brightness")),
                                                contrast: Float(num(p, "contrast")), saturation: Float(num(p, "saturation")), hue: Float(num(p, "hue")))
            return try ColorJitter.apply(x, params)
        case "grayscale": return try TF.rgbToGrayscale(x, outputChannels: int(p, "channels"))
        case "resized_crop":
            let c = try TF.crop(x, top: int(p, "top"), left: int(p, "left"), height: int(p, "height"), width: int(p, "width"))
            return try TF.resize(c, height: int(p, "size"), width: int(p, "size"))
        case "normalize":
            return try TF.normalize(x, mean: (p["mean"] as! [NSNumber]).map(\.floatValue), std: (p["std"] as! [NSNumber]).map(\.floatValue))
        default: throw DataError("golden", "unknown op \(c.op)")
        }
    }

    /// Tolerances against torchvision (values in [0, 1]): exact for data movement, float
    /// rounding for arithmetic, and for nearest-neighbour rotation the share of pixels that may
    /// pick a neighbouring source pixel when a sample point lies within rounding of a pixel edge.
    func testAgainstTorchvision() throws {
        let g = try Golden.load()
        XCTAssertGreaterThanOrEqual(g.cases.count, 40)
        var report = [String]()
        for c in g.cases {
            let y = try run(c, g)
            XCTAssertEqual([y.channels, y.height, y.width], c.shape, c.name)
            guard y.pixels.count == c.output.count else { continue }
            let diffs = zip(y.pixels, c.output).map { abs($0 - $1) }
            let maxDiff = diffs.max() ?? 0
            let mismatched = diffs.filter { $0 != 0 }.count
            report.append("\(c.name): max |diff| \(maxDiff), mismatched \(mismatched)/\(diffs.count)")
            switch c.op {
            case "hflip", "pad", "crop":
                XCTAssertTrue(y.pixels == c.output, "\(c.name) must equal torchvision exactly: \(mismatched) values differ, max \(maxDiff)")
            case "rotate":
                XCTAssertEqual(mismatched, 0, "\(c.name): \(mismatched) of \(diffs.count) values differ")
            case "resize", "resized_crop":
                XCTAssertLessThanOrEqual(maxDiff, 2e-6, c.name)
            case "hue", "jitter":
                XCTAssertLessThanOrEqual(maxDiff, 2e-6, c.name)
            default:
                XCTAssertLessThanOrEqual(maxDiff, 1e-6, c.name)
            }
        }
        print(report.joined(separator: "\n"))
    }

    func testRandomTransformsAreSeededAndInRange() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 3, height: 12, width: 10),
                                      pixels: (0..<360).map { UInt8($0 % 256) }))
        let t = try Compose.paperTrain(size: 12)
        let a = try t.apply(img, generator: Generator.derived(seed: 5, 1, 2))
        let b = try t.apply(img, generator: Generator.derived(seed: 5, 1, 2))
        let c = try t.apply(img, generator: Generator.derived(seed: 5, 1, 3))
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.shape, ImageShape(channels: 3, height: 12, width: 12))
        XCTAssertEqual(a.range, 1)
        XCTAssertTrue(a.pixels.allSatisfy { $0 >= 0 && $0 <= 1 })

        // ColorJitter draws a permutation and factors in [1 - v, 1 + v].
        let j = try ColorJitter(brightness: 0.2, contrast: 0.3, saturation: 0.4, hue: 0.1)
        var orders = Set<[Int]>()
        for s in 0..<200 {
            let p = j.parameters(Generator(seed: UInt64(s)))
            XCTAssertEqual(p.order.sorted(), [0, 1, 2, 3])
            orders.insert(p.order)
            XCTAssertTrue((0.8...1.2).contains(p.brightness!) && (0.7...1.3).contains(p.contrast!))
            XCTAssertTrue((0.6...1.4).contains(p.saturation!) && (-0.1...0.1).contains(p.hue!))
        }
        XCTAssertGreaterThan(orders.count, 12)
        XCTAssertNil(try ColorJitter(brightness: 0.2).parameters(Generator(seed: 0)).contrast)

        // RandomCrop with padding 4 on a 12x12 image: the result is a window of the padded image.
        let crop = try RandomCrop(12, padding: 4)
        let padded = try TF.pad(TF.toFloat(Image(try ByteImage(shape: ImageShape(channels: 1, height: 12, width: 12), pixels: (0..<144).map { UInt8($0 + 1) }))), left: 4, top: 4, right: 4, bottom: 4)
        var tops = Set<Int>()
        for s in 0..<100 {
            let g = Generator(seed: UInt64(s))
            let out = try crop.apply(TF.toFloat(Image(try ByteImage(shape: ImageShape(channels: 1, height: 12, width: 12), pixels: (0..<144).map { UInt8($0 + 1) }))), generator: g)
            let g2 = Generator(seed: UInt64(s))
            let top = g2.nextInt(9), left = g2.nextInt(9)
            tops.insert(top)
            XCTAssertEqual(out, try TF.crop(padded, top: top, left: left, height: 12, width: 12))
        }
        XCTAssertEqual(tops, Set(0...8))

        // Flip probability: about half.
        let flip = RandomHorizontalFlip()
        var flips = 0
        for s in 0..<400 where try flip.apply(img, generator: Generator(seed: UInt64(s))) != img { flips += 1 }
        XCTAssertTrue((150...250).contains(flips), "\(flips) flips of 400")
    }

    /// The pipeline runs colour and geometry on raw 0...255 values (ToFloat comes last, as in the
    /// paper); that must agree with running them on [0, 1] values.
    func testRange255AgreesWithUnitRange() throws {
        let bytes = try ByteImage(shape: ImageShape(channels: 3, height: 9, width: 11), pixels: (0..<297).map { UInt8(($0 * 37 + $0 / 7) % 256) })
        let raw = Image(bytes), unit = TF.toFloat(raw)
        let ops: [(String, (Image) throws -> Image)] = [
            ("brightness", { try TF.adjustBrightness($0, factor: 1.3) }),
            ("contrast", { try TF.adjustContrast($0, factor: 0.7) }),
            ("saturation", { try TF.adjustSaturation($0, factor: 1.4) }),
            ("hue", { try TF.adjustHue($0, factor: -0.15) }),
            ("resize", { try TF.resize($0, height: 5, width: 17) }),
            ("rotate", { try TF.rotate($0, angle: 8) }),
            ("grayscale", { try TF.rgbToGrayscale($0) }),
        ]
        for (name, op) in ops {
            let a = TF.toFloat(try op(raw)), b = try op(unit)
            XCTAssertEqual(a.shape, b.shape, name)
            let d = zip(a.pixels, b.pixels).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(d, 2e-6, name)
        }
    }

    func testRandomResizedCropAndGrayscale() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 3, height: 30, width: 40), pixels: (0..<3600).map { UInt8($0 % 256) }))
        let t = try RandomResizedCrop(16, scale: 0.2...1)
        for s in 0..<50 {
            let w = t.window(height: 30, width: 40, generator: Generator(seed: UInt64(s)))
            XCTAssertTrue(w.top >= 0 && w.left >= 0 && w.top + w.height <= 30 && w.left + w.width <= 40)
            let area = Double(w.height * w.width) / 1200, aspect = Double(w.width) / Double(w.height)
            XCTAssertTrue(area > 0.15 && area < 1.05 && aspect > 0.7 && aspect < 1.4, "\(w)")
            let out = try t.apply(img, generator: Generator(seed: UInt64(s)))
            XCTAssertEqual(out.shape, ImageShape(channels: 3, height: 16, width: 16))
        }
        // Impossible scale: falls back to the central crop of the allowed aspect ratio.
        let wide = try RandomResizedCrop(8, scale: 5...6).window(height: 10, width: 40, generator: Generator(seed: 1))
        XCTAssertEqual(wide.height, 10)
        XCTAssertEqual(wide.width, 13)
        XCTAssertEqual(wide.left, 13)
        let g = try RandomGrayscale(p: 1).apply(img, generator: Generator(seed: 0))
        XCTAssertEqual(g.channels, 3)
        XCTAssertEqual(Array(g.pixels[0..<1200]), Array(g.pixels[1200..<2400]))
        let mv = try MultiView(twice: Compose.contrastive(size: 16)).apply(img, generator: Generator(seed: 2))
        XCTAssertEqual(mv.map(\.shape), [ImageShape(channels: 3, height: 16, width: 16), ImageShape(channels: 3, height: 16, width: 16)])
    }

    func testResizeSemantics() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 1, height: 10, width: 20), pixels: (0..<200).map { UInt8($0) }))
        XCTAssertEqual(try Resize(5).apply(img, generator: Generator(seed: 0)).shape, ImageShape(channels: 1, height: 5, width: 10))
        XCTAssertEqual(try Resize(96).apply(img, generator: Generator(seed: 0)).shape, ImageShape(channels: 1, height: 96, width: 192))
        // Same size is the identity; a constant image stays constant.
        XCTAssertEqual(try TF.resize(img, height: 10, width: 20), img)
        let flat = try Image(shape: ImageShape(channels: 1, height: 7, width: 9), pixels: [Float](repeating: 0.25, count: 63))
        XCTAssertTrue(try TF.resize(flat, height: 3, width: 4).pixels.allSatisfy { abs($0 - 0.25) < 1e-6 })
        assertDataError(["resize", "must be in 1..."]) { _ = try TF.resize(img, height: 0, width: 3) }
        assertDataError(["RandomCrop", "larger"]) { _ = try RandomCrop(30).apply(img, generator: Generator(seed: 0)) }
        assertDataError(["adjust_hue"]) { _ = try TF.adjustHue(img, factor: 0.7) }
        assertDataError(["normalize", "zero"]) { _ = try TF.normalize(img, mean: [0], std: [0]) }
    }

    func testMultiViewDrawsIndependentReproducibleViews() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 3, height: 16, width: 16), pixels: (0..<768).map { UInt8(($0 * 7) % 256) }))
        let mv = MultiView(twice: try Compose.paperTrain(size: 16))
        let a = try mv.apply(img, generator: Generator(seed: 3))
        let b = try mv.apply(img, generator: Generator(seed: 3))
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a[0], a[1])
    }
}
