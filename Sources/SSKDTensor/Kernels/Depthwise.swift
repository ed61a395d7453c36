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
// at any stride and dilation, and small maps (6x6, 3x3 at 96 px input) fill whole SIMD8 vectors
// instead of falling into scalar tails.
//
// Backward (one task per input channel, looping over images: weight sums need no atomics):
//   dyflat[f] = dy[r, q] for q < OW, else 0 (so the spare columns contribute nothing)
//   dw[k]    += sum_f dyflat[f] * buf[tap[k] + f]                       (SIMD dot products)
//   dbuf[P][g] = sum_{k in phase P} w[k] * dyflat[g - inner[k]]           (a correlation, SIMD)
//   dx[r, c]  = dbuf at the padded pixel (r + pt, c + pl)                 (crop, de-phase)

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
    while f + 16 <= span {
        var a0 = b, a1 = b
        for t in 0..<k {
            let p = buf + tap[t] + f, wt = wv[t]
            a0 = a0.addingProduct(load8(p), wt)
            a1 = a1.addingProduct(load8(p + 8), wt)
        }
        store8(a0, yf + f); store8(a1, yf + f + 8)
        f += 16
    }
    if f < span {
        var a0 = b
        for t in 0..<k { a0 = a0.addingProduct(load8(buf + tap[t] + f), wv[t]) }
        store8(a0, yf + f)
    }
}

/// y = depthwise_conv2d(x, w) + b.
func depthwiseConv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    if g.o == g.c && g.ohw <= channelBlockedMaxOutputs {
        depthwiseBlockedForward(out: out, input: input, weight: weight, bias: bias, g)
        return
    }
    let plan = DepthwisePlan(g)
    let m = g.o / g.c, planes = g.n * g.o, k = plan.k
    let tap = plan.tap
    do {
        parallelFor(planes, grain: grainFor(work: plan.span * k)) { range in
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

/// dbuf[g] (+)= sum over the taps `ks` of w[k] * dyf[g - inner[k]] for g < dxSpan.
@inline(__always)
func depthwisePhaseBackward(_ dbuf: UnsafeMutablePointer<Float>, _ dyf: UnsafePointer<Float>, _ wv: UnsafePointer<SIMD8<Float>>,
                            _ ks: UnsafePointer<Int>, _ shifts: UnsafePointer<Int>, count: Int, span: Int, accumulate: Bool) {
    var f = 0
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
        // One task per input channel: it owns dw rows c*M..<(c+1)*M and the dx planes of channel c.
        parallelFor(g.c, grain: 1) { chans in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: plan.bufSize)
            let dyf = UnsafeMutablePointer<Float>.allocate(capacity: plan.dySize)
            let dbuf = UnsafeMutablePointer<Float>.allocate(capacity: plan.phases * plan.dxSpan)
            let wv = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            let total = UnsafeMutablePointer<Double>.allocate(capacity: k * m)
            defer { buf.deallocate(); dyf.deallocate(); dbuf.deallocate(); wv.deallocate(); total.deallocate() }
            for c in chans {
                total.update(repeating: 0, count: k * m)
                for n in 0..<g.n {
                    if dweight != nil { plan.fill(buf, from: input + (n * g.c + c) * g.hw) }
                    for mi in 0..<m {
                        let o = c * m + mi
                        plan.spread(dyf, from: dout + (n * g.o + o) * g.ohw)
                        let dy = UnsafePointer(dyf + plan.dyFront)
                        if dweight != nil {
                            for t in 0..<k { total[mi * k + t] += Double(dot8(dy, buf + tap[t], span: plan.span)) }
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
                if let dweight {
                    for e in 0..<(k * m) { dweight[c * m * k + e] = Float(total[e]) }
                }
            }
        }
    }
    }
}

// MARK: - Small maps: eight channels per SIMD vector
//
// On the last stages' maps (6x6, 3x3 at 96 px input) a plane has fewer outputs than the taps'
// bookkeeping costs, so there the kernels vectorise across channels instead:
//   tile  [HP*WP][8]  one zero-padded image of 8 channels, channels last
//   w8    [K][8]      the 8 channels' weights of each tap
//   y[c][r, q] = b[c] + sum_k tile[(r*SH + i*DH) * WP + q*SW + j*DW][c] * w8[k][c]
// Backward keeps dw in 8-lane accumulators and adds w8[k] * dy into a padded gradient tile.
// Used for M == 1 (plain depthwise) when OH*OW <= `channelBlockedMaxOutputs`.

let channelBlockedMaxOutputs = 64

/// Padded tile geometry of the channel-blocked kernels.
struct ChannelTile {
    let hp, wp: Int
    init(_ g: ConvGeometry) { hp = g.h + g.pt + g.pb; wp = g.w + g.pl + g.pr }
    var pixels: Int { hp * wp }

    /// Loads `cnt` planes starting at `x` (plane stride HW) into the zeroed, padded tile.
    @inline(__always) func load(_ tile: UnsafeMutablePointer<SIMD8<Float>>, _ x: UnsafePointer<Float>, cnt: Int, _ g: ConvGeometry) {
        tile.update(repeating: SIMD8(), count: pixels)
        for c in 0..<cnt {
            let plane = x + c * g.hw
            for r in 0..<g.h {
                let row = tile + (r + g.pt) * wp + g.pl, src = plane + r * g.w
                for q in 0..<g.w { row[q][c] = src[q] }
            }
        }
    }
}

/// Tap offsets (in tile pixels) of the window's top-left output.
@inline(__always) func tileTaps(_ g: ConvGeometry, wp: Int) -> [Int] {
    var taps: [Int] = []
    for i in 0..<g.kh { for j in 0..<g.kw { taps.append(i * g.dh * wp + j * g.dw) } }
    return taps
}

func depthwiseBlockedForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                             bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    let tileGeo = ChannelTile(g), k = g.kh * g.kw, blocks = (g.c + 7) / 8
    let taps = tileTaps(g, wp: tileGeo.wp)
    taps.withUnsafeBufferPointer { tb in
        let tap = tb.baseAddress!
        parallelFor(g.n * blocks, grain: grainFor(work: 8 * g.ohw * k)) { range in
            let tile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tileGeo.pixels)
            let w8 = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            defer { tile.deallocate(); w8.deallocate() }
            var loadedBlock = -1
            for task in range {
                let n = task / blocks, cb = task % blocks
                let c0 = cb * 8, cnt = Swift.min(8, g.c - c0)
                if cb != loadedBlock {
                    w8.update(repeating: SIMD8(), count: k)
                    for c in 0..<cnt { for t in 0..<k { w8[t][c] = weight[(c0 + c) * k + t] } }
                    loadedBlock = cb
                }
                var b8 = SIMD8<Float>()
                if let bias { for c in 0..<cnt { b8[c] = bias[c0 + c] } }
                tileGeo.load(tile, input + (n * g.c + c0) * g.hw, cnt: cnt, g)
                let y = out + (n * g.c + c0) * g.ohw
                for r in 0..<g.oh {
                    for q in 0..<g.ow {
                        let base = tile + r * g.sh * tileGeo.wp + q * g.sw
                        var acc = b8
                        for t in 0..<k { acc = acc.addingProduct(base[tap[t]], w8[t]) }
                        let o = r * g.ow + q
                        for c in 0..<cnt { y[c * g.ohw + o] = acc[c] }
                    }
                }
            }
        }
    }
}

func depthwiseBlockedBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry) {
    let tileGeo = ChannelTile(g), k = g.kh * g.kw, blocks = (g.c + 7) / 8
    let taps = tileTaps(g, wp: tileGeo.wp)
    taps.withUnsafeBufferPointer { tb in
        let tap = tb.baseAddress!
        // One task per channel block (looping over images): it owns its dw rows and dx planes.
        parallelFor(blocks, grain: 1) { range in
            let tile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tileGeo.pixels)
            let dtile = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tileGeo.pixels)
            let gy = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: g.ohw)
            let w8 = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            let dw8 = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: k)
            defer { tile.deallocate(); dtile.deallocate(); gy.deallocate(); w8.deallocate(); dw8.deallocate() }
            for cb in range {
                let c0 = cb * 8, cnt = Swift.min(8, g.c - c0)
                w8.update(repeating: SIMD8(), count: k)
                for c in 0..<cnt { for t in 0..<k { w8[t][c] = weight[(c0 + c) * k + t] } }
                dw8.update(repeating: SIMD8(), count: k)
                for n in 0..<g.n {
                    // dy of the 8 channels, channels last.
                    gy.update(repeating: SIMD8(), count: g.ohw)
                    let dy = dout + (n * g.c + c0) * g.ohw
                    for c in 0..<cnt { for o in 0..<g.ohw { gy[o][c] = dy[c * g.ohw + o] } }
                    if dweight != nil { tileGeo.load(tile, input + (n * g.c + c0) * g.hw, cnt: cnt, g) }
                    if dinput != nil { dtile.update(repeating: SIMD8(), count: tileGeo.pixels) }
                    for r in 0..<g.oh {
                        for q in 0..<g.ow {
                            let off = r * g.sh * tileGeo.wp + q * g.sw
                            let gv = gy[r * g.ow + q]
                            if dweight != nil {
                                let base = tile + off
                                for t in 0..<k { dw8[t] = dw8[t].addingProduct(gv, base[tap[t]]) }
                            }
                            if dinput != nil {
                                let base = dtile + off
                                for t in 0..<k { base[tap[t]] = base[tap[t]].addingProduct(gv, w8[t]) }
                            }
                        }
                    }
                    if let dinput {
                        let dx = dinput + (n * g.c + c0) * g.hw
                        for c in 0..<cnt {
                            let plane = dx + c * g.hw
                            for r in 0..<g.h {
                                let row = dtile + (r + g.pt) * tileGeo.wp + g.pl
                                for q in 0..<g.w { plane[r * g.w + q] = row[q][c] }
                            }
                        }
                    }
                }
                if let dweight { for c in 0..<cnt { for t in 0..<k { dweight[(c0 + c) * k + t] = dw8[t][c] } } }
            }
        }
    }
}
