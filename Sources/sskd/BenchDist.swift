// `sskd bench dist`: what data-parallel training costs between the ranks of an mpirun job.
//
//   all-reduce   Float32 sum all-reduce of 4 B ... 64 MB (powers of 4): latency (median time
//                per call over the ranks' slowest) and bandwidth, both the algorithm's
//                (bytes / time) and the bus's (bytes x 2(N-1)/N / time: what each rank's link
//                carries in a ring all-reduce, comparable across N)
//   train step   the student's data-parallel step (EfficientNet-B0, 3 x size x size, 10 classes,
//                Adam 1e-3): forward and backward on batch / N images per rank, bucketed gradient
//                all-reduce (the trainer's GradientReducer), optimizer step; images/s of the
//                global batch, and the share of the step spent in the all-reduce
//
//   mpirun -np 2 sskd bench dist --threads 1      # 2 ranks x 1 thread
//   sskd bench dist --threads 2                   # 1 rank x 2 threads, the same step
//
// Rank 0 prints; every timing is the slowest rank's. `--quick` is a seconds-long smoke run.

import ArgumentParser
import Foundation
import SSKDData
import SSKDDist
import SSKDNN
import SSKDOptim
import SSKDTensor

struct BenchDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dist",
        abstract: "All-reduce latency and bandwidth by message size, and the data-parallel student train step (run under mpirun).",
        discussion: """
        Compare `mpirun -np 2 sskd bench dist --threads 1` with `sskd bench dist --threads 2` for
        2 ranks x 1 thread against 1 rank x 2 threads. Use a release build on a quiet machine.
        """)

    @Option(help: "Compute threads per rank.")
    var threads: Int = 1
    @Option(help: "Global batch of the train step (split over the ranks).")
    var batch: Int = 32
    @Option(help: "Input side of the train step (3 x size x size).")
    var size: Int = 96
    @Option(help: "Untimed iterations first.")
    var warmup: Int = 3
    @Option(help: "Timed train steps.")
    var iters: Int = 10
    @Option(help: "Largest all-reduce message in bytes (4 B up to this, by powers of 4).")
    var maxBytes: Int = 64 << 20
    @Flag(help: "A seconds-long smoke run: messages up to 64 KB, batch 2 per rank at 32 px, 2 steps.")
    var quick = false
    @Flag(help: "Print JSON (one line).")
    var json = false

    func validate() throws {
        guard threads >= 1, batch >= 1, size >= 32, warmup >= 0, iters >= 1, maxBytes >= 4 else {
            throw ValidationError("--threads, --batch and --iters must be positive, --warmup >= 0, --size at least 32, --max-bytes at least 4")
        }
    }

    func run() throws {
        let comm = try Communicator.world()
        try Runtime.setThreads(threads)
        let maxBytes = quick ? min(self.maxBytes, 64 << 10) : self.maxBytes
        let (batch, size, warmup, iters) = quick ? (2 * comm.size, 32, 1, 2) : (self.batch, self.size, self.warmup, self.iters)
        guard batch % comm.size == 0 else {
            throw ValidationError("--batch \(batch) is the global batch: it must be a multiple of the \(comm.size) ranks")
        }
        func log(_ s: String) { if comm.isMain && !json { print(s) } }
        log("sskd bench dist: \(comm.size) rank\(comm.size == 1 ? "" : "s") x \(threads) thread\(threads == 1 ? "" : "s"), \(buildConfiguration) build\(comm.usesMPI ? "" : " (no MPI: started without mpirun)")")

        // All-reduce by message size.
        var rows: [[String: Any]] = []
        if comm.size == 1 {
            log("\nall-reduce: one rank, nothing to exchange (run under mpirun -np N for the table)")
        } else {
            log("\n| bytes | latency (us) | algorithm GB/s | bus GB/s |\n|---:|---:|---:|---:|")
        }
        var bytes = 4
        while comm.size > 1 && bytes <= maxBytes {
            let n = bytes / 4
            var buf = [Float](repeating: 1, count: n)
            // Fewer repetitions for large messages keeps every size to a similar wall time.
            let reps = quick ? 3 : max(5, min(1000, (256 << 20) / max(bytes, 1) / 4))
            var times: [Double] = []
            for r in 0..<(reps + 2) {
                try comm.barrier()
                let t0 = now()
                try buf.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: n, op: .sum) }
                if r >= 2 { times.append(now() - t0) }  // two untimed calls set up the connections
            }
            var median = [times.sorted()[times.count / 2]]
            try comm.allReduce(&median, op: .max)
            let t = median[0]
            let algo = Double(bytes) / t / 1e9
            let bus = algo * 2 * Double(comm.size - 1) / Double(comm.size)
            rows.append(["bytes": bytes, "latency_us": t * 1e6, "algorithm_gbps": algo, "bus_gbps": bus])
            log(String(format: "| %d | %.1f | %.3f | %.3f |", bytes, t * 1e6, algo, bus))
            bytes *= 4
        }

        // The student's data-parallel train step.
        Allocator.tuneForImages()
        let local = batch / comm.size
        let gen = Generator(seed: 0)
        let model = try Models.make("efficientnet_b0", classes: 10, generator: gen)
        model.train()
        try comm.broadcast(tensors: model.stateDict().map(\.tensor), root: 0)
        let opt = try Adam(model.parameters(), lr: 1e-3)
        let reducer = GradientReducer(communicator: comm, parameters: model.parameters())
        // Each rank its own images (as its shard of the global batch would be).
        let rankGen = Generator(seed: UInt64(1 + comm.rank))
        let x = try Tensor.rand([local, 3, size, size], generator: rankGen)
        let y = try Tensor((0..<local).map { _ in Float(rankGen.nextInt(10)) }, shape: [local])
        var reduceSeconds = 0.0
        func step() throws {
            let loss = try model(x).crossEntropy(y)
            opt.zeroGrad()
            try loss.backward()
            var control: [Float] = [0]
            let t0 = now()
            try reducer.reduce(localCount: local, globalCount: batch, control: &control)
            reduceSeconds += now() - t0
            try opt.step()
        }
        for _ in 0..<warmup { try step() }
        try comm.barrier()
        reduceSeconds = 0
        var times: [Double] = []
        for _ in 0..<iters {
            let t0 = now()
            try step()
            times.append(now() - t0)
        }
        var slowest = [times.reduce(0, +), reduceSeconds]
        try comm.allReduce(&slowest, op: .max)
        let perStep = slowest[0] / Double(iters)
        let imagesPerSecond = Double(batch) / perStep
        let gradientMB = Double(reducer.gradientCount * 4) / 1048576
        let step: [String: Any] = ["model": "efficientnet_b0", "size": size, "global_batch": batch, "batch_per_rank": local,
                                   "ms_per_step": perStep * 1000, "images_per_s": imagesPerSecond,
                                   "all_reduce_share": slowest[1] / max(slowest[0], 1e-12), "gradient_mb": gradientMB,
                                   "buckets": reducer.buckets.count]
        log(String(format: "\ntrain step: efficientnet_b0 at %d px, global batch %d (%d per rank), %d rank%@ x %d thread%@: %.1f images/s, %.1f ms/step, all-reduce %.0f %% of the step (%.1f MB of gradients in %d buckets)",
                   size, batch, local, comm.size, comm.size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                   imagesPerSecond, perStep * 1000, 100 * slowest[1] / max(slowest[0], 1e-12), gradientMB, reducer.buckets.count))
        if json && comm.isMain {
            let all: [String: Any] = ["ranks": comm.size, "threads": threads, "build": buildConfiguration, "all_reduce": rows, "train_step": step]
            print(String(decoding: try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}
