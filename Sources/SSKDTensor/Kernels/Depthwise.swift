// Depthwise 2-D convolution (groups == Cin, channel multiplier M = O / C), direct SIMD kernels.
//
// Shapes:
//   x   [N, C, H, W]        input
//   w   [C*M, 1, KH, KW]    weight; output channel o reads input channel o / M
//   b   [C*M]               bias (optional)
//   y   [N, C*M, OH, OW]    output (same size formula as conv2d)
//   buf [SH*SW][HPH][PW]    one input plane, zero-padded (HP x WP = H+pt+pb x W+pl+pr) and split
//                           into SH x SW phases: padded pixel (R, Q) lives in phase
//                           (R % SH, Q % SW) at row R / SH, column Q / SW.
//
// With that layout every tap (i, j) of the window reads, for output (r, q), the element at
//   phase (i*DH % SH, j*DW % SW), row r + i*DH / SH, column q + j*DW / SW
// i.e. at flat offset tap[k] + r*PW + q. So on the "flat" output index f = r*PW + q (rows of PW
// columns, of which the first OW are real) a whole plane is ONE contiguous SIMD loop:
//   yflat[f] = b + sum_k w[k] * buf[tap[k] + f]          (f < OH*PW, then the OW columns are kept)
// at any stride and dilation, with no scalar tails. Used for the large maps (48x48, 24x24 at
// 96 px input) and channel multipliers M > 1.
//
// Backward (one task per input channel, looping over images: weight sums need no atomics):
//   dyflat[f] = dy[r, q] for q < OW, else 0 (so the spare columns contribute nothing)
//   dw[k]    += sum_f dyflat[f] * buf[tap[k] + f]                       (SIMD dot products)
//   dbuf[P][g] = sum_{k in phase P} w[k] * dyflat[g - inner[k]]           (a correlation, SIMD)
//   dx[r, c]  = dbuf at the padded pixel (r + pt, c + pl)                 (crop, de-phase)

#if canImport(Glibc)
import Glibc
#endif

/// Offsets and buffer sizes of the phase-split layout for one geometry. The per-row / per-column
/// destination tables keep integer division out of the copy loops.
final class DepthwisePlan {
    let hph, pw: Int            // rows and columns of one phase
    let phaseStride: Int        // floats per phase in `buf`
    let phases: Int             // SH * SW
    let span: Int               // flat outputs computed per plane: OH*PW rounded up to 8
    let bufSize: Int
    let k: Int                  // taps (KH * KW)
    let dxSpan: Int             // floats of one phase of the input gradient (rounded up to 8)
    let dyFront: Int            // zeros in front of dyflat (>= every inner offset)
    let dySize: Int
    /// One allocation: tap[k], inner[k], phaseOf[k], fillRow[H], fillCol[W], cropRow[H], cropCol[W].
    private let table: UnsafeMutablePointer<Int>
    var tap: UnsafeMutablePointer<Int> { table }                      // offset of tap k in `buf`
    var inner: UnsafeMutablePointer<Int> { table + k }                // offset of tap k inside its phase
    var phaseOf: UnsafeMutablePointer<Int> { table + 2 * k }          // phase of tap k
    var fillRow: UnsafeMutablePointer<Int> { table + 3 * k }          // input row r -> offset in `buf`
    var fillCol: UnsafeMutablePointer<Int> { table + 3 * k + h }      // input column q -> offset in `buf`
    var cropRow: UnsafeMutablePointer<Int> { table + 3 * k + h + w }  // same, in the gradient buffer
    var cropCol: UnsafeMutablePointer<Int> { table + 3 * k + 2 * h + w }
    private let h, w, ow, oh, pl: Int
    private let unitStride: Bool
    private let twoColumnPhases: Bool

    init(_ g: ConvGeometry) {
        let hp = g.h + g.pt + g.pb, wp = g.w + g.pl + g.pr
        hph = (hp + g.sh - 1) / g.sh
        pw = (wp + g.sw - 1) / g.sw
        phaseStride = hph * pw
        phases = g.sh * g.sw
        span = (g.oh * pw + 7) / 8 * 8
        bufSize = phases * phaseStride + span + 8
        k = g.kh * g.kw
        dxSpan = (phaseStride + 7) / 8 * 8
        (h, w, oh, ow, pl) = (g.h, g.w, g.oh, g.ow, g.pl)
        unitStride = g.sw == 1
        twoColumnPhases = g.sw == 2
        table = .allocate(capacity: 3 * k + 2 * (g.h + g.w))
        var maxInner = 0
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let t = i * g.kw + j, a = i * g.dh, b = j * g.dw
                let p = (a % g.sh) * g.sw + b % g.sw
                let off = (a / g.sh) * pw + b / g.sw
                table[t] = p * phaseStride + off; table[k + t] = off; table[2 * k + t] = p
                maxInner = Swift.max(maxInner, off)
            }
        }
        for r in 0..<g.h {
            let pr = r + g.pt
            table[3 * k + r] = (pr % g.sh) * g.sw * phaseStride + (pr / g.sh) * pw
            table[3 * k + g.h + g.w + r] = (pr % g.sh) * g.sw * dxSpan + (pr / g.sh) * pw
        }
        for q in 0..<g.w {
            let pc = q + g.pl
            table[3 * k + g.h + q] = (pc % g.sw) * phaseStride + pc / g.sw
            table[3 * k + 2 * g.h + g.w + q] = (pc % g.sw) * dxSpan + pc / g.sw
        }
        dyFront = (maxInner + 7) / 8 * 8
        dySize = dyFront + Swift.max(span, dxSpan) + 16
    }

    deinit { table.deallocate() }

    /// Zero-padded, phase-split copy of plane `x` [H, W] into `buf`.
    @inline(__always) func fill(_ buf: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>) {
        buf.update(repeating: 0, count: bufSize)
        let rows = fillRow, cols = fillCol
        for r in 0..<h {
            let dst = buf + rows[r], src = x + r * w
            if unitStride {
                copyFloats(dst + pl, src, w)
            } else if twoColumnPhases && w >= 16 {
                // Stride 2: 16 columns split into their even and odd halves (one shuffle each),
                // 8 consecutive columns of the two column phases; a ragged end redoes the row's
                // last 16 columns (same values on the overlap).
                forEachBlock(0..<w, width: 16) { q in
                    let v = load16(src + q)
                    store8(v.evenHalf, dst + cols[q]); store8(v.oddHalf, dst + cols[q + 1])
                }
            } else {
                for q in 0..<w { dst[cols[q]] = src[q] }
            }
        }
    }

    /// dyflat: rows of `dy` [OH, OW] at stride PW after `dyFront` zeros, zeros elsewhere.
    @inline(__always) func spread(_ dyf: UnsafeMutablePointer<Float>, from dy: UnsafePointer<Float>) {
        dyf.update(repeating: 0, count: dySize)
        for r in 0..<oh { copyFloats(dyf + dyFront + r * pw, dy + r * ow, ow) }
    }

    /// dx [H, W] = the interior of the phase-split gradient `dbuf` (phases of `dxSpan` floats).
    @inline(__always) func crop(_ dx: UnsafeMutablePointer<Float>, from dbuf: UnsafePointer<Float>) {
        let rows = cropRow, cols = cropCol
        for r in 0..<h {
            let src = dbuf + rows[r], dst = dx + r * w
            if unitStride {
                copyFloats(dst, src + pl, w)
            } else if twoColumnPhases && w >= 16 {
                // Stride 2: the inverse of `fill`'s split (8 columns of each column phase
                // interleaved), a ragged end redoing the row's last 16 columns.
                forEachBlock(0..<w, width: 16) { q in
                    let v = interleave(load8(src + cols[q]), load8(src + cols[q + 1]))
                    UnsafeMutableRawPointer(dst + q).storeBytes(of: v, as: SIMD16<Float>.self)
                }
            } else {
                for q in 0..<w { dst[q] = src[cols[q]] }
            }
        }
    }

    /// Copies the first OW floats of each PW-wide flat row into y [OH, OW].
    @inline(__always) func compact(_ y: UnsafeMutablePointer<Float>, from yf: UnsafePointer<Float>) {
        for r in 0..<oh { copyFloats(y + r * ow, yf + r * pw, ow) }
    }
}

