import Foundation
import XCTest
import SSKDData
import SSKDNN
import SSKDOptim
import SSKDTensor
@testable import SSKDTrain

/// model.json and the Predictor: a tiny run trained with the Trainer, its images written as
/// PNG and JPEG files (gray and RGB) beside broken ones, predicted, and checked against
/// `evaluate` and the model's own eval forward.
final class PredictTests: XCTestCase {
    let quiet = { Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!) }

    /// A 1-epoch run of the tiny CNN on the squares (1x8x8, classes a...d) in `dir`.
    func trainTinyRun(_ dir: String) throws -> Trainer {
        Generator.manualSeed(42)
        let model = try tinyNet()
        var s = TrainSettings(epochs: 1)
        s.batchSize = 16
        let t = try Trainer(model: model, optimizer: try Adam(model.parameters(), lr: 1e-2), train: Squares(count: 64, seed: 1), settings: s)
        t.eval = Squares(count: 16, seed: 2)
        t.run = try RunDirectory(path: dir)
        t.progress = quiet()
        _ = try t.fit()
        return t
    }

    func testFitWritesModelRecordAndItReadsBack() throws {
        let dir = tempDir()
        _ = try trainTinyRun(dir)
        let r = try ModelRecord.read(dir + "/model.json")
        XCTAssertNil(r.constructor, "a hand-assembled Sequential has no constructor")
        XCTAssertEqual(r.module, "Sequential")
        XCTAssertEqual(r.input, [1, 8, 8])
        XCTAssertEqual(r.classes, ["a", "b", "c", "d"])
        XCTAssertEqual(r.evalTransform, [], "no eval transform: images only scaled to [0, 1]")
        XCTAssertEqual(r.weights, "best.safetensors")
        XCTAssertEqual(r.parameters, try tinyNet().parameterCount)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + r.weights))

        // A recorded constructor and eval transform survive the round trip through JSON.
        let model = try tinyNet()
        model.constructor = ModelConstructor("model_variants.small_cnn", options: ["classes": .int(4), "width": .int(8), "dropout": .number(0.5),
                                                                                   "name": .string("a \"b\""), "bn": .bool(true)])
        let tf = Compose([try Resize(10), try CenterCrop(8), Normalize(mean: [0.5], std: [0.25])])
        let rec = try ModelRecord(model: model, classNames: ["a", "b", "c", "d"], dataset: Squares(count: 4, seed: 0), evalTransform: tf)
        XCTAssertEqual(rec.input, [1, 8, 8])
        try rec.json().write(to: URL(fileURLWithPath: dir + "/model.json"))
        let back = try ModelRecord.read(dir + "/model.json")
        XCTAssertEqual(back, rec)
        XCTAssertEqual(back.constructor?.options["classes"], .int(4), "integers stay integers")
        XCTAssertEqual(back.constructor?.options["dropout"], .number(0.5))
        XCTAssertEqual(back.constructor?.options["bn"], .bool(true))
        XCTAssertEqual(try TransformSpec.make(back.evalTransform!).description, tf.description)
        // A random transform cannot be recorded as data: nil, with its description kept.
        let random = try ModelRecord(model: model, classNames: ["a"], dataset: Squares(count: 1, seed: 0), evalTransform: RandomHorizontalFlip())
        XCTAssertNil(random.evalTransform)
        XCTAssertEqual(random.evalTransformDescription, "RandomHorizontalFlip(p: 0.5)")
    }

    func testBadModelRecordsAreClearErrors() throws {
        let dir = tempDir()
        let path = dir + "/model.json"
        func assertError(_ text: String, _ fragment: String, line: UInt = #line) {
            try? text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ModelRecord.read(path), line: line) {
                XCTAssertTrue("\($0)".contains(path) && "\($0)".contains(fragment), "\($0)", line: line)
            }
        }
        XCTAssertThrowsError(try ModelRecord.read(dir + "/nope.json")) { XCTAssertTrue("\($0)".contains("nope.json: not found"), "\($0)") }
        assertError("{\"format\": ", "malformed JSON")
        let good = #"{"format": "sskd-model-1", "module": "M", "parameters": 1, "input": [1, 8, 8], "classes": ["a"], "eval_transform_description": "", "weights": "w"}"#
        XCTAssertNoThrow(try { try good.write(toFile: path, atomically: true, encoding: .utf8); _ = try ModelRecord.read(path) }())
        assertError(good.replacingOccurrences(of: #""input": [1, 8, 8], "#, with: ""), "field 'input' is missing")
        assertError(good.replacingOccurrences(of: "[1, 8, 8]", with: "[1, 8]"), "input must be [C, H, W]")
        assertError(good.replacingOccurrences(of: "[1, 8, 8]", with: "[1, 0, 8]"), "input must be [C, H, W]")
        assertError(good.replacingOccurrences(of: "sskd-model-1", with: "sskd-model-9"), "format 'sskd-model-9'")
        assertError(good.replacingOccurrences(of: #"["a"]"#, with: "[]"), "no class names")
        assertError(good.replacingOccurrences(of: #""parameters": 1"#, with: #""parameters": "x""#), "'parameters' is not a")
    }

    /// Writes the eval squares as files: class folders root/<class>/ (PNG and JPEG, gray and
    /// RGB), returning them with their labels.
    func writeImages(_ root: String, count: Int) throws -> [(file: String, label: Int)] {
        let ds = Squares(count: count, seed: 2)
        var out: [(String, Int)] = []
        for i in 0..<count {
            let label = try ds.label(at: i)!
            let folder = root + "/" + ds.classNames[label]
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let gray = try ds.image(at: i)
            let file: String
            switch i % 4 {
            case 0: file = folder + "/\(i).png"; try ImageCodec.writePNG(gray, to: file)
            case 1: file = folder + "/\(i).jpg"; try ImageCodec.writeJPEG(gray, to: file)
            case 2: file = folder + "/\(i)-rgb.png"; try ImageCodec.writePNG(try gray.converted(toChannels: 3), to: file)
            default: file = folder + "/\(i)-rgb.jpg"; try ImageCodec.writeJPEG(try gray.converted(toChannels: 3), to: file)
            }
            out.append((file, label))
        }
        return out
    }

    /// Corrupt, truncated and non-image files.
    func writeBrokenImages(_ dir: String, from good: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let corrupt = dir + "/corrupt.png", truncated = dir + "/truncated.jpg", text = dir + "/text.png"
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 7, count: 100)).write(to: URL(fileURLWithPath: corrupt))
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: good))
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: truncated))
        try "not an image".write(toFile: text, atomically: true, encoding: .utf8)
        return [corrupt, truncated, text]
    }

    func testPredictionsEqualEvaluateAndTheEvalForward() throws {
        let dir = tempDir()
        let t = try trainTinyRun(dir + "/run")
        let model = t.model
        let labelled = try writeImages(dir + "/images", count: 24)
        let broken = try writeBrokenImages(dir + "/broken", from: labelled[1].file)

        let predictor = try Predictor(model: model, input: ImageShape(channels: 1, height: 8, width: 8), classNames: ["a", "b", "c", "d"], evalTransform: nil)
        predictor.top = 3
        predictor.batchSize = 5  // batches that mix good and broken files
        let log = dir + "/log.txt"
        FileManager.default.createFile(atPath: log, contents: nil)
        predictor.progress = Progress(live: false, out: FileHandle(forWritingAtPath: log)!)
        var files = labelled.map(\.file)
        files.insert(contentsOf: broken, at: 7)
        var predictions: [Prediction] = []
        let summary = try predictor.run(files) { predictions.append($0) }

        XCTAssertEqual(summary.predicted, 24)
        XCTAssertEqual(predictions.map(\.file), labelled.map(\.file), "one prediction per good image, in order")
        XCTAssertEqual(summary.failed.map(\.file), broken)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        for (file, reason) in summary.failed { XCTAssertTrue(text.contains("predict: skipping \(file): \(reason)"), text) }
        XCTAssertTrue(summary.failed[0].reason.contains("corrupt PNG"), summary.failed[0].reason)
        XCTAssertTrue(summary.failed[1].reason.contains("corrupt JPEG"), summary.failed[1].reason)
        XCTAssertTrue(summary.failed[2].reason.contains("not a PNG or JPEG"), summary.failed[2].reason)
        let conversions = text.split(separator: "\n").filter { $0.contains("converted to 1 channel") }
        XCTAssertEqual(conversions.count, 1, "one line says RGB images are converted: \(text)")
        XCTAssertTrue(conversions[0].contains("RGB images are converted to 1 channel by luminance"), text)
        XCTAssertFalse(text.contains("resized"), "every image is the model's size: \(text)")

        for p in predictions {
            XCTAssertEqual(p.top.count, 3)
            XCTAssertEqual(p.top.map(\.probability), p.top.map(\.probability).sorted(by: >), "top-k is sorted")
            XCTAssertLessThanOrEqual(p.top.map(\.probability).reduce(0, +), 1 + 1e-6)
            XCTAssertEqual(p.best, p.top[0])
            XCTAssertEqual(p.best.name, ["a", "b", "c", "d"][p.best.index])
            XCTAssertEqual(p.probabilities.reduce(0, +), 1, accuracy: 1e-5)
        }

        // evaluate() on the same files (an image folder with the classes as folders) counts the
        // same confusion matrix as the predictions.
        let folder = try ImageFolder(root: dir + "/images", channels: 1)
        XCTAssertEqual(folder.classNames, ["a", "b", "c", "d"])
        let ev = try evaluate(model, on: folder, transform: nil)
        var confusion = [[Int]](repeating: [0, 0, 0, 0], count: 4)
        for (p, l) in zip(predictions, labelled) { confusion[l.label][p.best.index] += 1 }
        XCTAssertEqual(confusion, ev.confusion)
        XCTAssertEqual(ev.count, 24)

        // And the probabilities are the eval forward's on the loader's batch of the same files.
        model.eval()
        let batch = try DataLoader(folder, batchSize: 64, shuffle: false).batch(epoch: 0, number: 0)
        let probs = try withNoGrad { try model(batch.images).softmax(1) }.toArray()
        let byFile = Dictionary(uniqueKeysWithValues: predictions.map { ($0.file, $0.probabilities) })
        for (i, f) in folder.files.enumerated() {
            let want = Array(probs[(i * 4)..<(i * 4 + 4)])
            let got = try XCTUnwrap(byFile[f], f)
            for k in 0..<4 { XCTAssertEqual(got[k], want[k], accuracy: 1e-5, "\(f) class \(k)") }
        }
    }

    /// An image of another size goes through the eval transform, then is resized and
    /// centre-cropped to the model's input (said once); a gray image for an RGB model repeats its plane.
    func testOtherSizesAreResizedAndCroppedAndGrayBecomesRGB() throws {
        let dir = tempDir()
        Generator.manualSeed(3)
        let g = Generator(seed: 5)
        let model: Module = Sequential([try Conv2d(3, 4, kernelSize: [3], padding: [1], generator: g), ReLU(), AdaptiveAvgPool2d(outputSize: [1, 1]),
                                        Flatten(), try Linear(4, 2, generator: g)])
        let pixels = (0..<(12 * 20)).map { UInt8($0 % 251) }
        let gray = try ByteImage(shape: ImageShape(channels: 1, height: 12, width: 20), pixels: pixels)
        try ImageCodec.writePNG(gray, to: dir + "/wide.png")
        let norm = Normalize(mean: [0.5], std: [0.25])
        let predictor = try Predictor(model: model, input: ImageShape(channels: 3, height: 8, width: 8), classNames: ["x", "y"], evalTransform: norm)
        let log = dir + "/log.txt"
        FileManager.default.createFile(atPath: log, contents: nil)
        predictor.progress = Progress(live: false, out: FileHandle(forWritingAtPath: log)!)
        var got: [Prediction] = []
        let summary = try predictor.run([dir + "/wide.png", dir + "/wide.png"]) { got.append($0) }
        XCTAssertEqual(summary.predicted, 2)
        XCTAssertTrue(summary.failed.isEmpty)
        XCTAssertEqual(got[0].top.count, 2, "top is at most the number of classes")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(text.contains("grayscale images are converted to 3 channels by repeating the gray plane"), text)
        XCTAssertEqual(text.components(separatedBy: "resized and center-cropped to 8x8").count, 2, "said once: \(text)")
        XCTAssertTrue(text.contains("wide.png is 12x20 after the eval transform"), text)

        // By hand: gray -> RGB, normalise, resize so 8x8 is covered (8x13), crop the centre.
        let img = try norm.apply(Image(try gray.converted(toChannels: 3)), generator: Generator(seed: 0))
        let fitted = try TF.centerCrop(try TF.resize(img, height: 8, width: 13), height: 8, width: 8)
        XCTAssertEqual(try ResizeCrop(height: 8, width: 8).apply(img, generator: Generator(seed: 0)), fitted)
        model.eval()
        let want = try withNoGrad { try model(try Tensor(fitted.pixels, shape: [1, 3, 8, 8])).softmax(1) }.toArray()
        for k in 0..<2 { XCTAssertEqual(got[0].probabilities[k], want[k], accuracy: 1e-5) }
    }

    func testPredictorRejectsAMismatchedTransformAndModel() throws {
        let model = try tinyNet()
        XCTAssertThrowsError(try Predictor(model: model, input: ImageShape(channels: 1, height: 8, width: 8), classNames: ["a"],
                                           evalTransform: Normalize(mean: [0.5, 0.5, 0.5], std: [1, 1, 1]))) {
            XCTAssertTrue("\($0)".contains("the eval transform Normalize"), "\($0)")
        }
        // The model has 4 outputs: 3 class names is a model error, not a per-file one.
        let dir = tempDir()
        try ImageCodec.writePNG(try Squares(count: 1, seed: 0).image(at: 0), to: dir + "/a.png")
        let p = try Predictor(model: model, input: ImageShape(channels: 1, height: 8, width: 8), classNames: ["a", "b", "c"], evalTransform: nil)
        p.progress = quiet()
        XCTAssertThrowsError(try p.run([dir + "/a.png"]) { _ in }) { XCTAssertTrue("\($0)".contains("expected [1, 3] (one logit per class)"), "\($0)") }
    }

    func testCSVAndJSONLines() throws {
        let p = Prediction(file: "dir/a, \"b\".png", top: [ClassProbability(index: 1, name: "dog", probability: 0.75),
                                                           ClassProbability(index: 0, name: "cat", probability: 0.25)], probabilities: [0.25, 0.75])
        XCTAssertEqual(PredictionFormat.csv.header(top: 2), "file,class,probability,top1_class,top1_probability,top2_class,top2_probability")
        XCTAssertEqual(PredictionFormat.csv.line(p), "\"dir/a, \"\"b\"\".png\",dog,0.75,dog,0.75,cat,0.25")
        XCTAssertNil(PredictionFormat.jsonl.header(top: 2))
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(PredictionFormat.jsonl.line(p).utf8)) as? [String: Any])
        XCTAssertEqual(obj["file"] as? String, "dir/a, \"b\".png")
        XCTAssertEqual(obj["class"] as? String, "dog")
        XCTAssertEqual(obj["index"] as? Int, 1)
        XCTAssertEqual(obj["probability"] as? Double, 0.75)
        let top = try XCTUnwrap(obj["top"] as? [[String: Any]])
        XCTAssertEqual(top.map { $0["class"] as? String }, ["dog", "cat"])
    }
}
