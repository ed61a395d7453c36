// The processes of one `mpirun` job and the collectives sskd needs between them, over Open MPI.
//
// A process that was not started by a launcher (mpirun, srun, ...) never initialises MPI: its
// world is `Communicator.local`, one rank whose collectives are no-ops, so a plain `sskd run`
// pays nothing for MPI (Open MPI's singleton MPI_Init works here but costs ~0.3 s and loads its
// plugins). SSKD_MPI=1 forces MPI even then (a singleton job of size 1); SSKD_MPI=0 keeps every
// process of an mpirun job alone.
//
// MPI is initialised lazily, on the first use of `Communicator.world()`, with
// MPI_THREAD_SERIALIZED (only one thread at a time calls MPI; sskd's compute threads never do),
// and finalised at exit. The world communicator returns errors (MPI_ERRORS_RETURN) instead of
// aborting; every failed call becomes a `DistError` naming the operation and the rank.

import CMPI
import Foundation
import SSKDTensor

/// An error from a collective: MPI's own, or ranks that disagree (shapes, roots, sizes).
public struct DistError: Error, CustomStringConvertible {
    public let op: String
    public let message: String
    public init(_ op: String, _ message: String) { self.op = op; self.message = message }
    public var description: String { "dist.\(op): \(message)" }
}

/// How `allReduce` combines the ranks' values (`torch.distributed.ReduceOp`).
public enum ReduceOp: String, CaseIterable {
    case sum, mean, max, min