/// (a0, b0, a1, b1, ...): three even/odd splits of (a, b) (each rotates the 4-bit lane index left
/// by one; three rotate it right by one, which is the interleave).
@inline(__always) func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
    var z = SIMD16(lowHalf: a, highHalf: b)
    for _ in 0..<3 { z = SIMD16(lowHalf: z.evenHalf, highHalf: z.oddHalf) }
    return z
}

/// A short copy without a library call (rows here are 3 to 100 floats).
@inline(__always) func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { store8(load8(src + i), dst + i); i += 8 }
    while i < n { dst[i] = src[i]; i += 1 }
}

/// yflat[f] = bias + sum_k w[k] * buf[tap[k] + f] for f < span (two SIMD8 vectors per step).
/// `k` is a literal at the 3x3 / 5x5 call sites so the tap loop unrolls.
@inline(__always)
func depthwiseFlatForward(_ yf: UnsafeMutablePointer<Float>, _ buf: UnsafePointer<Float>, _ wv: UnsafePointer<SIMD8<Float>>,
                          _ tap: UnsafePointer<Int>, k: Int, bias: Float, span: Int) {
    let b = SIMD8<Float>(repeating: bias)
    var f = 0
    // Four independent accumulators (32 outputs) per step hide the FMA latency.
    while f + 32 <= span {
        var a0 = b, a1 = b, a2 = b, a3 = b
        for t in 0..<k {
            let p = buf + tap[t] + f, wt = wv[t]
            a0 = a0.addingProduct(load8(p), wt); a1 = a1.addingProduct(load8(p + 8), wt)
            a2 = a2.addingProduct(load8(p + 16), wt); a3 = a3.addingProduct(load8(p + 24), wt)
        }
        store8(a0, yf + f); store8(a1, yf + f + 8); store8(a2, yf + f + 16); store8(a3, yf + f + 24)
        f += 32
    }
    while f < span {
        var a0 = b
        for t in 0..<k { a0 = a0.addingProduct(load8(buf + tap[t] + f), wv[t]) }
        store8(a0, yf + f)
        f += 8
    }
}

/// y = depthwise_conv2d(x, w) + b.
func depthwiseConv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    if g.o == g.c && isSmallPlaneDepthwise(g) && DepthwiseKernel.smallPlane {
        depthwiseSmallPlaneForward(out: out, input: input, weight: weight, bias: bias, g)
        return
    }
    if g.o == g.c && g.ohw <= channelBlockedMaxOutputs {
        depthwiseBlockedForward(out: out, input: input, weight: weight, bias: bias, g)
        return
    }
    let plan = DepthwisePlan(g)
    let m = g.o / g.c, planes = g.n * g.o, k = plan.k
    let tap = plan.tap
    do {
        parallelFor(planes, grain: threadRunGrain(count: planes, work: plan.span * k, runsPerThread: 4)) { range in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: plan.bufSize)
            let yf = UnsafeMutablePointer<Float>.allocate(capacity: plan.span)
            let wv = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            defer { buf.deallocate(); yf.deallocate(); wv.deallocate() }
            var filled = -1
            for p in range {
                let n = p / g.o, o = p % g.o, src = n * g.c + o / m
                // Consecutive output channels of one input channel (M > 1) reuse the padded plane.
                if src != filled { plan.fill(buf, from: input + src * g.hw); filled = src }
                for t in 0..<k { wv[t] = SIMD8(repeating: weight[o * k + t]) }
                let b = bias?[o] ?? 0
                switch k {
                case 9: depthwiseFlatForward(yf, buf, wv, tap, k: 9, bias: b, span: plan.span)
                case 25: depthwiseFlatForward(yf, buf, wv, tap, k: 25, bias: b, span: plan.span)
                default: depthwiseFlatForward(yf, buf, wv, tap, k: k, bias: b, span: plan.span)
                }
                plan.compact(out + p * g.ohw, from: yf)
            }
        }
    }
}

/// sum_f a[f] * b[f] over `span` floats (a multiple of 8), two SIMD accumulators.
@inline(__always) func dot8(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, span: Int) -> Float {
    var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
    var f = 0
    while f + 16 <= span {
        s0 = s0.addingProduct(load8(a + f), load8(b + f))
        s1 = s1.addingProduct(load8(a + f + 8), load8(b + f + 8))
        f += 16
    }
    if f < span { s0 = s0.addingProduct(load8(a + f), load8(b + f)) }
    return (s0 + s1).sum()
}

