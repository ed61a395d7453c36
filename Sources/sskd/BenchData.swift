// `sskd bench data`: images/s through the paper's train transform (PAPER.md) at 96x96.
//
// Reads STL-10-format images (`--root`, e.g. the files scripts/bench_data.sh writes, or the
// real stl10_binary), then times
//   transform  one thread, image by image: decode from the column-major file, Resize(96),
//              RandomHorizontalFlip, RandomRotation(10), RandomCrop(96, padding 4),
//              ColorJitter(0.2, 0.2, 0.2), ToFloat
//   loader     DataLoader batches of 32 (shuffled, background prefetch, images in parallel
//              over SSKD_THREADS threads), the same transform
// and prints one `key value` line per figure for scripts/bench_data.sh.

import ArgumentParser
import Foundation
import SSKDData
import SSKDTensor

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Images/s through the paper's train transform and the loader (compare scripts/reference/bench_data.py)."
    )

    @Option(help: "STL-10 binary directory with train_X.bin/train_y.bin (or unlabeled_X.bin with --split unlabeled).")
    var root: String

    @Option(help: "Split to read: train, test or unlabeled.")
    var split: String = "train"

    @Option(help: "Images to time (at most the split's size).")
    var images: Int = 2000

    @Option(help: "Batch size for the loader figure.")
    var batch: Int = 32

    @Option(help: "Repetitions; the best is reported.")
    var repeats: Int = 3

    @Flag(help: "Also time each stage of the transform alone.")
    var stages = false

    func run() throws {
        guard let sp = STL10.Split(rawValue: split) else { throw ValidationError("split must be train, test or unlabeled") }
        let full = try STL10(root: root, split: sp)
        let n = min(images, full.count)
        let ds = try full.subset(Array(0..<n))
        let t = try Compose.paperTrain(size: 96)
        Allocator.tuneForImages()   // what DataLoader.init does; the single-thread figure needs it too
        print("transform \(t)")
        print("images \(n)")
        print("threads \(Runtime.threads)")

        // Warm up (page in the file, first allocations).
        for i in 0..<min(n, 64) { _ = try t.apply(Image(try ds.image(at: i)), generator: Generator(seed: UInt64(i))) }

        var checksum: Float = 0
        if stages {
            // Each stage alone, applied to the output of the previous stages of image 0..<m.
            let m = min(n, 200)
            var inputs = try (0..<m).map { Image(try ds.image(at: $0)) }
            var start = DispatchTime.now().uptimeNanoseconds
            for i in 0..<m { _ = try ds.image(at: i) }
            print(String(format: "stage read %.1f us", Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(m)))
            for s in t.transforms {
                var sink: Float = 0
                start = DispatchTime.now().uptimeNanoseconds
                for i in 0..<m { sink += try s.apply(inputs[i], generator: Generator(seed: UInt64(i))).pixels[i] }
                print(String(format: "stage %@ %.1f us", s.description, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(m)))
                inputs = try (0..<m).map { try s.apply(inputs[$0], generator: Generator(seed: UInt64($0))) }
                checksum += sink
            }
        }
        var best = Double.infinity
        for r in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for i in 0..<n {
                let y = try t.apply(Image(try ds.image(at: i)), generator: Generator.derived(seed: 1, UInt64(r), UInt64(i)))
                checksum += y.pixels[i % y.pixels.count]
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        print(String(format: "swift_transform_images_per_s %.1f", Double(n) / best))

        let loader = try DataLoader(ds, batchSize: batch, shuffle: true, dropLast: false, seed: 1, transform: t, prefetch: 2)
        var bestLoader = Double.infinity
        for r in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            var seen = 0
            try loader.forEach(epoch: r) { b in
                seen += b.count
                checksum += b.images.data[0]
                return true
            }
            bestLoader = min(bestLoader, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            guard seen == n else { throw ValidationError("loader returned \(seen) images, expected \(n)") }
        }
        print(String(format: "swift_loader_images_per_s %.1f", Double(n) / bestLoader))
        print("checksum \(checksum)")
    }
}
