// Depthwise 2-D convolution (groups == Cin, channel multiplier M = O / C), direct SIMD kernels.
//
// Shapes:
//   x  [N, C, H, W]        input
//   w  [C*M, 1, KH, KW]    weight; output channel o reads input channel o / M
//   b  [C*M]               bias (optional)
//   y  [N, C*M, OH, OW]    output (same size formula as conv2d)
//   xp [SW][HP][PW]        one zero-padded input plane split into SW column phases:
//                          padded column q (of HP x WP, WP = W + pl + pr) is xp[q % SW][row][q / SW]
//
// y[oh, ow] = sum_ij w[i,j] * xpad[oh*SH + i*DH][ow*SW + j*DW]
//           = sum_ij w[i,j] * xp[(j*DW) % SW][oh*SH + i*DH][ow + (j*DW) / SW]
// so for every (i, j) the inputs of consecutive outputs are consecutive in memory at any stride
// or dilation: the inner loop is a SIMD8 fused multiply-add over `ow`. The 3x3 and 5x5 kernels
// keep the whole window sum in a register (the hot MobileNetV2 / EfficientNet-B0 cases); other
// sizes use the same loop with runtime bounds.
//
// Backward (per input channel c, looping over images so weight gradients need no atomics):
//   dw[i,j]            += sum_{oh,ow} dy[oh,ow] * xp[...]     (SIMD dot products)
//   dxp[...][ow + off] += w[i,j] * dy[oh, ow]                  (SIMD axpy into a padded buffer,
//                                                               then cropped and de-phased into dx)

/// Plane layout of the phase-split padded buffer.
struct PhasedPlane {
    let hp, pw, sw: Int
    /// Floats per phase.
    var phaseSize: Int { hp * pw }
    var size: Int { sw * hp * pw }

    init(_ g: ConvGeometry) {
        hp = g.h + g.pt + g.pb
        sw = g.sw
        pw = (g.w + g.pl + g.pr + g.sw - 1) / g.sw
    }

    /// Writes the zero-padded, phase-split copy of plane `x` [H, W] into `xp`.
    @inline(__always) func fill(_ xp: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>, _ g: ConvGeometry) {
        xp.update(repeating: 0, count: size)
        if sw == 1 {
            for r in 0..<g.h { (xp + (r + g.pt) * pw + g.pl).update(from: x + r * g.w, count: g.w) }
        } else {
            for r in 0..<g.h {
                let src = x + r * g.w, row = r + g.pt
                for q in 0..<g.w {
                    let pc = q + g.pl
                    xp[(pc % sw) * phaseSize + row * pw + pc / sw] = src[q]
                }
            }
        }
    }

    /// Adds the interior of the phase-split buffer `dxp` into plane `dx` [H, W] (the adjoint of `fill`).
    @inline(__always) func accumulate(_ dx: UnsafeMutablePointer<Float>, from dxp: UnsafePointer<Float>, _ g: ConvGeometry) {
        for r in 0..<g.h {
            let dst = dx + r * g.w, row = r + g.pt
            if sw == 1 {
                let src = dxp + row * pw + g.pl
                for q in 0..<g.w { dst[q] += src[q] }
            } else {
                for q in 0..<g.w {
                    let pc = q + g.pl
                    dst[q] += dxp[(pc % sw) * phaseSize + row * pw + pc / sw]
                }
            }
        }
    }
}

/// One output plane of a depthwise convolution from a phase-split input plane.
/// `kh`/`kw` are passed as literals by the 3x3 / 5x5 call sites so the window loops unroll.
@inline(__always)
func depthwisePlaneForward(_ y: UnsafeMutablePointer<Float>, _ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, bias: Float,
                           kh: Int, kw: Int, _ g: ConvGeometry, _ lay: PhasedPlane) {
    let (oh, ow, sh, dh, dw, sw) = (g.oh, g.ow, g.sh, g.dh, g.dw, g.sw)
    let pw = lay.pw, phase = lay.phaseSize
    for r in 0..<oh {
        let yr = y + r * ow
        var q = 0
        while q + 8 <= ow {
            var acc = SIMD8<Float>(repeating: bias)
            for i in 0..<kh {
                let row = xp + (r * sh + i * dh) * pw + q
                for j in 0..<kw {
                    let t = j * dw
                    acc = acc.addingProduct(load8(row + (t % sw) * phase + t / sw), SIMD8(repeating: wt[i * kw + j]))
                }
            }
            store8(acc, yr + q)
            q += 8
        }
        while q < ow {
            var acc = bias
            for i in 0..<kh {
                let row = xp + (r * sh + i * dh) * pw + q
                for j in 0..<kw {
                    let t = j * dw
                    acc += row[(t % sw) * phase + t / sw] * wt[i * kw + j]
                }
            }
            yr[q] = acc
            q += 1
        }
    }
}

/// y = depthwise_conv2d(x, w) + b.
func depthwiseConv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    let lay = PhasedPlane(g)
    let m = g.o / g.c, planes = g.n * g.o
    let k = g.kh * g.kw
    parallelFor(planes, grain: Swift.max(1, Swift.min(16, planes / 16))) { range in
        let xp = UnsafeMutablePointer<Float>.allocate(capacity: lay.size)
        defer { xp.deallocate() }
        var filled = -1
        for p in range {
            let n = p / g.o, o = p % g.o, c = o / m
            let src = n * g.c + c
            // Consecutive output channels of one input channel (M > 1) reuse the padded plane.
            if src != filled { lay.fill(xp, from: input + src * g.hw, g); filled = src }
            let y = out + p * g.ohw, wt = weight + o * k, b = bias?[o] ?? 0
            if g.kh == 3 && g.kw == 3 {
                depthwisePlaneForward(y, xp, wt, bias: b, kh: 3, kw: 3, g, lay)
            } else if g.kh == 5 && g.kw == 5 {
                depthwisePlaneForward(y, xp, wt, bias: b, kh: 5, kw: 5, g, lay)
            } else {
                depthwisePlaneForward(y, xp, wt, bias: b, kh: g.kh, kw: g.kw, g, lay)
            }
        }
    }
}