/// sums[t] += sum_{f < span} dy[f] * buf[tap[t] + f] for every tap t < k: the same sums as
/// `dot8` per tap, but four taps share each pass over dy (eight independent FMA chains and 1.25
/// loads per FMA instead of 2). Leftover taps go through `dot8`.
@inline(__always)
func dotTaps(_ sums: UnsafeMutablePointer<Double>, _ dy: UnsafePointer<Float>, _ buf: UnsafePointer<Float>,
             _ tap: UnsafePointer<Int>, k: Int, span: Int) {
    var t = 0
    while t + 4 <= k {
        let p0 = buf + tap[t], p1 = buf + tap[t + 1], p2 = buf + tap[t + 2], p3 = buf + tap[t + 3]
        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0
        var f = 0
        while f + 16 <= span {
            let d = load8(dy + f), e = load8(dy + f + 8)
            a0 = a0.addingProduct(d, load8(p0 + f)); b0 = b0.addingProduct(e, load8(p0 + f + 8))
            a1 = a1.addingProduct(d, load8(p1 + f)); b1 = b1.addingProduct(e, load8(p1 + f + 8))
            a2 = a2.addingProduct(d, load8(p2 + f)); b2 = b2.addingProduct(e, load8(p2 + f + 8))
            a3 = a3.addingProduct(d, load8(p3 + f)); b3 = b3.addingProduct(e, load8(p3 + f + 8))
            f += 16
        }
        if f < span {
            let d = load8(dy + f)
            a0 = a0.addingProduct(d, load8(p0 + f)); a1 = a1.addingProduct(d, load8(p1 + f))
            a2 = a2.addingProduct(d, load8(p2 + f)); a3 = a3.addingProduct(d, load8(p3 + f))
        }
        sums[t] += Double((a0 + b0).sum()); sums[t + 1] += Double((a1 + b1).sum())
        sums[t + 2] += Double((a2 + b2).sum()); sums[t + 3] += Double((a3 + b3).sum())
        t += 4
    }
    while t < k { sums[t] += Double(dot8(dy, buf + tap[t], span: span)); t += 1 }
}

/// dbuf[g] (+)= sum over the taps `ks` of w[k] * dyf[g - inner[k]] for g < dxSpan. Four output
/// vectors per step: four independent FMA chains (one chain was latency-bound at 4 cycles per tap).
@inline(__always)
func depthwisePhaseBackward(_ dbuf: UnsafeMutablePointer<Float>, _ dyf: UnsafePointer<Float>, _ wv: UnsafePointer<SIMD8<Float>>,
                            _ ks: UnsafePointer<Int>, _ shifts: UnsafePointer<Int>, count: Int, span: Int, accumulate: Bool) {
    var f = 0
    while f + 32 <= span {
        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
        if accumulate { a0 = load8(dbuf + f); a1 = load8(dbuf + f + 8); a2 = load8(dbuf + f + 16); a3 = load8(dbuf + f + 24) }
        for t in 0..<count {
            let src = dyf + f - shifts[t], wt = wv[ks[t]]
            a0 = a0.addingProduct(load8(src), wt); a1 = a1.addingProduct(load8(src + 8), wt)
            a2 = a2.addingProduct(load8(src + 16), wt); a3 = a3.addingProduct(load8(src + 24), wt)
        }
        store8(a0, dbuf + f); store8(a1, dbuf + f + 8); store8(a2, dbuf + f + 16); store8(a3, dbuf + f + 24)
        f += 32
    }
    while f < span {
        var a = accumulate ? load8(dbuf + f) : SIMD8<Float>()
        for t in 0..<count { a = a.addingProduct(load8(dyf + f - shifts[t]), wv[ks[t]]) }
        store8(a, dbuf + f)
        f += 8
    }
}

/// Gradients of `depthwiseConv2dForward`; each non-nil destination is overwritten.
func depthwiseConv2dBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                             dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry) {
    if let dbias { channelSums(dbias, dout, n: g.n, c: g.o, hw: g.ohw) }
    guard dinput != nil || dweight != nil else { return }
    if g.o == g.c && g.ohw <= channelBlockedMaxOutputs {
        depthwiseBlockedBackward(dinput: dinput, dweight: dweight, dout: dout, input: input, weight: weight, g)
        return
    }
    let plan = DepthwisePlan(g)
    let m = g.o / g.c, k = plan.k
    // Taps grouped by phase for the input gradient: ks = tap indices, shifts = inner offsets.
    var ks: [Int] = [], shifts: [Int] = [], starts: [Int] = []
    for p in 0..<plan.phases {
        starts.append(ks.count)
        for t in 0..<k where plan.phaseOf[t] == p { ks.append(t); shifts.append(plan.inner[t]) }
    }
    starts.append(ks.count)
    let tap = plan.tap
    ks.withUnsafeBufferPointer { ksBuf in
    shifts.withUnsafeBufferPointer { shiftBuf in
        let ksp = ksBuf.baseAddress!, shp = shiftBuf.baseAddress!
        // Tasks own input channels: dw rows c*M..<(c+1)*M and the dx planes of channel c. Inside a
        // task planes go image-major (memory order; the next plane is usually adjacent), while each
        // channel's dw still sums its images in order (results independent of the chunking).
        parallelFor(g.c, grain: 1) { chans in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: plan.bufSize)
            let dyf = UnsafeMutablePointer<Float>.allocate(capacity: plan.dySize)
            let dbuf = UnsafeMutablePointer<Float>.allocate(capacity: plan.phases * plan.dxSpan)
            let wv = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            let totals = UnsafeMutablePointer<Double>.allocate(capacity: chans.count * k * m)
            defer { buf.deallocate(); dyf.deallocate(); dbuf.deallocate(); wv.deallocate(); totals.deallocate() }
            totals.update(repeating: 0, count: chans.count * k * m)
            for n in 0..<g.n {
                for c in chans {
                    let total = totals + (c - chans.lowerBound) * k * m
                    if dweight != nil { plan.fill(buf, from: input + (n * g.c + c) * g.hw) }
                    for mi in 0..<m {
                        let o = c * m + mi
                        plan.spread(dyf, from: dout + (n * g.o + o) * g.ohw)
                        let dy = UnsafePointer(dyf + plan.dyFront)
                        if dweight != nil {
                            dotTaps(total + mi * k, dy, buf, tap, k: k, span: plan.span)
                        }
                        if dinput != nil {
                            for t in 0..<k { wv[t] = SIMD8(repeating: weight[o * k + t]) }
                            for p in 0..<plan.phases {
                                let s = starts[p], cnt = starts[p + 1] - s
                                depthwisePhaseBackward(dbuf + p * plan.dxSpan, dy, wv, ksp + s, shp + s, count: cnt,
                                                       span: plan.dxSpan, accumulate: mi > 0)
                            }
                        }
                    }
                    if let dinput { plan.crop(dinput + (n * g.c + c) * g.hw, from: dbuf) }
                }
            }
            if let dweight {
                for c in chans {
                    let total = totals + (c - chans.lowerBound) * k * m
                    for e in 0..<(k * m) { dweight[c * m * k + e] = Float(total[e]) }
                }
            }
        }
    }
    }
}

