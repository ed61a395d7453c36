// sskd-fuzz: libFuzzer harnesses for every reader of outside bytes, one binary.
//
//   sskd-fuzz TARGET [libFuzzer flags] [CORPUS_DIR...]    built by scripts/fuzz.sh (-sanitize=fuzzer,address)
//   sskd-fuzz TARGET FILE_OR_DIR...                        any other build: replays the files (tests, crash repro)
//
// A harness hands the bytes to a reader exactly as a user's file would reach it (written to a
// file in /dev/shm when the reader takes a path). The reader must return a value or throw; a
// trap, a sanitizer report or a hang is a finding. Targets and what they read:
//
//   safetensors  SafeTensors.decode (weights files) and         checkpoint  Checkpoint.read (resume files)
//                .decodeLoaded (torch.load's value description)
//   idx          IDXDataset, raw or gzip (its labels file       stl10       STL10 + folds (byte 0 picks which
//                follows the header's count)                                file the rest replaces)
//   cifar10      CIFAR10 batch + batches.meta.txt (byte 0)      png, jpeg   ImageCodec.decode (by signature)
//   set          `sskd run` arguments (NUL-separated) through splitRecipeArguments and LuaHost.setArguments

import CImageCodecs
import Foundation
import SSKDOptim
import SSKDData
import SSKDLua
import SSKDNN
import SSKDTensor
import SSKDTrain

/// A scratch folder for the files a harness writes (tmpfs when there is one), removed at exit.
let scratchPath = "\(FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())/sskd-fuzz-\(getpid())"
let scratch: String = {
    try? FileManager.default.createDirectory(atPath: scratchPath, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchPath) }
    return scratchPath
}()

func write(_ bytes: Data, _ name: String) -> String {
    let path = "\(scratch)/\(name)"
    _ = FileManager.default.createFile(atPath: path, contents: bytes)
    return path
}

func bigEndian32(_ v: Int) -> Data { Data([UInt8((v >> 24) & 255), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)]) }

/// Reads every image of a dataset at the ends and a few in between (all of a small one).
func touch(_ ds: Dataset) throws {
    let picks = ds.count <= 16 ? Array(0..<ds.count) : [0, 1, ds.count / 2, ds.count - 1]
    for i in picks { _ = try ds.image(at: i); _ = try ds.label(at: i) }
    _ = try? ds.image(at: ds.count)       // out of range: an error
    _ = try? ds.image(at: -1)
}

/// Loads a state dict into a small model, the path weights take in a recipe.
let probeModel: Module = Sequential([try! Linear(4, 3)])

let targets: [String: (Data) throws -> Void] = [
    "safetensors": { data in
        let sd = try SafeTensors.decode(data, path: "fuzz.safetensors")
        _ = try? probeModel.loadStateDict(sd, strict: false)
        _ = try? SafeTensors.decodeLoaded(data, path: "fuzz.safetensors")
    },
    "checkpoint": { data in
        let c = try Checkpoint.read(write(data, "fuzz.ckpt.safetensors"))
        let opt = try Adam(probeModel.parameters(), lr: 0.01)
        _ = try? c.restore(model: probeModel, optimizer: opt, scheduler: try LRScheduler(opt, .step(stepSize: 2, gamma: 0.5)))
    },
    "idx": { data in
        let images = write(data, "images-idx3-ubyte")
        // Labels that agree with the header's count when it is small, so the pixels get read.
        let n = data.count >= 8 ? Int(data[data.startIndex + 4]) << 24 | Int(data[data.startIndex + 5]) << 16
            | Int(data[data.startIndex + 6]) << 8 | Int(data[data.startIndex + 7]) : 0
        var labels = Data([0, 0, 8, 1]) + bigEndian32(n)
        if n <= 1 << 16 { labels += Data((0..<n).map { UInt8($0 % 10) }) }
        let ds = try IDXDataset(images: images, labels: write(labels, "labels-idx1-ubyte"), classNames: IDXDataset.mnistClassNames)
        try touch(ds)
    },
    "stl10": { data in
        // Byte 0 picks the file the rest replaces; the others are valid (two images).
        guard let which = data.first else { return }
        let rest = data.dropFirst()
        let root = "\(scratch)/stl10"
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let files = ["train_X.bin": Data(count: 2 * 27648), "train_y.bin": Data([1, 10]),
                     "class_names.txt": Data((1...10).map { "c\($0)" }.joined(separator: "\n").utf8),
                     "fold_indices.txt": Data(String(repeating: "0 1\n", count: 10).utf8)]
        let names = files.keys.sorted()
        for name in names { _ = write(name == names[Int(which) % names.count] ? Data(rest) : files[name]!, "stl10/\(name)") }
        let ds = try STL10(root: root, split: .train)
        try touch(ds)
        for k in [0, 9] { _ = try ds.fold(k).count }
    },
    "cifar10": { data in
        guard let which = data.first else { return }
        let rest = Data(data.dropFirst())
        let root = "\(scratch)/cifar10"
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var batch = Data(count: 2 * 3073); batch[3073] = 9
        let meta = Data((1...10).map { "c\($0)" }.joined(separator: "\n").utf8)
        _ = write(which % 2 == 0 ? rest : batch, "cifar10/test_batch.bin")
        _ = write(which % 2 == 1 ? rest : meta, "cifar10/batches.meta.txt")
        try touch(try CIFAR10(root: root, train: false))
    },
    "png": { data in
        let img = try ImageCodec.decode(path: write(data, "fuzz.png"))
        for c in [1, 3] { _ = try img.converted(toChannels: c) }
    },
    "jpeg": { data in
        let img = try ImageCodec.decode(path: write(data, "fuzz.jpg"))
        for c in [1, 3] { _ = try img.converted(toChannels: c) }
    },
    "set": { data in
        let args = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let parsed = try splitRecipeArguments(args)
        setHost.setArguments(script: "fuzz.lua", settings: parsed.settings, arguments: parsed.positional)
        // The recipe reads its settings back.
        _ = try setHost.evaluate("local n = 0; for k, v in pairs(arg) do n = n + 1 end; return n")
    },
]

