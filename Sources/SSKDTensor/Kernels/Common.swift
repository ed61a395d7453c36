// Helpers shared by the CNN kernels: unaligned SIMD loads/stores and argument parsing for the
// PyTorch-style `stride` / `padding` / `dilation` lists.

import _Builtin_intrinsics.intel
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Loads 8 floats from `p` (any alignment).
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Loads 16 floats from `p` (any alignment); `evenHalf` / `oddHalf` split them by column parity.
@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// Runs `body(start)` over blocks of `width` covering `range` (count >= width); the last block is
/// moved back to end at `range.upperBound`, overlapping its predecessor (the blocks only store, so
/// the values computed twice are the same).
@inline(__always) func forEachBlock(_ range: Range<Int>, width: Int, _ body: (Int) -> Void) {
    var i = range.lowerBound
    while i < range.upperBound {
        let s = Swift.min(i, range.upperBound - width)
        body(s)
        i = s + width
    }
}

/// Stores 8 floats at `p` (any alignment).
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// How a streaming kernel writes its output, 8 lanes at a time: `store` at 32-byte aligned
/// addresses, then `finish()` once at the end of each thread's run.
protocol LaneStore {
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>)
    static func finish()
    /// Whether a kernel may write two output streams side by side (`splitRun`).
    static var interleaves: Bool { get }
}

/// Ordinary stores, through the cache.
enum CachedStore: LaneStore {
    @inline(__always) static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { store8(v, p) }
    @inline(__always) static func finish() {}
    static var interleaves: Bool { true }
}

/// Streaming (non-temporal) stores: the line is neither read in first nor kept, so it evicts
/// nothing. They are weakly ordered, so `finish` fences them before the run reports completion:
/// a locked read-modify-write drains the write-combining buffers as `sfence` does (`_mm_sfence`
/// is a compiler builtin that Swift cannot call).
enum StreamingStore: LaneStore {
    @inline(__always) static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { _mm256_stream_ps(p, v) }
    @inline(__always) static func finish() { streamingFenceWord.wrappingAdd(1, ordering: .sequentiallyConsistent) }
    /// Two interleaved write-combining streams made relu6 on 32x96x48x48 7-10 % slower forward
    /// and up to 2.8x slower backward.
    static var interleaves: Bool { false }
}
private let streamingFenceWord = Atomic<Int>(0)

/// Elementwise kernels whose inputs and output come to at least this many bytes write the output
/// with streaming stores. Such streams cannot stay in the last-level cache together, and an
/// ordinary store that misses the cache first reads the line in: a memory stream the kernel does
/// not need. Three quarters of the last-level cache (the rest holds everything else);
/// `SSKD_STREAM_MIN_BYTES` overrides it, and tests lower it to run both paths.
nonisolated(unsafe) var streamingFootprintBytes: Int = {
    if let v = getenv("SSKD_STREAM_MIN_BYTES").flatMap({ Int(String(cString: $0)) }) { return v }
    return lastLevelCacheBytes() / 4 * 3
}()

/// The size of the largest cache that cpu0 reports in sysfs (32 MiB if none). `sysconf(_SC_LEVEL3_CACHE_SIZE)` is not used: on AMD it reports the whole
/// package's L3 (256 MiB here) rather than the 32 MiB the core shares.
func lastLevelCacheBytes() -> Int {
    var best = 0
    for index in 0..<8 {
        guard let f = fopen("/sys/devices/system/cpu/cpu0/cache/index\(index)/size", "r") else { break }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 32)
        guard fgets(&line, Int32(line.count), f) != nil else { continue }
        var text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }   // "32768K\n", "1M\n"
        while text.last?.isWhitespace == true { text.removeLast() }
        let scale = text.hasSuffix("K") ? 1 << 10 : text.hasSuffix("M") ? 1 << 20 : 1
        if let n = Int(scale == 1 ? Substring(text) : text.dropLast()) { best = max(best, n * scale) }
    }
    return best > 0 ? best : 32 << 20
}

/// Whether an elementwise kernel that touches `bytes` bytes in all should write its output at
/// `y` with streaming stores (which need 32-byte alignment).
@inline(__always) func streamsPastCache(_ y: UnsafeMutablePointer<Float>, bytesTouched bytes: Int) -> Bool {
    bytes >= streamingFootprintBytes && Int(bitPattern: y) & 31 == 0
}

/// `v` with lanes 0 ..< 8 - rem zeroed (1 <= rem <= 7): the not-yet-counted lanes of a ragged
/// tail read as the last 8 floats of a row. Built with vector integer ops (a comparison against a
/// scalar would be assembled lane by lane), and by bit masking so inf / NaN lanes are dropped too.
@inline(__always) func keepLast(_ v: SIMD8<Float>, _ rem: Int) -> SIMD8<Float> {
    let lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    let keep = (lane &+ Int32(truncatingIfNeeded: rem)) &>> 3          // 1 where lane >= 8 - rem
    let mask = SIMD8<UInt32>(truncatingIfNeeded: 0 &- keep)
    return unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & mask, to: SIMD8<Float>.self)
}