// MARK: - Small maps: eight channels per SIMD vector
//
// On the later stages' maps (12x12, 6x6, 3x3 at 96 px input) a plane has too few outputs for the
// per-plane bookkeeping above, so there the kernels vectorise across channels instead:
//   tile  [HP*WP][8]  one zero-padded image of 8 channels, channels last
//   w8    [K][8]      the 8 channels' weights of each tap
//   y[c][r, q] = b[c] + sum_k tile[(r*SH + i*DH) * WP + q*SW + j*DW][c] * w8[k][c]
// Backward keeps dw in 8-lane accumulators and adds w8[k] * dy into a padded gradient tile.
// Used for M == 1 (plain depthwise) when OH*OW <= `channelBlockedMaxOutputs` (chosen by
// `sskd bench ops`: 12x12 stride-1 maps are faster here, 24x24 maps in the phase-split kernels).
// Planes move between layouts with 8x8 register transposes. A task's 8 planes are contiguous
// (8*HW floats), so they are first copied linearly into an L1 stage and transposed from there
// (and outputs go back the same way): eight interleaved 36- to 576-byte streams defeat the
// prefetchers, one linear stream does not. Weights are packed into [C/8][K] vectors once per call.
// With unit column stride, outputs go four (or three) per row through a sliding window.
// Planes no larger than the kernel (3x3 maps) skip the tile in the forward: each output sums over
// the input pixels with the tap each one falls on (`blockedForwardSmallPlane`).

let channelBlockedMaxOutputs = 144

/// Padded tile geometry of the channel-blocked kernels.
struct ChannelTile {
    let hp, wp: Int
    init(_ g: ConvGeometry) { hp = g.h + g.pt + g.pb; wp = g.w + g.pl + g.pr }
    var pixels: Int { hp * wp }

    /// Tile pixel of each input pixel r*W + q.
    func interiorMap(_ g: ConvGeometry) -> [Int] {
        var m: [Int] = []
        for r in 0..<g.h { for q in 0..<g.w { m.append((r + g.pt) * wp + q + g.pl) } }
        return m
    }
}

/// Transposes the 8x8 block held in `m[0..<8]` (m[i][j] -> m[j][i]) in place: three rounds of
/// "evens then odds" over the 64 values rotate the 6-bit index by 3 bits, i.e. swap row and column.
@inline(__always) func transpose8x8(_ m: UnsafeMutablePointer<SIMD8<Float>>) {
    var a0 = m[0], a1 = m[1], a2 = m[2], a3 = m[3], a4 = m[4], a5 = m[5], a6 = m[6], a7 = m[7]
    for _ in 0..<3 {
        let p0 = SIMD16(lowHalf: a0, highHalf: a1), p1 = SIMD16(lowHalf: a2, highHalf: a3)
        let p2 = SIMD16(lowHalf: a4, highHalf: a5), p3 = SIMD16(lowHalf: a6, highHalf: a7)
        (a0, a1, a2, a3) = (p0.evenHalf, p1.evenHalf, p2.evenHalf, p3.evenHalf)
        (a4, a5, a6, a7) = (p0.oddHalf, p1.oddHalf, p2.oddHalf, p3.oddHalf)
    }
    m[0] = a0; m[1] = a1; m[2] = a2; m[3] = a3; m[4] = a4; m[5] = a5; m[6] = a6; m[7] = a7
}

/// Channels-last `dst[map(o)]` (8 lanes) <- planes `src + c*stride` (c < cnt) at pixels o < count.
/// `map` nil means identity. 8 pixels at a time through an 8x8 transpose; a ragged tail re-does
/// the last 8 pixels (rewriting some with the same values), so only counts < 8 go lane by lane.
@inline(__always) func gatherChannels(_ dst: UnsafeMutablePointer<SIMD8<Float>>, map: UnsafePointer<Int>?, _ src: UnsafePointer<Float>,
                                      stride: Int, cnt: Int, count: Int, scratch m: UnsafeMutablePointer<SIMD8<Float>>) {
    if count < 8 {
        let dl = lanes(dst)
        for o in 0..<count {
            let at = (map?[o] ?? o) &* 8
            for c in 0..<8 { dl[at &+ c] = c < cnt ? src[c &* stride &+ o] : 0 }
        }
        return
    }
    forEachBlock(0..<count, width: 8) { o in
        if cnt == 8 {
            for c in 0..<8 { m[c] = load8(src + (c &* stride &+ o)) }
        } else {
            for c in 0..<8 { m[c] = c < cnt ? load8(src + (c &* stride &+ o)) : SIMD8() }
        }
        transpose8x8(m)
        if let map { for j in 0..<8 { dst[map[o &+ j]] = m[j] } } else { for j in 0..<8 { dst[o &+ j] = m[j] } }
    }
}

/// Planes `dst + c*stride` (c < cnt) at pixels o < count <- channels-last `src[map(o)]`
/// (tails as in `gatherChannels`).
@inline(__always) func scatterChannels(_ dst: UnsafeMutablePointer<Float>, stride: Int, cnt: Int, count: Int,
                                       _ src: UnsafeMutablePointer<SIMD8<Float>>, map: UnsafePointer<Int>?,
                                       scratch m: UnsafeMutablePointer<SIMD8<Float>>) {
    if count < 8 {
        let sl = lanes(src)
        for o in 0..<count {
            let at = (map?[o] ?? o) &* 8
            for c in 0..<cnt { dst[c &* stride &+ o] = sl[at &+ c] }
        }
        return
    }
    forEachBlock(0..<count, width: 8) { o in
        if let map { for j in 0..<8 { m[j] = src[map[o &+ j]] } } else { for j in 0..<8 { m[j] = src[o &+ j] } }
        transpose8x8(m)
        for c in 0..<cnt { store8(m[c], dst + (c &* stride &+ o)) }
    }
}

/// Weights `w` [C, K] (or a bias [C] with k = 1) regrouped as [ceil(C/8)][K] vectors of 8
/// channels (zero lanes past C), once per call; with `zeroTap`, [ceil(C/8)][K + 1], each block's
/// K taps followed by a zero vector. Caller deallocates.
func packChannelBlocks(_ w: UnsafePointer<Float>, c: Int, k: Int, zeroTap: Bool = false) -> UnsafeMutablePointer<SIMD8<Float>> {
    let blocks = (c + 7) / 8, stride = zeroTap ? k + 1 : k
    let packed = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: blocks * stride)
    let scratch = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 8)
    defer { scratch.deallocate() }
    for cb in 0..<blocks {
        gatherChannels(packed + cb * stride, map: nil, w + cb * 8 * k, stride: k, cnt: Swift.min(8, c - cb * 8), count: k, scratch: scratch)
        if zeroTap { packed[cb * stride + k] = SIMD8() }
    }
    return packed
}

