import COpenBLAS
import Dispatch
import Synchronization
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
    WorkerPool.run(chunks) { c in
        let lo = c * per, hi = min(count, lo + per)
        if lo < hi { body(lo..<hi) }
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
    WorkerPool.run(count, body)
}

/// The threads behind `parallelFor` and `parallelTasks`: the calling thread plus
/// `min(Runtime.threads, cores) - 1` workers that spin briefly after each job before they sleep.
///
/// Why not `DispatchQueue.concurrentPerform`: its workers sleep between jobs and take 20-30 µs
/// to wake, so a region of 2 x 30 µs ran in 50-60 µs on 2 threads (no gain at all), and every
/// kernel of a small map paid that once per parallel loop. Spinning workers take a new job within
/// a microsecond (the same as OpenMP, which PyTorch uses).
///
/// One job runs at a time. A second thread that starts a job while one runs (the data loader's
/// augmentation beside the training step) falls back to `concurrentPerform`. Tasks are claimed
/// dynamically, so which thread runs a task varies, but what each task computes does not.
enum WorkerPool {
    /// The state shared with the workers. `ticket` packs the job's generation, its task count and
    /// the next unclaimed task, so a worker reads a consistent job (and a worker that wakes late
    /// for a finished job cannot claim a task of the next one) with one atomic.
    final class Shared: @unchecked Sendable {
        let ticket = Atomic<Int>(0)
        // Keeps `finished` (written by each thread at the end of a job) off the ticket's cache line.
        private let padding = (0, 0, 0, 0, 0, 0, 0, 0)
        let finished = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let busy = Atomic<Bool>(false)
        /// Workers allowed to take tasks (`Runtime.threads - 1`, at most the workers started).
        let active = Atomic<Int>(0)
        /// The running job's body; written before its ticket is published, read after a claim.
        var body: UnsafePointer<(Int) -> Void>? = nil
        var started = 0
        var mutex = pthread_mutex_t()
        var wake = pthread_cond_t()
        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&wake, nil)
        }
    }

    static let shared = Shared()
    static let useDispatch = getenv("SSKD_POOL").map { String(cString: $0) == "dispatch" } ?? false
    static let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// How long an idle worker spins for the next job before it sleeps (ns).
    static let spinNanoseconds = 200_000

    // ticket layout: generation (bits 42-63) | task count (21-41) | next task (0-20)
    static let indexBits = 21
    static let indexMask = (1 << indexBits) - 1
    static let maxTasks = indexMask
    @inline(__always) static func generation(_ t: Int) -> Int { t >> (2 * indexBits) }
    @inline(__always) static func taskCount(_ t: Int) -> Int { (t >> indexBits) & indexMask }

    /// Runs `body(i)` for `i` in `0..<count`, the calling thread taking tasks too.
    static func run(_ count: Int, _ body: (Int) -> Void) {
        let grad = GradMode.isEnabled
        let threads = min(Runtime.threads, cores)
        let s = shared
        if threads < 2 || count > maxTasks || useDispatch
            || !s.busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            withoutActuallyEscaping(body) { body in
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    ParallelRegion.runTask(gradEnabled: grad) { body(i) }
                }
            }
            return
        }
        defer { s.busy.store(false, ordering: .releasing) }
        startWorkers(threads - 1)
        let task: (Int) -> Void = { i in ParallelRegion.runTask(gradEnabled: grad) { body(i) } }
        withoutActuallyEscaping(task) { task in
            withUnsafePointer(to: task) { task in
                s.body = task
                s.finished.store(0, ordering: .relaxed)
                let g = (generation(s.ticket.load(ordering: .relaxed)) + 1) & ((1 << (64 - 2 * indexBits - 1)) - 1)
                s.ticket.store(g << (2 * indexBits) | count << indexBits, ordering: .sequentiallyConsistent)
                if s.sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    pthread_mutex_lock(&s.mutex)
                    pthread_cond_broadcast(&s.wake)
                    pthread_mutex_unlock(&s.mutex)
                }
                claimTasks(s, generation: g)
                // A worker may still run a task it claimed; yield the core after a short spin in
                // case it was preempted (another process, or the loader thread).
                var spins = 0
                while s.finished.load(ordering: .acquiring) < count {
                    spins += 1
                    if spins > 4096 { sched_yield() }
                }
                s.body = nil
            }
        }
    }

    /// Claims and runs tasks of job `g` until none is left (or the job is no longer `g`).
    /// The tasks run are counted once at the end (one shared write per thread, not per task).
    @inline(__always)
    static func claimTasks(_ s: Shared, generation g: Int) {
        var ran = 0
        defer { if ran > 0 { s.finished.add(ran, ordering: .releasing) } }
        while true {
            var t = s.ticket.load(ordering: .acquiring)
            while true {
                if generation(t) != g || t & indexMask >= taskCount(t) { return }
                let (won, seen) = s.ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing)
                if won { break }
                t = seen
            }
            s.body!.pointee(t & indexMask)
            ran += 1
        }
    }

    /// Makes `n` workers take tasks, starting threads the first time more are needed.
    static func startWorkers(_ n: Int) {
        let s = shared
        while s.started < n {
            let id = s.started
            s.started += 1
            var thread = pthread_t()
            let box = UnsafeMutablePointer<Int>.allocate(capacity: 1)
            box.initialize(to: id)
            let rc = pthread_create(&thread, nil, { arg in
                let box = arg!.assumingMemoryBound(to: Int.self)
                let id = box.pointee
                box.deallocate()
                WorkerPool.workerLoop(id: id)
                return nil
            }, box)
            if rc != 0 { box.deallocate(); s.started -= 1; break }
            pthread_detach(thread)
        }
        s.active.store(min(n, s.started), ordering: .relaxed)
    }

    static func workerLoop(id: Int) -> Never {
        let s = shared
        var seen = generation(s.ticket.load(ordering: .acquiring))
        while true {
            var g = generation(s.ticket.load(ordering: .acquiring))
            if g == seen {
                var clock = timespec()
                clock_gettime(CLOCK_MONOTONIC, &clock)
                let start = clock.tv_sec * 1_000_000_000 + clock.tv_nsec
                var spins = 0
                while g == seen {
                    spins += 1
                    if spins & 255 == 0 {
                        clock_gettime(CLOCK_MONOTONIC, &clock)
                        if clock.tv_sec * 1_000_000_000 + clock.tv_nsec - start > spinNanoseconds {
                            pthread_mutex_lock(&s.mutex)
                            s.sleepers.add(1, ordering: .sequentiallyConsistent)
                            while generation(s.ticket.load(ordering: .sequentiallyConsistent)) == seen {
                                pthread_cond_wait(&s.wake, &s.mutex)
                            }
                            s.sleepers.subtract(1, ordering: .sequentiallyConsistent)
                            pthread_mutex_unlock(&s.mutex)
                        }
                    }
                    g = generation(s.ticket.load(ordering: .acquiring))
                }
            }
            seen = g
            if id < s.active.load(ordering: .relaxed) { claimTasks(s, generation: g) }
        }
    }
}
