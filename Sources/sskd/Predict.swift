import ArgumentParser
import Foundation
import SSKDData
import SSKDLua
import SSKDTrain

extension PredictionFormat: ExpressibleByArgument {}

/// `sskd predict RUN_DIR_OR_WEIGHTS IMAGES... | DIR`: class, probability and top-k per image.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classifies images with a trained model: the class, its probability and the top-k classes of every image.",
        discussion: """
        With a run directory (what fit/distill wrote, e.g. runs/quickstart/sskd) the model, its input \
        size and channels, class names and eval transform come from its model.json, and the weights \
        from its best.safetensors. With a weights file (a checkpoint or m:save's state dict), give \
        --model, --input, --classes, --mean and --std.

        Images are PNG or JPEG files, or folders (every .png/.jpg/.jpeg under them, sorted). Each is \
        converted to the model's channels (gray -> RGB repeats the plane, RGB -> gray by luminance; \
        a line on stderr says so), put through the eval transform and, when that does not give the \
        model's input size, resized and center-cropped to it. An image that cannot be read is \
        reported on stderr and skipped; the exit status is then 1. Output goes to stdout, or to \
        --out FILE, written under a temporary name and renamed when complete. The throughput is \
        printed on stderr at the end, and a progress bar on a terminal when there is more than one batch.

        CSV columns: file,class,probability,top1_class,top1_probability,...; JSONL: one object per \
        line, {"file", "class", "index", "probability", "top": [{"class", "index", "probability"}, ...]}.
        """)

    @Argument(help: ArgumentHelp("A run directory (with model.json) or a weights file (.safetensors).", valueName: "run-dir-or-weights"))
    var source: String

    @Argument(help: ArgumentHelp("Image files and folders.", valueName: "images"))
    var images: [String] = []

    @Option(help: ArgumentHelp("A models.* name or model_variants plugin (needed with a weights file; overrides the run's).", valueName: "name"))
    var model: String?

    @Option(help: "Classes reported per image, most probable first.")
    var top: Int = 5

    @Option(help: "Images per forward pass.")
    var batch: Int = 64

    @Option(help: "csv or jsonl.")
    var format: PredictionFormat = .csv

    @Option(help: ArgumentHelp("Write the predictions to FILE instead of stdout.", valueName: "file"))
    var out: String?

    @Option(help: ArgumentHelp("The model's input CxHxW, e.g. 3x96x96 (needed with a weights file).", valueName: "CxHxW"))
    var input: String?

    @Option(help: ArgumentHelp("Class names, comma-separated, or their count (needed with a weights file).", valueName: "names|count"))
    var classes: String?

    @Option(help: ArgumentHelp("Normalization mean per channel (or one for all), comma-separated, on [0, 1] values (needed with a weights file; 0 with --std 1 for none).", valueName: "m,..."))
    var mean: String?

    @Option(help: ArgumentHelp("Normalization std per channel (or one for all), comma-separated.", valueName: "s,..."))
    var std: String?

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give image files or folders after the run directory or weights file") }
        guard top >= 1 else { throw ValidationError("--top must be >= 1, got \(top)") }
        guard batch >= 1 else { throw ValidationError("--batch must be >= 1, got \(batch)") }
    }

    /// The options as `TrainedModelOptions`; a malformed value is a usage error naming its option.
    func modelOptions() throws -> TrainedModelOptions {
        var o = TrainedModelOptions(model: model)
        if let input {
            guard let shape = ImageShape(parsing: input), [1, 3, 4].contains(shape.channels) else {
                throw ValidationError("--input expects CxHxW with C 1, 3 or 4, e.g. 3x96x96, got '\(input)'")
            }
            o.input = shape
        }
        if let classes {
            if let n = Int(classes) {
                guard n >= 1 else { throw ValidationError("--classes count must be >= 1, got \(n)") }
                o.classes = (0..<n).map(String.init)
            } else {
                let names = classes.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard !names.contains(where: \.isEmpty) else { throw ValidationError("--classes has an empty name: '\(classes)'") }
                o.classes = names
            }
        }
        func floats(_ s: String?, _ flag: String) throws -> [Float]? {
            guard let s else { return nil }
            let v = s.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.allSatisfy({ $0?.isFinite ?? false }) else { throw ValidationError("\(flag) expects comma-separated numbers, got '\(s)'") }
            return v.map { $0! }
        }
        o.mean = try floats(mean, "--mean")
        o.std = try floats(std, "--std")
        if let s = o.std, s.contains(0) { throw ValidationError("--std must not contain 0") }
        return o
    }

    /// The image files: arguments that are files as given, folders expanded (sorted, recursive).
    /// A missing path is reported and counted as a failed file.
    func imageFiles() throws -> (files: [String], missing: [String]) {
        var files: [String] = [], missing: [String] = []
        for path in images {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                missing.append(path)
            } else if isDir.boolValue {
                files += try ImageFolder(root: path, labeled: false).files
            } else {
                files.append(path)
            }
        }
        return (files, missing)
    }

    func run() throws {
        let options = try modelOptions()
        let host = try LuaHost()
        for p in host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs)) { fputs("sskd: plugin error: \(p)\n", stderr) }
        do {
            let trained = try host.loadTrainedModel(source, options)
            let (files, missing) = try imageFiles()
            for m in missing { fputs("sskd predict: skipping \(m): no such file or folder\n", stderr) }
            let predictor = try Predictor(model: trained.model, input: trained.input, classNames: trained.classNames, evalTransform: trained.evalTransform)
            predictor.top = top
            predictor.batchSize = batch
            predictor.label = "sskd predict"
            fputs("sskd predict: \(trained.constructor) from \(trained.weights), input \(trained.input), \(trained.classNames.count) classes, eval transform \(trained.evalTransform?.description ?? "none")\n", stderr)

            let sink = try OutputSink(path: out)
            let summary: PredictionSummary
            do {
                if let h = format.header(top: min(top, trained.classNames.count)) { try sink.write(h + "\n") }
                summary = try predictor.run(files) { try sink.write(format.line($0) + "\n") }
                try sink.commit()
            } catch {
                sink.discard()
                throw error
            }
            let failed = summary.failed.count + missing.count
            let rate = Double(summary.predicted) / max(summary.seconds, 1e-9)
            fputs(String(format: "sskd predict: %d image%@ in %.2f s (%.1f img/s)", summary.predicted, summary.predicted == 1 ? "" : "s", summary.seconds, rate)
                  + (failed > 0 ? ", \(failed) file\(failed == 1 ? "" : "s") skipped" : "") + (out.map { ", written to \($0)" } ?? "") + "\n", stderr)
            if failed > 0 { throw ExitCode(1) }
        } catch let e as ExitCode {
            throw e
        } catch {
            fputs("sskd predict: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }
}

/// Where predictions go: stdout, or a file written under a temporary name in its folder and
/// renamed over `path` only once complete (an error leaves any earlier file untouched).
final class OutputSink {
    let path: String?
    private let tmp: String?
    private let file: UnsafeMutablePointer<FILE>

    init(path: String?) throws {
        self.path = path
        guard let path else { tmp = nil; file = stdout; return }
        let t = path + ".tmp-\(getpid())"
        guard let f = fopen(t, "w") else { throw TrainError(path, "cannot write \(t): \(String(cString: strerror(errno)))") }
        tmp = t
        file = f
    }

    func write(_ s: String) throws {
        guard fputs(s, file) >= 0 else { throw TrainError(path ?? "stdout", "write failed: \(String(cString: strerror(errno)))") }
    }

    /// Flushes and, for a file, syncs it and renames it into place.
    func commit() throws {
        guard let path, let tmp else {
            guard fflush(stdout) == 0 else { throw TrainError("stdout", "write failed: \(String(cString: strerror(errno)))") }
            return
        }
        let ok = fflush(file) == 0 && fsync(fileno(file)) == 0
        let err = String(cString: strerror(errno))
        fclose(file)
        guard ok else { unlink(tmp); throw TrainError(path, "write failed: \(err)") }
        guard rename(tmp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tmp)
            throw TrainError(path, "cannot move \(tmp) into place: \(e)")
        }
    }

    /// Drops the temporary file (stdout: what was written stays).
    func discard() {
        guard let tmp else { fflush(stdout); return }
        fclose(file)
        unlink(tmp)
    }
}