/// The floats of a channels-last SIMD8 buffer (pixel p, channel c at p*8 + c).
@inline(__always) func lanes(_ p: UnsafeMutablePointer<SIMD8<Float>>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
}

/// Tap offsets (in tile pixels) of the window's top-left output.
@inline(__always) func tileTaps(_ g: ConvGeometry, wp: Int) -> [Int] {
    var taps: [Int] = []
    for i in 0..<g.kh { for j in 0..<g.kw { taps.append(i * g.dh * wp + j * g.dw) } }
    return taps
}

/// otile[o] = bias + sum_k tile[pix[o] + tap[k]] * w8[k] (8 channels per vector), where pix[o] is
/// the tile offset of output o's window. Four outputs at a time: four independent FMA chains.
@inline(__always)
func blockedForwardPixels(_ otile: UnsafeMutablePointer<SIMD8<Float>>, _ tile: UnsafePointer<SIMD8<Float>>, _ w8: UnsafePointer<SIMD8<Float>>,
                          _ tap: UnsafePointer<Int>, _ pix: UnsafePointer<Int>, k: Int, bias: SIMD8<Float>, count: Int) {
    var o = 0
    while o + 4 <= count {
        let b0 = tile + pix[o], b1 = tile + pix[o + 1], b2 = tile + pix[o + 2], b3 = tile + pix[o + 3]
        var a0 = bias, a1 = bias, a2 = bias, a3 = bias
        for t in 0..<k {
            let d = tap[t], wt = w8[t]
            a0 = a0.addingProduct(b0[d], wt); a1 = a1.addingProduct(b1[d], wt)
            a2 = a2.addingProduct(b2[d], wt); a3 = a3.addingProduct(b3[d], wt)
        }
        otile[o] = a0; otile[o + 1] = a1; otile[o + 2] = a2; otile[o + 3] = a3
        o += 4
    }
    while o < count {
        let b0 = tile + pix[o]
        var a0 = bias, a1 = SIMD8<Float>()
        var t = 0
        while t + 2 <= k { a0 = a0.addingProduct(b0[tap[t]], w8[t]); a1 = a1.addingProduct(b0[tap[t + 1]], w8[t + 1]); t += 2 }
        if t < k { a0 = a0.addingProduct(b0[tap[t]], w8[t]) }
        otile[o] = a0 + a1
        o += 1
    }
}

/// Unit column stride and dilation: outputs q ..< q+B of one row (B = 4 or 3, one accumulator
/// each) from a sliding window. `tile` points at output q's window corner, kernel row i lies at
/// tile + i*rowStep; the B+KW-1 pixels of a kernel row are loaded once and shared by the B outputs
/// (LLVM merges the repeated loads once the literal KW loop unrolls), so a k5 row costs 8 loads and
/// 5 weight loads for 20 FMAs instead of 25 loads. Taps are summed in the same order as
/// `blockedForwardPixels`.
@inline(__always)
func blockedForwardRow4(_ o: UnsafeMutablePointer<SIMD8<Float>>, _ tile: UnsafePointer<SIMD8<Float>>, _ w8: UnsafePointer<SIMD8<Float>>,
                        kh: Int, kw: Int, rowStep: Int, bias: SIMD8<Float>) {
    var a0 = bias, a1 = bias, a2 = bias, a3 = bias
    for i in 0..<kh {
        let p = tile + i * rowStep, wr = w8 + i * kw
        for j in 0..<kw {
            let wj = wr[j]
            a0 = a0.addingProduct(p[j], wj); a1 = a1.addingProduct(p[j + 1], wj)
            a2 = a2.addingProduct(p[j + 2], wj); a3 = a3.addingProduct(p[j + 3], wj)
        }
    }
    o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3
}

@inline(__always)
func blockedForwardRow3(_ o: UnsafeMutablePointer<SIMD8<Float>>, _ tile: UnsafePointer<SIMD8<Float>>, _ w8: UnsafePointer<SIMD8<Float>>,
                        kh: Int, kw: Int, rowStep: Int, bias: SIMD8<Float>) {
    var a0 = bias, a1 = bias, a2 = bias
    for i in 0..<kh {
        let p = tile + i * rowStep, wr = w8 + i * kw
        for j in 0..<kw {
            let wj = wr[j]
            a0 = a0.addingProduct(p[j], wj); a1 = a1.addingProduct(p[j + 1], wj); a2 = a2.addingProduct(p[j + 2], wj)
        }
    }
    o[0] = a0; o[1] = a1; o[2] = a2
}

/// Two output rows of four (or three) outputs: the `blockedForwardRow4` of rows r and r + 1 at once,
/// eight (six) independent FMA chains instead of four, each weight loaded once for eight FMAs.
/// Row r + 1 reads the tile `rowNext` further on. Each output sums its taps in the same order.
@inline(__always)
func blockedForwardRows2x4(_ o: UnsafeMutablePointer<SIMD8<Float>>, outNext: Int, _ tile: UnsafePointer<SIMD8<Float>>,
                           _ w8: UnsafePointer<SIMD8<Float>>, kh: Int, kw: Int, rowStep: Int, rowNext: Int, bias: SIMD8<Float>) {
    var a0 = bias, a1 = bias, a2 = bias, a3 = bias
    var b0 = bias, b1 = bias, b2 = bias, b3 = bias
    for i in 0..<kh {
        let p = tile + i * rowStep, p2 = p + rowNext, wr = w8 + i * kw
        for j in 0..<kw {
            let wj = wr[j]
            a0 = a0.addingProduct(p[j], wj); a1 = a1.addingProduct(p[j + 1], wj)
            a2 = a2.addingProduct(p[j + 2], wj); a3 = a3.addingProduct(p[j + 3], wj)
            b0 = b0.addingProduct(p2[j], wj); b1 = b1.addingProduct(p2[j + 1], wj)
            b2 = b2.addingProduct(p2[j + 2], wj); b3 = b3.addingProduct(p2[j + 3], wj)
        }
    }
    o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3
    o[outNext] = b0; o[outNext + 1] = b1; o[outNext + 2] = b2; o[outNext + 3] = b3
}

