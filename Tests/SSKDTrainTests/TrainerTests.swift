import Foundation
import XCTest
import SSKDData
import SSKDNN
import SSKDOptim
import SSKDTensor
@testable import SSKDTrain

/// A tiny synthetic labelled dataset: class c has a bright square at a class-dependent place,
/// plus seeded noise, so a small CNN learns it in a few epochs.
final class Squares: Dataset {
    let name: String
    let count: Int
    let classNames = ["a", "b", "c", "d"]
    let imageShape: ImageShape? = ImageShape(channels: 1, height: 8, width: 8)
    let isLabeled: Bool
    let seed: UInt64
    init(count: Int, seed: UInt64, labeled: Bool = true) { self.count = count; self.seed = seed; self.isLabeled = labeled; name = "squares(\(count))" }
    func image(at index: Int) throws -> ByteImage {
        let c = index % 4
        let g = Generator.derived(seed: seed, UInt64(index))
        var px = (0..<64).map { _ in UInt8(g.nextInt(60)) }
        let (r0, c0) = (c / 2 * 4, c % 2 * 4)
        for r in r0..<(r0 + 4) { for k in c0..<(c0 + 4) { px[r * 8 + k] = 200 } }
        return try ByteImage(shape: imageShape!, pixels: px)
    }
    func label(at index: Int) throws -> Int? { isLabeled ? index % 4 : nil }
}

func tinyNet(seed: UInt64 = 7, dropout: Bool = true) throws -> Module {
    let g = Generator(seed: seed)
    var layers: [Module] = [try Conv2d(1, 8, kernelSize: [3], padding: [1], generator: g), ReLU(),
                            AdaptiveAvgPool2d(outputSize: [2, 2]), Flatten()]
    if dropout { layers.append(try Dropout(p: 0.2)) }
    layers.append(try Linear(32, 4, generator: g))
    return Sequential(layers)
}

