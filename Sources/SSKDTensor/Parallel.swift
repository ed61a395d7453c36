import COpenBLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Thread settings shared by our kernels and OpenBLAS.
///
/// All parallelism is ours: OpenBLAS runs single-threaded and `sgemm` splits a large product
/// across our threads itself, so a GEMM never nests OpenBLAS's thread pool inside a parallel loop
/// (or the reverse). `parallelFor` splits work into chunks whose boundaries depend only on the
/// problem size (never on the thread count), so elementwise and reduction results are identical
/// whatever the number of threads. Products split across threads (and eval forwards split by
/// batch slice) agree across thread counts to float rounding only: OpenBLAS rounds an element
/// differently near a block's edge. The same thread count always gives the same bits.
public enum Runtime {
    nonisolated(unsafe) private static var _threads: Int = {
        let env = getenv("SSKD_THREADS").flatMap { Int(String(cString: $0)) }
        let n = max(1, env ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        openblas_set_num_threads(1)
        return n
    }()

    /// Worker threads for our kernels (default: `SSKD_THREADS`, else the core count).
    public static var threads: Int { _threads }

    /// Threads a kernel started here may use: `threads`, or 1 inside a task of `parallelFor` /
    /// `parallelTasks` (nested loops run serially in their task instead of oversubscribing).
    public static var availableThreads: Int { ParallelRegion.isInside ? 1 : _threads }

    /// Sets the thread count of our kernels.
    public static func setThreads(_ n: Int) throws {
        guard n >= 1 && n <= 1024 else { throw TensorError("set_num_threads", "thread count must be in 1...1024, got \(n)") }
        _ = _threads
        _threads = n
    }

    /// Ensures OpenBLAS has been told to stay single-threaded before its first call.
    @inline(__always) static func ensureInitialised() { _ = _threads }
}

/// Whether the current thread is running a task of `parallelFor` / `parallelTasks` (per thread).
enum ParallelRegion {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static var isInside: Bool {
        get { pthread_getspecific(key) != nil }
        set { pthread_setspecific(key, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }

    /// Runs one task on a worker (or the calling) thread with the caller's grad mode, marked as
    /// inside a parallel region, and restores the thread's own state afterwards.
    @inline(__always)
    static func runTask(gradEnabled: Bool, _ body: () -> Void) {
        let (savedGrad, savedInside) = (GradMode.isEnabled, isInside)
        if savedGrad != gradEnabled { GradMode.isEnabled = gradEnabled }
        if !savedInside { isInside = true }
        body()
        if !savedInside { isInside = false }
        if savedGrad != gradEnabled { GradMode.isEnabled = savedGrad }
    }
}

/// Runs `body` over `0..<count` split into chunks of at least `grain` items, on up to
/// `Runtime.availableThreads` threads. Chunk boundaries depend only on `count` and `grain`.
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 32768, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    if count <= grain || Runtime.availableThreads == 1 {
        body(0..<count)
        return
    }
    let chunks = (count + grain - 1) / grain
    let per = grain
    let grad = GradMode.isEnabled
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { ParallelRegion.runTask(gradEnabled: grad) { body(lo..<hi) } }
        }
    }
}

/// Runs `body(i)` for each of `count` independent tasks (for example one per image or channel).
/// Use for coarse tasks; each task should be sizeable.
@inline(__always)
public func parallelTasks(_ count: Int, _ body: (Int) -> Void) {
    if count <= 0 { return }
    if count == 1 || Runtime.availableThreads == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let grad = GradMode.isEnabled
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: count) { i in
            ParallelRegion.runTask(gradEnabled: grad) { body(i) }
        }
    }
}