@inline(__always)
func blockedForwardRows2x3(_ o: UnsafeMutablePointer<SIMD8<Float>>, outNext: Int, _ tile: UnsafePointer<SIMD8<Float>>,
                           _ w8: UnsafePointer<SIMD8<Float>>, kh: Int, kw: Int, rowStep: Int, rowNext: Int, bias: SIMD8<Float>) {
    var a0 = bias, a1 = bias, a2 = bias
    var b0 = bias, b1 = bias, b2 = bias
    for i in 0..<kh {
        let p = tile + i * rowStep, p2 = p + rowNext, wr = w8 + i * kw
        for j in 0..<kw {
            let wj = wr[j]
            a0 = a0.addingProduct(p[j], wj); a1 = a1.addingProduct(p[j + 1], wj); a2 = a2.addingProduct(p[j + 2], wj)
            b0 = b0.addingProduct(p2[j], wj); b1 = b1.addingProduct(p2[j + 1], wj); b2 = b2.addingProduct(p2[j + 2], wj)
        }
    }
    o[0] = a0; o[1] = a1; o[2] = a2
    o[outNext] = b0; o[outNext + 1] = b1; o[outNext + 2] = b2
}

/// All outputs of one 8-channel tile: pairs of output rows with `blockedForwardRows2x4` / `2x3`
/// (an odd last row with `blockedForwardRow4` / `Row3`), blocks of 4 columns (or of 3 when OW is a
/// multiple of 3 but not of 4, e.g. 6), a ragged end redone as the row's last 4 (same values on
/// the overlap). Needs SW == DW == 1 and OW >= 3.
@inline(__always)
func blockedForwardSliding(_ otile: UnsafeMutablePointer<SIMD8<Float>>, _ tile: UnsafePointer<SIMD8<Float>>, _ w8: UnsafePointer<SIMD8<Float>>,
                           kh: Int, kw: Int, bias: SIMD8<Float>, _ g: ConvGeometry, wp: Int) {
    let threes = g.ow % 4 != 0 && g.ow % 3 == 0
    let rowStep = g.dh * wp, rowNext = g.sh * wp
    let width = threes ? 3 : 4
    var r = 0
    while r < g.oh {
        let pair = r + 1 < g.oh
        let trow = tile + r * g.sh * wp, orow = otile + r * g.ow
        forEachBlock(0..<g.ow, width: width) { c in
            switch (threes, pair) {
            case (true, true): blockedForwardRows2x3(orow + c, outNext: g.ow, trow + c, w8, kh: kh, kw: kw, rowStep: rowStep, rowNext: rowNext, bias: bias)
            case (true, false): blockedForwardRow3(orow + c, trow + c, w8, kh: kh, kw: kw, rowStep: rowStep, bias: bias)
            case (false, true): blockedForwardRows2x4(orow + c, outNext: g.ow, trow + c, w8, kh: kh, kw: kw, rowStep: rowStep, rowNext: rowNext, bias: bias)
            case (false, false): blockedForwardRow4(orow + c, trow + c, w8, kh: kh, kw: kw, rowStep: rowStep, bias: bias)
            }
        }
        r += pair ? 2 : 1
    }
}

/// dw[k] += sum over outputs (r, q) of gy(r, q) * tile[r*SH*WP + q*SW + tap[k]], where gy(r, q) is
/// G[front + r*SH*WP + q*SW] (the output gradient spread onto the tile grid).
@inline(__always)
func blockedWeightGrad(_ dw: UnsafeMutablePointer<SIMD8<Float>>, _ gsp: UnsafePointer<SIMD8<Float>>, _ tile: UnsafePointer<SIMD8<Float>>,
                       _ tap: UnsafePointer<Int>, k: Int, _ g: ConvGeometry, wp: Int) {
    let sw = g.sw
    for t in 0..<k {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        for r in 0..<g.oh {
            let grow = gsp + r * g.sh * wp, xrow = tile + r * g.sh * wp + tap[t]
            var q = 0
            while q + 4 <= g.ow {
                let o = q * sw
                a0 = a0.addingProduct(grow[o], xrow[o]); a1 = a1.addingProduct(grow[o + sw], xrow[o + sw])
                a2 = a2.addingProduct(grow[o + 2 * sw], xrow[o + 2 * sw]); a3 = a3.addingProduct(grow[o + 3 * sw], xrow[o + 3 * sw])
                q += 4
            }
            while q < g.ow { a0 = a0.addingProduct(grow[q * sw], xrow[q * sw]); q += 1 }
        }
        dw[t] += (a0 + a1) + (a2 + a3)
    }
}

/// dxl[i] = sum_k w8[k] * G[P_i - tap[k]] for input pixel i at interior tile pixel P_i = inMap[i]:
/// the input gradient as a correlation over the spread output gradient (no scattered updates).
/// `gsp` points at G's origin (after its front padding). Four pixels at a time.
@inline(__always)
func blockedInputGrad(_ dxl: UnsafeMutablePointer<SIMD8<Float>>, _ gsp: UnsafePointer<SIMD8<Float>>, _ w8: UnsafePointer<SIMD8<Float>>,
                      _ tap: UnsafePointer<Int>, _ inMap: UnsafePointer<Int>, k: Int, count: Int) {
    var i = 0
    while i + 4 <= count {
        let b0 = gsp + inMap[i], b1 = gsp + inMap[i + 1], b2 = gsp + inMap[i + 2], b3 = gsp + inMap[i + 3]
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        for t in 0..<k {
            let d = -tap[t], wt = w8[t]
            a0 = a0.addingProduct(b0[d], wt); a1 = a1.addingProduct(b1[d], wt)
            a2 = a2.addingProduct(b2[d], wt); a3 = a3.addingProduct(b3[d], wt)
        }
        dxl[i] = a0; dxl[i + 1] = a1; dxl[i + 2] = a2; dxl[i + 3] = a3
        i += 4
    }
    while i < count {
        let b0 = gsp + inMap[i]
        var a0 = SIMD8<Float>()
        for t in 0..<k { a0 = a0.addingProduct(b0[-tap[t]], w8[t]) }
        dxl[i] = a0
        i += 1
    }
}

/// Kernel switches of the depthwise forward, to compare paths (tests, `sskd bench ops`).
enum DepthwiseKernel {
    /// `blockedForwardSmallPlane` where it applies (default), or the K-tap channel-blocked kernels
    /// (`SSKD_DEPTHWISE_SMALL=0`).
    nonisolated(unsafe) static var smallPlane: Bool = getenv("SSKD_DEPTHWISE_SMALL").map { String(cString: $0) != "0" } ?? true
}