func tempDir() -> String {
    let d = NSTemporaryDirectory() + "sskd-train-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

final class TrainerTests: XCTestCase {
    func makeTrainer(_ dir: String?, epochs: Int = 4, seed: UInt64 = 3) throws -> Trainer {
        Generator.manualSeed(42)
        let model = try tinyNet()
        let opt = try Adam(model.parameters(), lr: 1e-2)
        var s = TrainSettings(epochs: epochs)
        s.batchSize = 16
        s.seed = seed
        s.name = "tiny"
        let t = try Trainer(model: model, optimizer: opt, train: Squares(count: 64, seed: 1), settings: s)
        t.eval = Squares(count: 32, seed: 2)
        t.scheduler = try LRScheduler(opt, .step(stepSize: 2, gamma: 0.5))
        t.run = try dir.map { try RunDirectory(path: $0) }
        t.progress = Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!)
        return t
    }

    func stripTimes(_ rows: [MetricRow]) -> [MetricRow] {
        rows.map { r in var r = r; r["seconds"] = nil; r["images_per_second"] = nil; return r }
    }

    func testFitLearnsAndWritesRunFiles() throws {
        let dir = tempDir()
        let t = try makeTrainer(dir, epochs: 6)
        let r = try t.fit()
        XCTAssertEqual(r.reason, .completed)
        XCTAssertEqual(r.epochsRun, 6)
        XCTAssertGreaterThan(r.eval!.accuracy, 0.5, "a tiny CNN should learn the squares")
        for f in ["metrics.jsonl", "metrics.csv", "last.safetensors", "best.safetensors", "plot.png", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f)
        }
        let png = try Data(contentsOf: URL(fileURLWithPath: dir + "/plot.png"))
        XCTAssertEqual(Array(png.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10])
        let csv = try String(contentsOfFile: dir + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 7)
        XCTAssertTrue(csv[0].hasPrefix("epoch,alpha,lr,train_loss,train_accuracy,eval_loss,eval_accuracy"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        XCTAssertEqual(summary["status"] as? String, "completed")
        XCTAssertEqual((summary["confusion"] as? [[Int]])?.count, 4)
        // The learning rate followed the step schedule (halved every 2 epochs).
        XCTAssertEqual(t.history.map { $0["lr"]!.double! }, [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])
    }

    func testResumeEqualsUninterruptedRun() throws {
        let a = try makeTrainer(tempDir(), epochs: 5)
        let full = try a.fit()

        let dir = tempDir()
        let b = try makeTrainer(dir, epochs: 5)
        b.onEpochEnd = { e, _ in if e == 1 { Interrupt.request() } }
        let partial = try b.fit()
        XCTAssertEqual(partial.reason, .interrupted)
        XCTAssertEqual(partial.epochsRun, 2)
        Interrupt.reset()

        let c = try makeTrainer(dir, epochs: 5)
        try c.resume()
        let rest = try c.fit()
        XCTAssertEqual(rest.reason, .completed)
        XCTAssertEqual(stripTimes(c.history), stripTimes(full.history))
        XCTAssertEqual(rest.eval!.accuracy, full.eval!.accuracy)
    }

    func testSigintStopsCleanlyAndKeepsCheckpoint() throws {
        let dir = tempDir()
        let t = try makeTrainer(dir, epochs: 4)
        t.onEpochEnd = { e, _ in if e == 0 { raise(SIGINT) } }
        let r = try t.fit()
        Interrupt.reset()
        XCTAssertEqual(r.reason, .interrupted)
        let ck = try Checkpoint.read(dir + "/last.safetensors")
        XCTAssertEqual(ck.epoch, 0)
        let summary = try String(contentsOfFile: dir + "/summary.json", encoding: .utf8)
        XCTAssertTrue(summary.contains("\"status\": \"interrupted\""))
    }

    func testNaNLossStopsWithEpochAndBatchNamed() throws {
        let dir = tempDir()
        let t = try makeTrainer(dir, epochs: 4)
        var calls = 0
        t.loss = { s, _, y, _, _ in
            calls += 1
            let ce = try s.crossEntropy(y!)
            return calls == 4 + 3 ? try ce.mul(.nan) : ce   // epoch 1 (4 batches per epoch), batch 2
        }
        XCTAssertThrowsError(try t.fit()) { err in
            let msg = "\(err)"
            XCTAssertTrue(msg.contains("epoch 1 batch 2"), msg)
            XCTAssertTrue(msg.contains("loss is NaN"), msg)
            XCTAssertTrue(msg.contains("last.safetensors"), msg)
        }
        let ck = try Checkpoint.read(dir + "/last.safetensors")
        XCTAssertEqual(ck.epoch, 0, "the last good checkpoint (epoch 0) is intact")
    }

    func testCorruptCheckpointIsAClearError() throws {
        let dir = tempDir()
        _ = try makeTrainer(dir, epochs: 1).fit()
        let path = dir + "/last.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes = bytes.prefix(bytes.count / 2)
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try makeTrainer(dir).resume()) { err in
            XCTAssertTrue("\(err)".contains(path), "\(err)")
            XCTAssertTrue("\(err)".contains("corrupt"), "\(err)")
        }
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try makeTrainer(dir).resume()) { XCTAssertTrue("\($0)".contains(path)) }
    }

    func testHookErrorEndsTrainingAndKeepsCheckpoint() throws {
        let dir = tempDir()
        let t = try makeTrainer(dir, epochs: 4)
        struct Boom: Error, CustomStringConvertible { var description: String { "recipe.lua:12: boom" } }
        t.onEpochEnd = { e, _ in if e == 1 { throw Boom() } }
        XCTAssertThrowsError(try t.fit()) { XCTAssertTrue("\($0)".contains("recipe.lua:12: boom"), "\($0)") }
        XCTAssertEqual(try Checkpoint.read(dir + "/last.safetensors").epoch, 1)
    }

    func testEarlyStoppingFiresAtTheRightEpoch() throws {
        let rule = Stopping.patience(5)
        func hist(_ accs: [Double]) -> [MetricRow] { accs.enumerated().map { MetricRow([("epoch", .int($0.offset)), ("eval_accuracy", .number($0.element))]) } }
        // Best at epoch 2, then 5 epochs without improvement: stop after epoch 7, not before.
        let accs = [0.1, 0.2, 0.5, 0.4, 0.5, 0.3, 0.45, 0.49, 0.6]
        let firstStop = (1...accs.count).first { try! rule(hist(Array(accs.prefix($0)))) }
        XCTAssertEqual(firstStop, 8)
        XCTAssertThrowsError(try Stopping.patience(2, metric: "nope")(hist([0.1])))

        // In a run: a stopper that fires after epoch 2 ends a 10-epoch run after 3 epochs and restores the best.
        let t = try makeTrainer(tempDir(), epochs: 10)
        t.stopper = { $0.count >= 3 }
        let r = try t.fit()
        XCTAssertEqual(r.reason, .earlyStopped)
        XCTAssertEqual(r.epochsRun, 3)
        let best = t.history.max { $0["eval_accuracy"]!.double! < $1["eval_accuracy"]!.double! }!
        XCTAssertEqual(r.bestMetric, best["eval_accuracy"]!.double)
    }

    func testPaperAlphaSchedule() {
        for e in 0..<60 {
            let expected = e < 5 ? 0 : min(0.1 + 0.05 * Double(e - 5), 0.9)
            XCTAssertEqual(Distillation.paperAlpha(epoch: e), expected, accuracy: 1e-12, "epoch \(e)")
        }
        XCTAssertEqual(Distillation.paperAlpha(epoch: 7), 0.2, accuracy: 1e-12)
    }

    func testKDLossMatchesDefinition() throws {
        let s = try Tensor.randn([3, 5]), t = try Tensor.randn([3, 5])
        let T = 3.0
        let kd = try Distillation.kdLoss(student: s, teacher: t, temperature: T).item()
        // sum_i sum_c q (log q - log p) / N * T^2
        var ref = 0.0
        for i in 0..<3 {
            let sv = (0..<5).map { Double(s.data[i * 5 + $0]) / T }, tv = (0..<5).map { Double(t.data[i * 5 + $0]) / T }
            let ls = log(sv.map(exp).reduce(0, +)), lt = log(tv.map(exp).reduce(0, +))
            for c in 0..<5 { let lq = tv[c] - lt, lp = sv[c] - ls; ref += exp(lq) * (lq - lp) }
        }
        XCTAssertEqual(Double(kd), ref / 3 * T * T, accuracy: 1e-5)
    }

    func testDistillWithTeacherAndUnlabeledImages() throws {
        let teacherT = try makeTrainer(nil, epochs: 3)
        _ = try teacherT.fit()
        let student = try tinyNet(seed: 9)
        var s = TrainSettings(epochs: 3)
        s.batchSize = 16; s.name = "student"
        let opt = try Adam(student.parameters(), lr: 1e-2)
        let d = try Trainer(model: student, optimizer: opt, train: Squares(count: 32, seed: 5), settings: s)
        d.teacher = teacherT.model
        d.unlabeled = Squares(count: 64, seed: 6, labeled: false)
        d.eval = Squares(count: 32, seed: 2)
        d.alpha = { e, _ in Distillation.paperAlpha(epoch: e + 5) }
        d.progress = Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!)
        let r = try d.fit()
        XCTAssertEqual(r.epochsRun, 3)
        XCTAssertEqual(d.history.map { $0["alpha"]!.double! }, (5..<8).map { Distillation.paperAlpha(epoch: $0) }, "alpha logged per epoch")
        XCTAssertFalse(teacherT.model.training, "the teacher stays in eval mode")
    }

    func testBadSettingsAreErrors() throws {
        let model = try tinyNet()
        let opt = try Adam(model.parameters())
        XCTAssertThrowsError(try Trainer(model: model, optimizer: opt, train: Squares(count: 8, seed: 1), settings: TrainSettings(epochs: -1)))
        XCTAssertThrowsError(try Trainer(model: model, optimizer: opt, train: Squares(count: 8, seed: 1, labeled: false), settings: TrainSettings(epochs: 1)))
        let t = try Trainer(model: model, optimizer: opt, train: Squares(count: 8, seed: 1), settings: TrainSettings(epochs: 1))
        t.alpha = { _, _ in 1.5 }
        t.progress = Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!)
        XCTAssertThrowsError(try t.fit()) { XCTAssertTrue("\($0)".contains("alpha"), "\($0)") }
    }
}
