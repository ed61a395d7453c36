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
        let x = F.toFloat(Image(g.inputs[c.input]!))
        let p = c.params
        switch c.op {
        case "hflip": return F.hflip(x)
        case "pad": return try F.pad(x, left: int(p, "left"), top: int(p, "top"), right: int(p, "right"), bottom: int(p, "bottom"), fill: Float(num(p, "fill")))
        case "crop": return try F.crop(x, top: int(p, "top"), left: int(p, "left"), height: int(p, "height"), width: int(p, "width"))
        case "resize": return try F.resize(x, height: int(p, "height"), width: int(p, "width"))
        case "rotate": return F.rotate(x, angle: num(p, "angle"), fill: Float(num(p, "fill")))
        case "brightness": return try F.adjustBrightness(x, factor: Float(num(p, "factor")))
        case "contrast": return try F.adjustContrast(x, factor: Float(num(p, "factor")))
        case "saturation": return try F.adjustSaturation(x, factor: Float(num(p, "factor")))
        case "hue": return try F.adjustHue(x, factor: Float(num(p, "factor")))
        case "jitter":
            let params = ColorJitter.Parameters(order: (p["order"] as! [NSNumber]).map(\.intValue), brightness: Float(num(p, "brightness")),
                                                contrast: Float(num(p, "contrast")), saturation: Float(num(p, "saturation")), hue: Float(num(p, "hue")))
            return try ColorJitter.apply(x, params)
        case "normalize":
            return try F.normalize(x, mean: (p["mean"] as! [NSNumber]).map(\.floatValue), std: (p["std"] as! [NSNumber]).map(\.floatValue))
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
            case "resize":
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
        let t = Compose.paperTrain(size: 12)
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
        let crop = RandomCrop(12, padding: 4)
        let padded = try F.pad(F.toFloat(Image(try ByteImage(shape: ImageShape(channels: 1, height: 12, width: 12), pixels: (0..<144).map { UInt8($0 + 1) }))), left: 4, top: 4, right: 4, bottom: 4)
        var tops = Set<Int>()
        for s in 0..<100 {
            let g = Generator(seed: UInt64(s))
            let out = try crop.apply(F.toFloat(Image(try ByteImage(shape: ImageShape(channels: 1, height: 12, width: 12), pixels: (0..<144).map { UInt8($0 + 1) }))), generator: g)
            let g2 = Generator(seed: UInt64(s))
            let top = g2.nextInt(9), left = g2.nextInt(9)
            tops.insert(top)
            XCTAssertEqual(out, try F.crop(padded, top: top, left: left, height: 12, width: 12))
        }
        XCTAssertEqual(tops, Set(0...8))

        // Flip probability: about half.
        let flip = RandomHorizontalFlip()
        var flips = 0
        for s in 0..<400 where try flip.apply(img, generator: Generator(seed: UInt64(s))) != img { flips += 1 }
        XCTAssertTrue((150...250).contains(flips), "\(flips) flips of 400")
    }

    func testResizeSemantics() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 1, height: 10, width: 20), pixels: (0..<200).map { UInt8($0) }))
        XCTAssertEqual(try Resize(5).apply(img, generator: Generator(seed: 0)).shape, ImageShape(channels: 1, height: 5, width: 10))
        XCTAssertEqual(try Resize(96).apply(img, generator: Generator(seed: 0)).shape, ImageShape(channels: 1, height: 96, width: 192))
        // Same size is the identity; a constant image stays constant.
        XCTAssertEqual(try F.resize(img, height: 10, width: 20), img)
        let flat = try Image(shape: ImageShape(channels: 1, height: 7, width: 9), pixels: [Float](repeating: 0.25, count: 63))
        XCTAssertTrue(try F.resize(flat, height: 3, width: 4).pixels.allSatisfy { abs($0 - 0.25) < 1e-6 })
        assertDataError(["resize", "positive"]) { _ = try F.resize(img, height: 0, width: 3) }
        assertDataError(["RandomCrop", "larger"]) { _ = try RandomCrop(30).apply(img, generator: Generator(seed: 0)) }
        assertDataError(["adjust_hue"]) { _ = try F.adjustHue(img, factor: 0.7) }
        assertDataError(["normalize", "zero"]) { _ = try F.normalize(img, mean: [0], std: [0]) }
    }

    func testMultiViewDrawsIndependentReproducibleViews() throws {
        let img = Image(try ByteImage(shape: ImageShape(channels: 3, height: 16, width: 16), pixels: (0..<768).map { UInt8(($0 * 7) % 256) }))
        let mv = MultiView(twice: Compose.paperTrain(size: 16))
        let a = try mv.apply(img, generator: Generator(seed: 3))
        let b = try mv.apply(img, generator: Generator(seed: 3))
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a[0], a[1])
    }
}