/// Planes no larger than the kernel (3x3 maps at the end of EfficientNet-B0 at 96x96, under 3x3
/// and 5x5 kernels): an output's window holds every input pixel, while most of its K taps may fall
/// on padding. So each output sums over the HW input pixels instead, with the tap each one falls
/// on: otile[o] = bias + sum_i xs[i] * w8z[tapOf[i][o]], where tapOf is K (a zero vector after the
/// K taps) for pixels outside o's window. A 3x3 map takes 81 FMAs per 8 channels instead of 225
/// under a 5x5 kernel (as many under a 3x3 one, without the padded tile). The nine accumulators
/// stay in registers and each input vector is loaded once for all of them; all nine are stored
/// (otile has 9 slots), those past OHW computed against zero weights. Each output sums its taps
/// in increasing order, as `blockedForwardSliding` does (the skipped ones would add 0 * w).
/// Measured on 32x1152x3x3 forwards, against the tap kernels: 5x5 1.5x / 1.8x faster at 1 / 2
/// threads, 3x3 1.0-1.3x / 1.6x.
@inline(__always)
func blockedForwardSmallPlane(_ otile: UnsafeMutablePointer<SIMD8<Float>>, _ xs: UnsafePointer<SIMD8<Float>>,
                              _ w8z: UnsafePointer<SIMD8<Float>>, tapOf: UnsafePointer<Int>, hw: Int, bias: SIMD8<Float>) {
    var a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias, a8 = bias
    for i in 0..<hw {
        let x = xs[i], t = tapOf + 9 * i
        a0 = a0.addingProduct(x, w8z[t[0]]); a1 = a1.addingProduct(x, w8z[t[1]]); a2 = a2.addingProduct(x, w8z[t[2]])
        a3 = a3.addingProduct(x, w8z[t[3]]); a4 = a4.addingProduct(x, w8z[t[4]]); a5 = a5.addingProduct(x, w8z[t[5]])
        a6 = a6.addingProduct(x, w8z[t[6]]); a7 = a7.addingProduct(x, w8z[t[7]]); a8 = a8.addingProduct(x, w8z[t[8]])
    }
    otile[0] = a0; otile[1] = a1; otile[2] = a2; otile[3] = a3; otile[4] = a4
    otile[5] = a5; otile[6] = a6; otile[7] = a7; otile[8] = a8
}

/// Whether `blockedForwardSmallPlane` serves this convolution: at most 9 outputs per plane, and
/// no more input pixels than taps (else the K-tap kernels do less work).
@inline(__always) func isSmallPlaneDepthwise(_ g: ConvGeometry) -> Bool { g.ohw <= 9 && g.hw <= g.kh * g.kw }

/// tapOf[i][o] (i < HW, o < 9) for `blockedForwardSmallPlane`: the tap of output o that reads input
/// pixel i, or K where none does (and for o >= OHW).
func smallPlaneTaps(_ g: ConvGeometry) -> [Int] {
    let k = g.kh * g.kw
    var tapOf = [Int](repeating: k, count: 9 * g.hw)
    for r in 0..<g.oh {
        for q in 0..<g.ow {
            for i in 0..<g.kh {
                let ih = r * g.sh + i * g.dh - g.pt
                guard ih >= 0 && ih < g.h else { continue }
                for j in 0..<g.kw {
                    let iw = q * g.sw + j * g.dw - g.pl
                    guard iw >= 0 && iw < g.w else { continue }
                    tapOf[9 * (ih * g.w + iw) + r * g.ow + q] = i * g.kw + j
                }
            }
        }
    }
    return tapOf
}

/// The forward of the convolutions `isSmallPlaneDepthwise` accepts: eight channels of one image
/// per task, like `depthwiseBlockedForward`, but without a padded tile. Planes this small are
/// gathered from and scattered to the tensors directly (no linear stage).
func depthwiseSmallPlaneForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    let k = g.kh * g.kw, blocks = (g.c + 7) / 8
    let tapOf = smallPlaneTaps(g)
    // Weights as [C/8][K + 1] vectors: each block's K taps, then the zero vector tapOf points at.
    let w8z = packChannelBlocks(weight, c: g.c, k: k, zeroTap: true)
    let b8all = bias.map { packChannelBlocks($0, c: g.c, k: 1) }
    defer { w8z.deallocate(); b8all?.deallocate() }
    tapOf.withUnsafeBufferPointer { tb in
        let taps = tb.baseAddress!
        parallelFor(g.n * blocks, grain: threadRunGrain(count: g.n * blocks, work: 8 * 9 * g.hw, runsPerThread: 4)) { range in
            let xs = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: g.hw)
            let otile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 9)
            let scratch = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 8)
            defer { xs.deallocate(); otile.deallocate(); scratch.deallocate() }
            for task in range {
                let n = task / blocks, cb = task % blocks
                let c0 = cb * 8, cnt = Swift.min(8, g.c - c0)
                gatherChannels(xs, map: nil, input + (n * g.c + c0) * g.hw, stride: g.hw, cnt: cnt, count: g.hw, scratch: scratch)
                blockedForwardSmallPlane(otile, xs, w8z + cb * (k + 1), tapOf: taps, hw: g.hw, bias: b8all?[cb] ?? SIMD8())
                scatterChannels(out + (n * g.c + c0) * g.ohw, stride: g.ohw, cnt: cnt, count: g.ohw, otile, map: nil, scratch: scratch)
            }
        }
    }
}

func depthwiseBlockedForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                             bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    let tileGeo = ChannelTile(g), k = g.kh * g.kw, blocks = (g.c + 7) / 8
    let taps = tileTaps(g, wp: tileGeo.wp), interior = tileGeo.interiorMap(g)
    var windows: [Int] = []
    for r in 0..<g.oh { for q in 0..<g.ow { windows.append(r * g.sh * tileGeo.wp + q * g.sw) } }
    // Unit column stride and dilation: sliding-window rows share their pixel loads.
    let sliding = g.sw == 1 && g.dw == 1 && g.ow >= 3
    // Weights and bias in 8-channel vectors, packed once (not per image).
    let w8all = packChannelBlocks(weight, c: g.c, k: k), b8all = bias.map { packChannelBlocks($0, c: g.c, k: 1) }
    defer { w8all.deallocate(); b8all?.deallocate() }
    taps.withUnsafeBufferPointer { tb in
    interior.withUnsafeBufferPointer { ib in
    windows.withUnsafeBufferPointer { wb in
        let tap = tb.baseAddress!, inMap = ib.baseAddress!, pix = wb.baseAddress!
        parallelFor(g.n * blocks, grain: threadRunGrain(count: g.n * blocks, work: 8 * g.ohw * k, runsPerThread: 4)) { range in
            let tile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tileGeo.pixels)
            let otile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: g.ohw)
            let scratch = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 8)
            let stage = UnsafeMutablePointer<Float>.allocate(capacity: 8 * Swift.max(g.hw, g.ohw))
            defer { tile.deallocate(); otile.deallocate(); scratch.deallocate(); stage.deallocate() }
            // The padding of the tile is never written, so it stays zero.
            tile.update(repeating: SIMD8(), count: tileGeo.pixels)
            for task in range {
                let n = task / blocks, cb = task % blocks
                let c0 = cb * 8, cnt = Swift.min(8, g.c - c0)
                let w8 = UnsafePointer(w8all + cb * k), b8 = b8all?[cb] ?? SIMD8()
                copyFloats(stage, input + (n * g.c + c0) * g.hw, cnt * g.hw)
                gatherChannels(tile, map: inMap, stage, stride: g.hw, cnt: cnt, count: g.hw, scratch: scratch)
                let y = out + (n * g.c + c0) * g.ohw
                switch (g.kh, g.kw) {
                case (3, 3) where sliding: blockedForwardSliding(otile, tile, w8, kh: 3, kw: 3, bias: b8, g, wp: tileGeo.wp)
                case (5, 5) where sliding: blockedForwardSliding(otile, tile, w8, kh: 5, kw: 5, bias: b8, g, wp: tileGeo.wp)
                case (3, 3): blockedForwardPixels(otile, tile, w8, tap, pix, k: 9, bias: b8, count: g.ohw)
                case (5, 5): blockedForwardPixels(otile, tile, w8, tap, pix, k: 25, bias: b8, count: g.ohw)
                default: blockedForwardPixels(otile, tile, w8, tap, pix, k: k, bias: b8, count: g.ohw)
                }
                scatterChannels(stage, stride: g.ohw, cnt: cnt, count: g.ohw, otile, map: nil, scratch: scratch)
                copyFloats(y, stage, cnt * g.ohw)
            }
        }
    }
    }
    }
}

func depthwiseBlockedBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry) {
    let tileGeo = ChannelTile(g), k = g.kh * g.kw, blocks = (g.c + 7) / 8
    let taps = tileTaps(g, wp: tileGeo.wp), interior = tileGeo.interiorMap(g)
    let front = taps.max() ?? 0
    // Where output (r, q) sits in the spread gradient G: front + r*SH*WP + q*SW.
    var outputs: [Int] = []
    for r in 0..<g.oh { for q in 0..<g.ow { outputs.append(front + r * g.sh * tileGeo.wp + q * g.sw) } }
    // Weight-gradient partial sums per image ([N][blocks][K] vectors), reduced over images in order
    // afterwards: tasks can then run image-major (sequential memory) and the sums do not depend on
    // the thread count.
    let partial: UnsafeMutablePointer<SIMD8<Float>>? = dweight == nil ? nil : .allocate(capacity: g.n * blocks * k)
    let w8all = dinput == nil ? nil : packChannelBlocks(weight, c: g.c, k: k)
    defer { partial?.deallocate(); w8all?.deallocate() }
    taps.withUnsafeBufferPointer { tb in
    interior.withUnsafeBufferPointer { ib in
    outputs.withUnsafeBufferPointer { ob in
        let tap = tb.baseAddress!, inMap = ib.baseAddress!, outMap = ob.baseAddress!
        parallelFor(g.n * blocks, grain: threadRunGrain(count: g.n * blocks, work: 16 * g.ohw * k, runsPerThread: 4)) { range in
            let tile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tileGeo.pixels)
            let gsp = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: front + tileGeo.pixels)
            let dxl = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: g.hw)
            let scratch = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 8)
            let stage = UnsafeMutablePointer<Float>.allocate(capacity: 8 * Swift.max(g.hw, g.ohw))
            defer { tile.deallocate(); gsp.deallocate(); dxl.deallocate(); scratch.deallocate(); stage.deallocate() }
            // Padding of the tile and the off-grid cells of G are never written: they stay zero.
            tile.update(repeating: SIMD8(), count: tileGeo.pixels)
            gsp.update(repeating: SIMD8(), count: front + tileGeo.pixels)
            for task in range {
                let n = task / blocks, cb = task % blocks
                let c0 = cb * 8, cnt = Swift.min(8, g.c - c0)
                copyFloats(stage, dout + (n * g.c + c0) * g.ohw, cnt * g.ohw)
                gatherChannels(gsp, map: outMap, stage, stride: g.ohw, cnt: cnt, count: g.ohw, scratch: scratch)
                if let partial {
                    let dw8 = partial + task * k
                    dw8.update(repeating: SIMD8(), count: k)
                    copyFloats(stage, input + (n * g.c + c0) * g.hw, cnt * g.hw)
                    gatherChannels(tile, map: inMap, stage, stride: g.hw, cnt: cnt, count: g.hw, scratch: scratch)
                    switch k {
                    case 9: blockedWeightGrad(dw8, gsp + front, tile, tap, k: 9, g, wp: tileGeo.wp)
                    case 25: blockedWeightGrad(dw8, gsp + front, tile, tap, k: 25, g, wp: tileGeo.wp)
                    default: blockedWeightGrad(dw8, gsp + front, tile, tap, k: k, g, wp: tileGeo.wp)
                    }
                }
                if let dinput, let w8all {
                    let w8 = UnsafePointer(w8all + cb * k)
                    switch k {
                    case 9: blockedInputGrad(dxl, gsp + front, w8, tap, inMap, k: 9, count: g.hw)
                    case 25: blockedInputGrad(dxl, gsp + front, w8, tap, inMap, k: 25, count: g.hw)
                    default: blockedInputGrad(dxl, gsp + front, w8, tap, inMap, k: k, count: g.hw)
                    }
                    scatterChannels(stage, stride: g.hw, cnt: cnt, count: g.hw, dxl, map: nil, scratch: scratch)
                    copyFloats(dinput + (n * g.c + c0) * g.hw, stage, cnt * g.hw)
                }
            }
        }
    }
    }
    }
    if let dweight, let partial {
        let stride = blocks * k
        parallelFor(blocks * k, grain: grainFor(work: 8 * g.n)) { range in
            for e in range {
                var acc = SIMD8<Float>()
                for n in 0..<g.n { acc += partial[n * stride + e] }
                let cb = e / k, t = e % k
                for c in 0..<Swift.min(8, g.c - cb * 8) { dweight[(cb * 8 + c) * k + t] = acc[c] }
            }
        }
    }
}