/// One host for the `set` target (a host per input would spend the time loading the prelude).
let setHost: LuaHost = try! LuaHost()

/// Runs `target` on one input; errors are the expected outcome for bad bytes.
func runOne(_ target: (Data) throws -> Void, _ data: Data) {
    do { try target(data) } catch { /* a clear error: what the reader should do with bad bytes */ }
}

func usage() -> Never {
    fputs("usage: sskd-fuzz TARGET [libFuzzer flags | FILE_OR_DIR...]\ntargets: \(targets.keys.sorted().joined(separator: ", "))\n", stderr)
    exit(2)
}

/// Writes the seed corpora (`sskd-fuzz --write-seeds Fuzz/corpus`) with the project's own writers:
/// valid files of every format, small enough for the fuzzer to mutate quickly.
func writeSeeds(_ root: String) throws {
    func put(_ target: String, _ name: String, _ bytes: Data) throws {
        try FileManager.default.createDirectory(atPath: "\(root)/\(target)", withIntermediateDirectories: true)
        try bytes.write(to: URL(fileURLWithPath: "\(root)/\(target)/\(name)"))
    }
    func file(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
    // safetensors: float32 with metadata, every other dtype, an empty tensor, the probe model's keys.
    var sd = StateDict()
    sd.set("0.weight", try Tensor.randn([3, 4]))
    sd.set("0.bias", try Tensor([1, 2, 3]))
    sd.metadata["note"] = "seed"
    try put("safetensors", "linear.safetensors", try SafeTensors.encode(sd))
    var mixed = StateDict()
    mixed.set("steps", try Tensor([7]), dtype: .i64)
    mixed.set("empty", try Tensor.zeros([0, 3]))
    mixed.set("scalar", try Tensor.scalar(2))
    try put("safetensors", "mixed.safetensors", try SafeTensors.encode(mixed))
    // torch.save's layout: a table of tensors and plain values described in the metadata.
    let saved = SavedValue.table([(.string("w"), .tensor(try Tensor([1, 2]))), (.integer(2), .array([.number(0.5), .bytes([0xff]), .boolean(true)])),
                                  (.string("a.b"), .string("é"))])
    try put("safetensors", "saved.safetensors", try SafeTensors.encode(SafeTensors.stateDict(saving: saved, metadata: ["note": "seed"])))
    // checkpoint: a Linear and Adam after one step.
    let model = try Linear(4, 3)
    let opt = try Adam(model.parameters(), lr: 0.01)
    try model(try Tensor.randn([2, 4])).sum().backward()
    try opt.step()
    let ckpt = "\(scratch)/seed.ckpt.safetensors"
    try Checkpoint(epoch: 1, bestEpoch: 1, bestMetric: 0.5, model: model, optimizer: opt, scheduler: nil).write(to: ckpt)
    try put("checkpoint", "adam.safetensors", try file(ckpt))
    // idx: 3 images of 4x5, raw and gzip.
    let idx = Data([0, 0, 8, 3]) + bigEndian32(3) + bigEndian32(4) + bigEndian32(5) + Data((0..<60).map { UInt8($0 * 4) })
    try put("idx", "raw.idx", idx)
    let gz = "\(scratch)/seed.idx.gz"
    guard let f = gzopen(gz, "wb") else { throw DataError(gz, "gzopen failed") }
    _ = idx.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
    gzclose(f)
    try put("idx", "gzip.idx", try file(gz))
    // stl10 and cifar10: byte 0 picks the file (see the harness), then valid contents for it.
    let stlFiles: [(String, Data)] = [("class_names.txt", Data((1...10).map { "c\($0)" }.joined(separator: "\n").utf8)),
                                      ("fold_indices.txt", Data(String(repeating: "0 1\n", count: 10).utf8)),
                                      ("train_X.bin", Data((0..<27648).map { UInt8($0 % 251) })), ("train_y.bin", Data([1, 10]))]
    for (k, (name, bytes)) in stlFiles.enumerated() { try put("stl10", name, Data([UInt8(k)]) + bytes) }
    var batch = Data(count: 3073); batch[0] = 3
    try put("cifar10", "batch.bin", Data([0]) + batch)
    try put("cifar10", "meta.txt", Data([1]) + Data((1...10).map { "c\($0)" }.joined(separator: "\n").utf8))
    // png and jpeg: gray, RGB and (PNG) RGBA, 7x5.
    for ch in [1, 3, 4] {
        let img = try ByteImage(shape: ImageShape(channels: ch, height: 5, width: 7), pixels: (0..<(ch * 35)).map { UInt8(($0 * 37) % 256) })
        let p = "\(scratch)/seed.png"
        try ImageCodec.writePNG(img, to: p)
        try put("png", "c\(ch).png", try file(p))
        if ch != 4 {
            let j = "\(scratch)/seed.jpg"
            try ImageCodec.writeJPEG(img, to: j, quality: 90)
            try put("jpeg", "c\(ch).jpg", try file(j))
        }
    }
    // set: NUL-separated `sskd run` arguments.
    for (i, args) in [["--set", "epochs=3", "--set=lr=0.5", "x.png"], ["--set", "name=nil", "--plugins", "p", "--", "--set"],
                      ["--set", "alpha=1e-3", "--set", "flag=true", "--set", "s=+inf"]].enumerated() {
        try put("set", "args\(i)", Data(args.joined(separator: "\0").utf8))
    }
}

#if SSKD_LIBFUZZER
nonisolated(unsafe) var selected: ((Data) throws -> Void)? = nil

/// libFuzzer's own entry (its runtime links a `main` that needs it); ours calls the driver below.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let t = selected else { usage() }
    runOne(t, bytes.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point under this name; libFuzzer's driver takes over
/// with TARGET removed from the arguments.
@_cdecl("sskd_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    // libFuzzer re-runs this binary for -merge and -fork with the flags only: the target then
    // comes from SSKD_FUZZ_TARGET, which the first run sets.
    guard let argv else { usage() }
    let first = argc >= 2 ? argv[1].map { String(cString: $0) } : nil
    let fromArgs = first.flatMap { targets[$0] != nil ? $0 : nil }
    guard let name = fromArgs ?? ProcessInfo.processInfo.environment["SSKD_FUZZ_TARGET"], let t = targets[name] else { usage() }
    setenv("SSKD_FUZZ_TARGET", name, 1)
    selected = t
    let skip = fromArgs == nil ? 1 : 2
    // Readers must refuse what does not fit well below libFuzzer's -rss_limit_mb (scripts/fuzz.sh: 2 GB).
    if MemoryLimit.cap == nil { MemoryLimit.cap = 1 << 30 }
    var args: [UnsafeMutablePointer<CChar>?] = [argv[0]] + (skip..<Int(argc)).map { argv[$0] } + [nil]
    var n = argc - Int32(skip - 1)
    return args.withUnsafeMutableBufferPointer { buf in
        var p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buf.baseAddress
        return LLVMFuzzerRunDriver(&n, &p) { bytes, count in fuzzOne(bytes, count) }
    }
}
#else
/// Replay: every file (or every file in a folder) through the target, in name order.
@main
struct Replay {
    static func main() {
        let argv = CommandLine.arguments
        if argv.count == 3 && argv[1] == "--write-seeds" {
            do { try writeSeeds(argv[2]) } catch { fputs("sskd-fuzz: \(error)\n", stderr); exit(1) }
            return
        }
        guard argv.count >= 2, let t = targets[argv[1]] else { usage() }
        var files: [String] = []
        for a in argv.dropFirst(2) {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: a, isDirectory: &isDir) else { fputs("sskd-fuzz: \(a): no such file\n", stderr); exit(2) }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: a)) ?? []
                files += names.sorted().map { "\(a)/\($0)" }
            } else { files.append(a) }
        }
        for f in files {
            guard let d = FileManager.default.contents(atPath: f) else { fputs("sskd-fuzz: cannot read \(f)\n", stderr); exit(2) }
            runOne(t, d)
        }
        print("sskd-fuzz \(argv[1]): \(files.count) inputs replayed, no crash")
    }
}
#endif