    public init(parsing s: String, op: String) throws {
        guard let v = ReduceOp(rawValue: s.lowercased()) else {
            throw DistError(op, "unknown reduce op '\(s)' (expected one of: \(ReduceOp.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self = v
    }

    var mpi: MPI_Op {
        switch self {
        case .sum, .mean: return sskd_mpi_sum()
        case .max: return sskd_mpi_max()
        case .min: return sskd_mpi_min()
        }
    }
}

/// A group of ranks: MPI's world, or this process alone.
public final class Communicator: @unchecked Sendable {
    /// Zero-based rank of this process.
    public let rank: Int
    /// Number of ranks.
    public let size: Int
    /// nil: this process alone, without MPI.
    private let comm: MPI_Comm?

    /// Rank 0: the one that writes files and prints progress.
    public var isMain: Bool { rank == 0 }
    /// Whether this communicator talks through MPI (false for `local`).
    public var usesMPI: Bool { comm != nil }

    private init(rank: Int, size: Int, comm: MPI_Comm?) {
        self.rank = rank; self.size = size; self.comm = comm
    }

    /// This process alone: rank 0 of 1, every collective a no-op.
    public static let local = Communicator(rank: 0, size: 1, comm: nil)

    nonisolated(unsafe) private static var worldCache: Communicator?
    nonisolated(unsafe) private static var initialised = false
    nonisolated(unsafe) private static var finalised = false
    private static let lock = NSLock()

    /// Whether a launcher started this process as one rank of a job (Open MPI, PMIx, Slurm's
    /// PMI, MPICH's Hydra set these).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// Whether `world()` initialises MPI: under a launcher, or forced with SSKD_MPI=1; never with SSKD_MPI=0.
    public static var wantsMPI: Bool {
        switch ProcessInfo.processInfo.environment["SSKD_MPI"] {
        case "1"?: return true
        case "0"?: return false
        default: return launchedByMPI
        }
    }

    /// Every rank of the job (initialising MPI on first use), or `local` when the process was not
    /// started by a launcher.
    public static func world() throws -> Communicator {
        lock.lock(); defer { lock.unlock() }
        if let w = worldCache { return w }
        guard wantsMPI else { worldCache = local; return local }
        guard !finalised else { throw DistError("init", "MPI was already finalised in this process") }
        var provided: Int32 = 0
        let rc = MPI_Init_thread(nil, nil, sskd_mpi_thread_serialized(), &provided)
        guard rc == MPI_SUCCESS else { throw DistError("init", "MPI_Init_thread failed: \(errorString(rc))") }
        initialised = true
        atexit { Communicator.finalize() }
        guard provided >= sskd_mpi_thread_serialized() else {
            throw DistError("init", "this MPI library offers thread level \(provided); sskd needs MPI_THREAD_SERIALIZED (\(sskd_mpi_thread_serialized()))")
        }
        let c = sskd_mpi_comm_world()
        MPI_Comm_set_errhandler(c, sskd_mpi_errors_return())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(c, &r)
        MPI_Comm_size(c, &s)
        let w = Communicator(rank: Int(r), size: Int(s), comm: c)
        worldCache = w
        return w
    }

    /// The world if it already exists (nothing is initialised): what error paths use.
    public static var existingWorld: Communicator? { lock.lock(); defer { lock.unlock() }; return worldCache }

    /// Finalises MPI if this process initialised it (registered with atexit; safe to call twice).
    public static func finalize() {
        lock.lock(); defer { lock.unlock() }
        guard initialised, !finalised else { return }
        finalised = true
        var done: Int32 = 0
        MPI_Finalized(&done)
        if done == 0 { MPI_Finalize() }
    }

    static func errorString(_ rc: Int32) -> String {
        var buf = [CChar](repeating: 0, count: Int(sskd_mpi_max_error_string()) + 1)
        var len: Int32 = 0
        MPI_Error_string(rc, &buf, &len)
        return String(cString: buf) + " (MPI error \(rc))"
    }

    private func check(_ rc: Int32, _ op: String) throws {
        guard rc != MPI_SUCCESS else { return }
        throw DistError(op, "\(Self.errorString(rc)) on rank \(rank) of \(size)")
    }

    private func checkRoot(_ root: Int, _ op: String) throws {
        guard root >= 0 && root < size else { throw DistError(op, "root \(root) is not a rank (ranks are 0...\(size - 1))") }
    }

    // MARK: - Ending

    /// Prints `message` naming this rank and ends every rank of the job (MPI_Abort), or this
    /// process alone when there is no MPI job: how one rank's failure stops the others instead
    /// of leaving them waiting in a collective.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        fputs((size > 1 ? "sskd: rank \(rank) of \(size) failed (ending all \(size) ranks): " : "sskd: ") + message + "\n", stderr)
        fflush(stdout); fflush(stderr)
        if let comm, size > 1 { MPI_Abort(comm, code) }
        exit(code)
    }

    // MARK: - Collectives on raw buffers

    /// MPI counts are Int32: long buffers go in pieces of at most this many elements.
    static let chunk = 1 << 28

    public func barrier() throws {
        guard let comm else { return }
        try check(MPI_Barrier(comm), "barrier")
    }

    /// Combines `count` floats at `p` over the ranks, in place.
    public func allReduce(_ p: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {
        guard let comm, size > 1 else { return }
        var off = 0
        while off < count {
            let n = Swift.min(Self.chunk, count - off)
            try check(MPI_Allreduce(sskd_mpi_in_place(), p + off, Int32(n), sskd_mpi_float(), op.mpi, comm), "all_reduce")
            off += n
        }
        if op == .mean {
            let inv = 1 / Float(size)
            for i in 0..<count { p[i] *= inv }
        }
    }

    /// Combines doubles over the ranks, in place (counts and sums that must stay exact).
    public func allReduce(_ values: inout [Double], op: ReduceOp) throws {
        guard let comm, size > 1, !values.isEmpty else { return }
        let n = values.count
        guard n <= Self.chunk else { throw DistError("all_reduce", "\(n) doubles are too many for one call") }
        try values.withUnsafeMutableBufferPointer { b in
            try check(MPI_Allreduce(sskd_mpi_in_place(), b.baseAddress, Int32(n), sskd_mpi_double(), op.mpi, comm), "all_reduce")
        }
        if op == .mean { for i in 0..<n { values[i] /= Double(size) } }
    }

    /// Copies `bytes` bytes at `p` from `root` to every rank.
    public func broadcast(_ p: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try checkRoot(root, "broadcast")
        guard let comm, size > 1 else { return }
        var off = 0
        while off < bytes {
            let n = Swift.min(Self.chunk, bytes - off)
            try check(MPI_Bcast(p + off, Int32(n), sskd_mpi_byte(), Int32(root), comm), "broadcast")
            off += n
        }
    }

    /// Every rank's `Int64` values, in rank order (`values.count` must agree).
    public func allGather(_ values: [Int64]) throws -> [[Int64]] {
        guard let comm, size > 1 else { return [values] }
        let n = values.count
        var out = [Int64](repeating: 0, count: n * size)
        try values.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                try check(MPI_Allgather(src.baseAddress, Int32(n), sskd_mpi_int64(), dst.baseAddress, Int32(n), sskd_mpi_int64(), comm), "all_gather")
            }
        }
        return (0..<size).map { Array(out[$0 * n..<($0 + 1) * n]) }
    }

