#if canImport(Glibc)
import Glibc
#endif

/// A seeded random number generator (xoshiro256**, seeded through SplitMix64).
///
/// Tensors are filled sequentially from one generator, so the numbers never depend on the thread
/// count. `Generator.default` backs `Tensor.rand` and friends unless a generator is passed;
/// `manualSeed(_:)` resets it like `torch.manual_seed`.
public final class Generator {
    public private(set) var seed: UInt64
    private var s0: UInt64 = 0, s1: UInt64 = 0, s2: UInt64 = 0, s3: UInt64 = 0
    /// A cached second normal deviate from Box-Muller.
    private var spareNormal: Float? = nil

    public init(seed: UInt64) {
        self.seed = seed
        reseed(seed)
    }

    nonisolated(unsafe) public static var `default` = Generator(seed: 0)

    /// Reseeds the default generator.
    public static func manualSeed(_ seed: UInt64) { Generator.default.reseed(seed) }

    public func reseed(_ seed: UInt64) {
        self.seed = seed
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
        spareNormal = nil
    }

    /// The full state, to checkpoint a run and resume it exactly.
    public var state: [UInt64] {
        get { [seed, s0, s1, s2, s3, spareNormal.map { UInt64($0.bitPattern) | (1 << 32) } ?? 0] }
    }

    public func setState(_ st: [UInt64]) throws {
        guard st.count == 6 else { throw TensorError("Generator.setState", "expected 6 words, got \(st.count)") }
        seed = st[0]; s0 = st[1]; s1 = st[2]; s2 = st[3]; s3 = st[4]
        spareNormal = st[5] & (1 << 32) != 0 ? Float(bitPattern: UInt32(truncatingIfNeeded: st[5])) : nil
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inline(__always) public func nextUInt64() -> UInt64 {
        let result = Generator.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Generator.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always) public func nextFloat() -> Float {
        Float(nextUInt64() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always) public func nextDouble() -> Double {
        Double(nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in `0..<n` (n > 0), without modulo bias.
    @inline(__always) public func nextInt(_ n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let threshold = (0 &- bound) % bound
        while true {
            let r = nextUInt64()
            if r >= threshold { return Int(r % bound) }
        }
    }

    /// Standard normal deviate (Box-Muller in double precision).
    @inline(__always) public func nextNormal() -> Float {
        if let s = spareNormal { spareNormal = nil; return s }
        var u1 = nextDouble()
        while u1 <= 1e-300 { u1 = nextDouble() }
        let u2 = nextDouble()
        let r = (-2.0 * log(u1)).squareRoot()
        let th = 2.0 * Double.pi * u2
        spareNormal = Float(r * sin(th))
        return Float(r * cos(th))
    }

    /// A random permutation of `0..<n` (Fisher-Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<Swift.max(n, 0))
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(i + 1)) } }
        return p
    }

    /// A child generator derived from this one's seed and `key` (for per-sample streams).
    public static func derived(seed: UInt64, _ keys: UInt64...) -> Generator {
        var h = seed ^ 0x5851_F42D_4C95_7F2D
        for k in keys { h = (h ^ k) &* 0x9E37_79B9_7F4A_7C15; h ^= h >> 29 }
        return Generator(seed: h)
    }
}