/// A horizontal sum in Double (the lanes are partial sums of one reduction).
@inline(__always) func hsum(_ v: SIMD8<Float>) -> Double {
    var s = 0.0
    for i in 0..<8 { s += Double(v[i]) }
    return s
}

/// The largest kernel size, stride, padding, dilation or output size an op accepts (2^31 - 1,
/// PyTorch's int32 bound for these). With every such argument and every dimension (at most 2^40)
/// bounded, the geometry formulas (sums of a few terms, products of two) cannot overflow an Int.
let maxSizeArgument = Int(Int32.max)

/// `[v]` or `[vh, vw]` -> (vh, vw), each in `minimum ... maxSizeArgument`.
func pair(_ v: [Int], _ name: String, op: String, minimum: Int) throws -> (Int, Int) {
    let r: (Int, Int)
    switch v.count {
    case 1: r = (v[0], v[0])
    case 2: r = (v[0], v[1])
    default: throw TensorError(op, "\(name) must have 1 or 2 entries, got \(v)")
    }
    guard r.0 >= minimum && r.1 >= minimum else {
        throw TensorError(op, "\(name) must be >= \(minimum), got \(v)")
    }
    guard r.0 <= maxSizeArgument && r.1 <= maxSizeArgument else {
        throw TensorError(op, "\(name) must be at most \(maxSizeArgument), got \(v)")
    }
    return r
}

/// `[p]`, `[ph, pw]` or `[top, bottom, left, right]` -> (top, bottom, left, right), each in
/// `0 ... maxSizeArgument`.
func quad(_ v: [Int], _ name: String, op: String) throws -> (Int, Int, Int, Int) {
    let r: (Int, Int, Int, Int)
    switch v.count {
    case 1: r = (v[0], v[0], v[0], v[0])
    case 2: r = (v[0], v[0], v[1], v[1])
    case 4: r = (v[0], v[1], v[2], v[3])
    default: throw TensorError(op, "\(name) must have 1, 2 or 4 entries, got \(v)")
    }
    guard r.0 >= 0 && r.1 >= 0 && r.2 >= 0 && r.3 >= 0 else { throw TensorError(op, "\(name) must be >= 0, got \(v)") }
    guard Swift.max(r.0, r.1, r.2, r.3) <= maxSizeArgument else { throw TensorError(op, "\(name) must be at most \(maxSizeArgument), got \(v)") }
    return r
}

/// Chunk size for `parallelFor` over `items` tasks of `work` elements each: about 32K elements
/// per chunk, at least one task.
@inline(__always) func grainFor(work: Int) -> Int { Swift.max(1, 32768 / Swift.max(work, 1)) }

/// Chunk size for `parallelFor` over `count` independent tasks of `work` elements each:
/// `runsPerThread` runs of tasks per thread (at least `grainFor(work:)`), as OpenMP's static
/// schedule. Only for tasks whose results do not depend on the chunking. Measured at 2 threads:
/// - one run per thread (batch norm, global pooling, elementwise streams): 32K-element chunks taken
///   in turn by the threads interleave their memory streams, and relu6 on 32x144x24x24 (10.6 MB)
///   or batch norm on 24x24 maps barely beat one thread that way (1.9-2x and 1.2-1.6x faster now);
/// - four runs per thread where a chunk allocates and zeroes scratch (depthwise): one task per
///   chunk paid that setup 960 times in the 5x5 forward on 12x12 maps, and one run per thread
///   was 10-40 % slower than four.
@inline(__always) func threadRunGrain(count: Int, work: Int, runsPerThread: Int = 1) -> Int {
    let runs = runsPerThread * Runtime.availableThreads
    return Swift.max(grainFor(work: work), (count + runs - 1) / runs)
}

/// `parallelFor` over an elementwise stream of `count` floats: one run per thread, at least 32K
/// floats and a multiple of 32 (so only the last run has a scalar tail).
@inline(__always) func parallelStream(_ count: Int, _ body: (Range<Int>) -> Void) {
    parallelFor(count, grain: (threadRunGrain(count: count, work: 1) + 31) & ~31, body)
}

/// A thread's run of an elementwise stream as two halves to walk side by side: `a ..< a + half`
/// and `b ..< b + half`, then `b + half ..< r.upperBound` alone. One sequential stream per core
/// leaves memory bandwidth unused (the hardware prefetcher runs only so far ahead of a stream):
/// a C clamp over 32x144x24x24 floats took 0.94-1.19 ms on one thread walking its run in order and
/// 0.66-0.82 ms walking two halves side by side; four halves were no faster, eight slower.
/// Stores that do not interleave (streaming stores) keep the run whole (`half` 0). `half` is a
/// multiple of 32 floats, so `b` keeps `a`'s alignment.
@inline(__always) func splitRun<S: LaneStore>(_ r: Range<Int>, _: S.Type) -> (a: Int, b: Int, half: Int) {
    let half = S.interleaves ? (r.count / 2) & ~31 : 0
    return (r.lowerBound, r.lowerBound + half, half)
}