    /// `root`'s value on every rank (a decision every rank must share).
    public func broadcastValue(_ value: Double, root: Int) throws -> Double {
        var v = value
        try broadcast(&v, bytes: MemoryLayout<Double>.size, root: root)
        return v
    }

    // MARK: - Bytes (serialised objects, fingerprints, checkpoints)

    /// Every rank's bytes, in rank order (each rank may send a different length).
    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        guard let comm, size > 1 else { return [bytes] }
        let counts = try allGather([Int64(bytes.count)]).map { Int($0[0]) }
        let total = counts.reduce(0, +)
        guard total <= Int(Int32.max) else { throw DistError("all_gather", "\(total) bytes in all are more than one MPI call carries (2 GiB)") }
        var displs = [Int32](repeating: 0, count: size)
        for r in 1..<size { displs[r] = displs[r - 1] + Int32(counts[r - 1]) }
        let c32 = counts.map { Int32($0) }
        var out = [UInt8](repeating: 0, count: Swift.max(total, 1))
        try bytes.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                try check(MPI_Allgatherv(src.baseAddress, Int32(bytes.count), sskd_mpi_byte(), dst.baseAddress, c32, displs, sskd_mpi_byte(), comm), "all_gather")
            }
        }
        return (0..<size).map { Array(out[Int(displs[$0])..<Int(displs[$0]) + counts[$0]]) }
    }

    /// Every rank's bytes on `root`, in rank order; nil on the other ranks.
    public func gather(bytes: [UInt8], root: Int) throws -> [[UInt8]]? {
        try checkRoot(root, "gather")
        guard let comm, size > 1 else { return [bytes] }
        try agree([Int64(root)], on: "root", op: "gather")
        var count = Int64(bytes.count)
        var counts = [Int64](repeating: 0, count: size)
        try counts.withUnsafeMutableBufferPointer { dst in
            try check(MPI_Gather(&count, 1, sskd_mpi_int64(), dst.baseAddress, 1, sskd_mpi_int64(), Int32(root), comm), "gather")
        }
        let total = Int(counts.reduce(0, +))
        // Every rank learns whether the total fits, so that all of them fail together.
        var fits = [rank == root ? (total <= Int(Int32.max) ? 1.0 : 0.0) : 1.0]
        try allReduce(&fits, op: .min)
        guard fits[0] == 1 else { throw DistError("gather", "the ranks' objects are more than one MPI call carries (2 GiB) on rank \(root)") }
        var displs = [Int32](repeating: 0, count: size)
        for r in 1..<size { displs[r] = displs[r - 1] + Int32(clamping: counts[r - 1]) }
        let c32 = counts.map { Int32(clamping: $0) }
        var out = [UInt8](repeating: 0, count: Swift.max(rank == root ? total : 0, 1))
        try bytes.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                try check(MPI_Gatherv(src.baseAddress, Int32(bytes.count), sskd_mpi_byte(), dst.baseAddress, c32, displs, sskd_mpi_byte(), Int32(root), comm), "gather")
            }
        }
        guard rank == root else { return nil }
        return (0..<size).map { Array(out[Int(displs[$0])..<Int(displs[$0]) + Int(counts[$0])]) }
    }

    /// `root`'s bytes on every rank (the others' `bytes` are ignored).
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        try checkRoot(root, "broadcast")
        guard comm != nil, size > 1 else { return bytes }
        try agree([Int64(root)], on: "root", op: "broadcast")
        var n = Int64(rank == root ? bytes.count : 0)
        try broadcast(&n, bytes: 8, root: root)
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(n))
        if n > 0 { try out.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: Int(n), root: root) } }
        return out
    }

    // MARK: - Tensors

    /// Makes sure every rank passes the same `values` (a root, a shape); otherwise every rank
    /// throws the same error naming the first rank that differs, so that none is left waiting in
    /// a collective the others never enter.
    public func agree(_ values: [Int64], on what: String, op: String, show: ([Int64]) -> String = { "\($0)" }) throws {
        guard size > 1 else { return }
        let all = try allGather(values)
        if let r = all.firstIndex(where: { $0 != all[0] }) {
            throw DistError(op, "the ranks disagree on the \(what): rank 0 has \(show(all[0])), rank \(r) has \(show(all[r]))")
        }
    }

    /// Makes sure every rank passes a tensor of the same shape (and the same root, if any).
    public func checkSameShape(_ t: Tensor, root: Int? = nil, op: String) throws {
        guard size > 1 else { return }
        // [root, dims, sizes... padded with -1]: 8 dims cover every shape sskd makes; a longer
        // shape is summarised by its count (still caught when it differs in size).
        var mine = [Int64](repeating: -1, count: 10)
        mine[0] = Int64(root ?? -1)
        mine[1] = Int64(t.dim)
        if t.dim <= 8 { for (i, d) in t.shape.enumerated() { mine[i + 2] = Int64(d) } } else { mine[2] = Int64(t.count) }
        try agree(mine, on: root == nil ? "tensor shape" : "root and tensor shape", op: op) { v in
            (v[0] >= 0 ? "root \(v[0]), " : "") + (v[1] <= 8 ? "shape [" + v[2..<(2 + Int(v[1]))].map(String.init).joined(separator: ", ") + "]" : "\(v[1]) dims")
        }
    }

    /// Combines a Float tensor over the ranks, in place (`torch.distributed.all_reduce`).
    public func allReduce(_ t: Tensor, op: ReduceOp) throws {
        try checkSameShape(t, op: "all_reduce")
        try allReduce(t.data, count: t.count, op: op)
    }

    /// Overwrites `t` with `root`'s values on every rank, in place.
    public func broadcast(_ t: Tensor, root: Int) throws {
        try checkRoot(root, "broadcast")
        try checkSameShape(t, root: root, op: "broadcast")
        try broadcast(UnsafeMutableRawPointer(t.data), bytes: t.count * MemoryLayout<Float>.stride, root: root)
    }

    /// Overwrites every tensor of `tensors` with `root`'s values, packed into one flat buffer (one
    /// broadcast for a whole state dict). The ranks must pass tensors of the same shapes in the
    /// same order (their total count is checked).
    public func broadcast(tensors: [Tensor], root: Int) throws {
        try checkRoot(root, "broadcast")
        guard size > 1 else { return }
        let total = tensors.reduce(0) { $0 + $1.count }
        try agree([Int64(root), Int64(tensors.count), Int64(total)], on: "root, tensor count and element count", op: "broadcast")
        var flat = [Float](repeating: 0, count: total)
        var off = 0
        if rank == root { for t in tensors { for j in 0..<t.count { flat[off + j] = t.data[j] }; off += t.count } }
        if total > 0 { try flat.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: $0.count, root: root) } }
        off = 0
        for t in tensors { for j in 0..<t.count { t.data[j] = flat[off + j] }; off += t.count }
    }

    /// Every rank's tensor (same shape on all), in rank order.
    public func allGather(_ t: Tensor) throws -> [Tensor] {
        guard let comm, size > 1 else { return [try withNoGrad { try t.detach().clone() }] }
        try checkSameShape(t, op: "all_gather")
        let n = t.count
        let out = try Tensor.empty([size * n])
        var off = 0
        // Pieces keep each call's element count within Int32.
        while off < n {
            let k = Swift.min(Self.chunk / size, n - off)
            let tmp = try Tensor.empty([size * k])
            try check(MPI_Allgather(t.data + off, Int32(k), sskd_mpi_float(), tmp.data, Int32(k), sskd_mpi_float(), comm), "all_gather")
            for r in 0..<size { (out.data + r * n + off).update(from: tmp.data + r * k, count: k) }
            off += k
        }
        return try (0..<size).map { r in
            let part = try Tensor.empty(t.shape)
            part.data.update(from: out.data + r * n, count: n)
            return part
        }
    }
}