/// Weight gradient and padded input gradient of one (image, output channel) plane.
/// `dwAcc` holds KH*KW SIMD accumulators; `dxp` (phase-split, padded) accumulates.
@inline(__always)
func depthwisePlaneBackward(dwAcc: UnsafeMutablePointer<SIMD8<Float>>?, dwTail: UnsafeMutablePointer<Double>?, dxp: UnsafeMutablePointer<Float>?,
                            _ dy: UnsafePointer<Float>, _ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                            kh: Int, kw: Int, _ g: ConvGeometry, _ lay: PhasedPlane) {
    let (oh, ow, sh, dh, dw, sw) = (g.oh, g.ow, g.sh, g.dh, g.dw, g.sw)
    let pw = lay.pw, phase = lay.phaseSize
    for r in 0..<oh {
        let dyr = dy + r * ow
        var q = 0
        while q + 8 <= ow {
            let gv = load8(dyr + q)
            for i in 0..<kh {
                let off = (r * sh + i * dh) * pw + q
                for j in 0..<kw {
                    let t = j * dw, at = off + (t % sw) * phase + t / sw
                    if let dwAcc { dwAcc[i * kw + j] = dwAcc[i * kw + j].addingProduct(gv, load8(xp + at)) }
                    if let dxp { store8(load8(dxp + at).addingProduct(gv, SIMD8(repeating: wt[i * kw + j])), dxp + at) }
                }
            }
            q += 8
        }
        while q < ow {
            let gv = dyr[q]
            for i in 0..<kh {
                let off = (r * sh + i * dh) * pw + q
                for j in 0..<kw {
                    let t = j * dw, at = off + (t % sw) * phase + t / sw
                    if let dwTail { dwTail[i * kw + j] += Double(gv * xp[at]) }
                    if let dxp { dxp[at] += gv * wt[i * kw + j] }
                }
            }
            q += 1
        }
    }
}

/// Gradients of `depthwiseConv2dForward`; each non-nil destination is overwritten.
func depthwiseConv2dBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                             dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry) {
    if let dbias { channelSums(dbias, dout, n: g.n, c: g.o, hw: g.ohw) }
    guard dinput != nil || dweight != nil else { return }
    let lay = PhasedPlane(g)
    let m = g.o / g.c, k = g.kh * g.kw
    // One task per input channel: it owns dw rows c*M..<(c+1)*M and the dx planes of channel c.
    parallelFor(g.c, grain: 1) { chans in
        let xp = UnsafeMutablePointer<Float>.allocate(capacity: lay.size)
        let dxp: UnsafeMutablePointer<Float>? = dinput == nil ? nil : .allocate(capacity: lay.size)
        let acc: UnsafeMutablePointer<SIMD8<Float>>? = dweight == nil ? nil : .allocate(capacity: k * m)
        let tail: UnsafeMutablePointer<Double>? = dweight == nil ? nil : .allocate(capacity: k * m)
        let total: UnsafeMutablePointer<Double>? = dweight == nil ? nil : .allocate(capacity: k * m)
        defer { xp.deallocate(); dxp?.deallocate(); acc?.deallocate(); tail?.deallocate(); total?.deallocate() }
        for c in chans {
            total?.update(repeating: 0, count: k * m)
            for n in 0..<g.n {
                if dweight != nil { lay.fill(xp, from: input + (n * g.c + c) * g.hw, g) }
                dxp?.update(repeating: 0, count: lay.size)
                acc?.update(repeating: SIMD8(), count: k * m)
                tail?.update(repeating: 0, count: k * m)
                for mi in 0..<m {
                    let o = c * m + mi
                    let dy = dout + (n * g.o + o) * g.ohw, wt = weight + o * k
                    let a = acc.map { $0 + mi * k }, t = tail.map { $0 + mi * k }
                    if g.kh == 3 && g.kw == 3 {
                        depthwisePlaneBackward(dwAcc: a, dwTail: t, dxp: dxp, dy, xp, wt, kh: 3, kw: 3, g, lay)
                    } else if g.kh == 5 && g.kw == 5 {
                        depthwisePlaneBackward(dwAcc: a, dwTail: t, dxp: dxp, dy, xp, wt, kh: 5, kw: 5, g, lay)
                    } else {
                        depthwisePlaneBackward(dwAcc: a, dwTail: t, dxp: dxp, dy, xp, wt, kh: g.kh, kw: g.kw, g, lay)
                    }
                }
                if let acc, let tail, let total {
                    for e in 0..<(k * m) { total[e] += hsum(acc[e]) + tail[e] }
                }
                if let dinput, let dxp {
                    let dx = dinput + (n * g.c + c) * g.hw
                    dx.update(repeating: 0, count: g.hw)
                    lay.accumulate(dx, from: dxp, g)
                }
            }
            if let dweight, let total {
                for e in 0..<(k * m) { dweight[c * m * k + e] = Float(total[e]) }
            }
        }
    }
}
