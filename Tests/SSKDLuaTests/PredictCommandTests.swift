import Foundation
import XCTest
@testable import SSKDLua
import SSKDData
import SSKDTensor
import SSKDTrain

/// `sskd predict` end to end: a tiny run trained by a Lua recipe (a model_variants plugin, 1
/// epoch), a folder of PNG and JPEG images (RGB, gray, RGBA, another size) with broken files
/// among them, the built binary run on it, its rows checked against `evaluate` and the model's
/// eval forward in this process.
final class PredictCommandTests: XCTestCase {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "sskd-predict-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'" }

    /// class 0 (cat): the left half bright; class 1 (dog): the right half; plus a seeded texture.
    func image(_ k: Int, _ i: Int, channels: Int = 3, height: Int = 16, width: Int = 16) throws -> ByteImage {
        var px = [UInt8](repeating: 0, count: channels * height * width)
        for c in 0..<channels { for y in 0..<height { for x in 0..<width {
            let bright = (x < width / 2) == (k == 0)
            px[(c * height + y) * width + x] = UInt8((bright ? 160 : 20) + (x * 7 + y * 3 + i * 11 + c * 5) % 60)
        } } }
        return try ByteImage(shape: ImageShape(channels: channels, height: height, width: width), pixels: px)
    }

    /// Trains `model` (Lua) for one epoch on root/train/{cat,dog} into `run`.
    func train(_ root: String, run: String, model: String = "model_variants.small_cnn{classes = 2}") throws {
        let fm = FileManager.default
        for (k, cls) in ["cat", "dog"].enumerated() {
            try fm.createDirectory(atPath: "\(root)/train/\(cls)", withIntermediateDirectories: true)
            for i in 0..<8 { try ImageCodec.writePNG(try image(k, i), to: "\(root)/train/\(cls)/\(i).png") }
        }
        let host = try LuaScriptTests.makeHost()
        try host.execute("""
        local train = data.image_folder{root = \(quote(root + "/train"))}
        local size = transforms.resize({12, 12})
        fit{model = \(model), train = train, eval = train, epochs = 1, batch = 8, run = \(quote(run)), quiet = true,
            augment = size, eval_transform = transforms.compose{size, transforms.normalize{mean = {0.5, 0.5, 0.5}, std = {0.25, 0.25, 0.25}}}}
        """)
    }

    /// Images to predict, named by class (cat-*, dog-*), and the broken files.
    func writePredictionImages(_ dir: String) throws -> (good: [String], broken: [String]) {
        try FileManager.default.createDirectory(atPath: dir + "/more", withIntermediateDirectories: true)
        var good: [String] = []
        func add(_ name: String, _ img: ByteImage) throws {
            let path = dir + "/" + name
            if name.hasSuffix(".png") { try ImageCodec.writePNG(img, to: path) } else { try ImageCodec.writeJPEG(img, to: path) }
            good.append(path)
        }
        try add("cat-rgb.png", try image(0, 20))
        try add("dog-rgb.jpg", try image(1, 21))
        try add("cat-gray.png", try image(0, 22, channels: 1))
        try add("more/dog-gray.jpg", try image(1, 23, channels: 1, height: 20, width: 14))
        try add("dog-rgba.png", try image(1, 24, channels: 4))
        let corrupt = dir + "/corrupt.png", truncated = dir + "/more/truncated.jpg", fake = dir + "/fake.jpg"
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 1, count: 64)).write(to: URL(fileURLWithPath: corrupt))
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: dir + "/dog-rgb.jpg"))
        try jpeg.prefix(jpeg.count / 3).write(to: URL(fileURLWithPath: truncated))
        try "a text file".write(toFile: fake, atomically: true, encoding: .utf8)
        try "not listed: no image extension".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        return (good.sorted(), [corrupt, fake, truncated])
    }

    /// CSV rows keyed by file: (class, probability, top-k [(class, probability)]).
    func parseCSV(_ text: String, top k: Int) throws -> [String: (cls: String, p: Float, top: [(String, Float)])] {
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, (["file", "class", "probability"] + (1...k).flatMap { ["top\($0)_class", "top\($0)_probability"] }).joined(separator: ","))
        var rows: [String: (String, Float, [(String, Float)])] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(f.count, 3 + 2 * k, line)
            let top = (0..<k).map { (f[3 + 2 * $0], Float(f[4 + 2 * $0])!) }
            rows[f[0]] = (f[1], try XCTUnwrap(Float(f[2]), line), top)
        }
        XCTAssertEqual(rows.count, lines.count - 1, "one row per file")
        return rows
    }

    func testPredictOnARunDirectoryMatchesEvaluateAndTheEvalForward() throws {
        let exe = try sskdBinary()
        let root = try tempDir(), run = root + "/run"
        try train(root, run: run)
        let record = try ModelRecord.read(run + "/model.json")
        XCTAssertEqual(record.constructor?.description, "model_variants.small_cnn{classes = 2}")
        XCTAssertEqual(record.input, [3, 12, 12])
        XCTAssertEqual(record.classes, ["cat", "dog"])
        XCTAssertEqual(record.evalTransform?.map(\.op), ["resize", "normalize"])

        let (good, broken) = try writePredictionImages(root + "/pred")
        let r = try runProcess(exe, ["predict", run, root + "/pred", "--top", "2", "--batch", "3"], input: "")
        XCTAssertEqual(r.status, 1, "broken files make the exit status non-zero: \(r.err)")
        for file in broken { XCTAssertTrue(r.err.contains("sskd predict: skipping \(file): "), r.err) }
        XCTAssertTrue(r.err.contains("\(root)/pred/corrupt.png: corrupt PNG") || r.err.contains("corrupt.png: corrupt PNG"), r.err)
        XCTAssertTrue(r.err.contains("fake.jpg: not a PNG or JPEG file"), r.err)
        XCTAssertTrue(r.err.contains("grayscale images are converted to 3 channels by repeating the gray plane"), r.err)
        XCTAssertTrue(r.err.contains("RGBA images are converted to 3 channels by dropping alpha"), r.err)
        XCTAssertTrue(r.err.contains("sskd predict: 5 images in "), r.err)
        XCTAssertTrue(r.err.contains(" img/s), 3 files skipped"), r.err)
        XCTAssertFalse(r.err.contains("resized and center-cropped"), "the run's eval transform resizes to 12x12 itself: \(r.err)")

        let rows = try parseCSV(r.out, top: 2)
        XCTAssertEqual(rows.keys.sorted(), good)
        for (file, row) in rows {
            XCTAssertTrue(["cat", "dog"].contains(row.cls), file)
            XCTAssertEqual(row.top[0].0, row.cls)
            XCTAssertEqual(row.top[0].1, row.p)
            XCTAssertGreaterThanOrEqual(row.top[0].1, row.top[1].1, "sorted")
            XCTAssertLessThanOrEqual(row.top.map(\.1).reduce(0, +), 1 + 1e-6)
            XCTAssertNotEqual(row.top[0].0, row.top[1].0)
        }

        // In this process: the same model from the run, and evaluate() on the good files put in
        // class folders by their names.
        let host = try LuaScriptTests.makeHost()
        let trained = try host.loadTrainedModel(run)
        XCTAssertEqual(trained.weights, run + "/best.safetensors")
        let labelled = root + "/labelled"
        for file in good {
            let name = (file as NSString).lastPathComponent
            let cls = name.hasPrefix("cat") ? "cat" : "dog"
            try FileManager.default.createDirectory(atPath: labelled + "/" + cls, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: file, toPath: labelled + "/" + cls + "/" + name)
        }
        let folder = try ImageFolder(root: labelled, channels: 3)
        let ev = try evaluate(trained.model, on: folder, transform: trained.evalTransform)
        var confusion = [[0, 0], [0, 0]]
        for (file, row) in rows {
            let name = (file as NSString).lastPathComponent
            confusion[name.hasPrefix("cat") ? 0 : 1][row.cls == "cat" ? 0 : 1] += 1
        }
        XCTAssertEqual(confusion, ev.confusion, "the same predictions as evaluate")
        let batch = try DataLoader(folder, batchSize: 16, shuffle: false, transform: trained.evalTransform).batch(epoch: 0, number: 0)
        trained.model.eval()
        let probs = try withNoGrad { try trained.model(batch.images).softmax(1) }.toArray()
        for (i, f) in folder.files.enumerated() {
            let name = (f as NSString).lastPathComponent
            let row = try XCTUnwrap(rows.first { ($0.key as NSString).lastPathComponent == name }?.value, name)
            let p = Dictionary(uniqueKeysWithValues: row.top.map { ($0.0, $0.1) })
            XCTAssertEqual(p["cat"]!, probs[2 * i], accuracy: 1e-5, name)
            XCTAssertEqual(p["dog"]!, probs[2 * i + 1], accuracy: 1e-5, name)
        }

        // JSON lines to a file: complete, parsed line by line, nothing left under a temporary name.
        let out = root + "/out/predictions.jsonl"
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        let j = try runProcess(exe, ["predict", run] + good + ["--format", "jsonl", "--out", out, "--top", "1"], input: "")
        XCTAssertEqual(j.status, 0, "every file is good: \(j.err)")
        XCTAssertEqual(j.out, "")
        XCTAssertTrue(j.err.contains("written to \(out)"), j.err)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, good.count)
        for (line, file) in zip(lines, good) {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            XCTAssertEqual(obj["file"] as? String, file)
            // Another batch composition: the same up to float rounding (eval forwards split batches by thread).
            XCTAssertEqual(obj["class"] as? String, rows[file]?.cls)
            XCTAssertEqual((obj["top"] as? [Any])?.count, 1)
            XCTAssertEqual(Float(try XCTUnwrap(obj["probability"] as? Double)), try XCTUnwrap(rows[file]?.p), accuracy: 1e-5)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/out"), ["predictions.jsonl"])

        // A failure before any prediction leaves an earlier --out file as it was.
        try "earlier\n".write(toFile: out, atomically: true, encoding: .utf8)
        let bad = try runProcess(exe, ["predict", run, good[0], "--model", "resnet50", "--out", out], input: "")
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.contains("unknown model 'resnet50'"), bad.err)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "earlier\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/out"), ["predictions.jsonl"])
    }

    func testPredictFromAWeightsFileNeedsItsDescription() throws {
        let exe = try sskdBinary()
        let root = try tempDir(), run = root + "/run"
        try train(root, run: run)
        let (good, _) = try writePredictionImages(root + "/pred")
        let weights = run + "/best.safetensors"
        let missing = try runProcess(exe, ["predict", weights, good[0], "--model", "small_cnn"], input: "")
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("\(weights): a weights file says nothing about its model: give --input CxHxW, --classes NAMES|COUNT, --mean/--std"), missing.err)

        let describe = ["--model", "small_cnn", "--input", "3x12x12", "--mean", "0.5", "--std", "0.25"]
        let wrong = try runProcess(exe, ["predict", weights, good[0], "--classes", "3"] + describe, input: "")
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.err.contains("does not fit model_variants.small_cnn{classes = 3, in_channels = 3}"), wrong.err)
        let badInput = try runProcess(exe, ["predict", weights, good[0], "--classes", "2", "--model", "small_cnn", "--input", "3x12", "--mean", "0.5", "--std", "0.25"], input: "")
        XCTAssertNotEqual(badInput.status, 0)
        XCTAssertTrue(badInput.err.contains("--input expects CxHxW"), badInput.err)

        let r = try runProcess(exe, ["predict", weights] + good + ["--classes", "cat,dog", "--top", "2"] + describe, input: "")
        XCTAssertEqual(r.status, 0, r.err)
        // Without the run's resize, 16x16 and 20x14 images are fitted to the 12x12 input (said once).
        XCTAssertTrue(r.err.contains("cat-gray.png is 16x16 after the eval transform; such images are resized and center-cropped to 12x12, the model's input"), r.err)
        XCTAssertEqual(r.err.components(separatedBy: "resized and center-cropped").count, 2, r.err)
        let rows = try parseCSV(r.out, top: 2)
        XCTAssertEqual(rows.keys.sorted(), good)
        // The square images: Normalize then resize to 12x12 equals the run's resize then
        // Normalize (both linear), so the run directory gives the same probabilities.
        let fromRun = try parseCSV(try runProcess(exe, ["predict", run] + good + ["--top", "2"], input: "").out, top: 2)
        for file in good where !file.contains("dog-gray") {
            let a = Dictionary(uniqueKeysWithValues: rows[file]!.top.map { ($0.0, $0.1) })
            let b = Dictionary(uniqueKeysWithValues: fromRun[file]!.top.map { ($0.0, $0.1) })
            XCTAssertEqual(a["cat"]!, b["cat"]!, accuracy: 1e-4, file)
        }
    }

    func testRunsThatCannotDescribeTheirModelSayWhatToGive() throws {
        let root = try tempDir(), run = root + "/run"
        try train(root, run: run, model: "nn.Sequential{nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)}")
        let host = try LuaScriptTests.makeHost()
        XCTAssertThrowsError(try host.loadTrainedModel(run)) {
            XCTAssertTrue("\($0)".contains("the run's model (Sequential) was assembled by hand"), "\($0)")
            XCTAssertTrue("\($0)".contains("give --model NAME"), "\($0)")
        }
        try FileManager.default.removeItem(atPath: run + "/model.json")
        XCTAssertThrowsError(try host.loadTrainedModel(run)) {
            XCTAssertTrue("\($0)".contains("\(run): no model.json"), "\($0)")
            XCTAssertTrue("\($0)".contains("give the weights file, \(run)/best.safetensors, with --model"), "\($0)")
        }
        XCTAssertThrowsError(try host.loadTrainedModel(root + "/nothing")) { XCTAssertTrue("\($0)".contains("no such run directory or weights file"), "\($0)") }
        XCTAssertThrowsError(try host.loadTrainedModel(run + "/best.safetensors", TrainedModelOptions(mean: [0.5]))) {
            XCTAssertTrue("\($0)".contains("give both --mean and --std"), "\($0)")
        }
    }
}
